"""Run one stream worker in the foreground: `fraud worker` or `python -m stream_scorer`."""

from __future__ import annotations

import logging
import socket

import faust

from fraud.errors import FraudError
from fraud.settings import Settings, load_settings
from stream_scorer.app import build_app, table_dir
from stream_scorer.feast_io import skip_feast_type_checks
from stream_scorer.seed import changelog_topic
from stream_scorer.table_disk import changelog_topic_id, forget_if_stale

log = logging.getLogger(__name__)


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Serve /metrics, then run the Faust worker until SIGTERM/SIGINT (it stops gracefully and commits its offsets;
    it leaves the group unless it is a static member, whose partitions wait for it until its session times out).

    A table directory filled from an earlier incarnation of the changelog topic is emptied first (`table_disk`).
    """
    host, port = settings.scorer_metrics_host, settings.scorer_metrics_port
    if port_taken(host, port):
        raise FraudError(f"{host}:{port} is taken (another worker?); set FRAUD_SCORER_METRICS_PORT")
    skip_feast_type_checks()  # before anything imports Feast: it opens in 2 s instead of 8 s
    if settings.scorer_table_store == "rocksdb":
        forget_if_stale(table_dir(settings), changelog_topic_id(settings, changelog_topic(settings)))
    scorer = build_app(settings)
    scorer.metrics.serve(host, port)
    log.info("metrics on http://%s:%d/metrics", host, port)
    worker = faust.Worker(scorer.app, loglevel=loglevel)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per predictor call
    worker.execute_from_commandline()


def port_taken(host: str, port: int) -> bool:
    """True if something else already listens on host:port (binding tells, without connecting to it)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the metrics server binds: TIME_WAIT is free
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def main() -> None:
    import argparse

    argparse.ArgumentParser(prog="python -m stream_scorer", description="Score transactions from Kafka (the Faust stream worker); settings come from FRAUD_* environment variables.").parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_worker(load_settings())


if __name__ == "__main__":
    main()

"""The local stack behind `fraud stack up / down / status`: services started in dependency order."""

from __future__ import annotations

import logging

from fraud.local_stack.kafka import LocalKafka, create_topics
from fraud.local_stack.monitor import LocalMonitor
from fraud.local_stack.predictor import LocalPredictor
from fraud.local_stack.retrainer import LocalRetrainer
from fraud.local_stack.worker import LocalWorker
from fraud.settings import Settings

log = logging.getLogger(__name__)


def stack_up(settings: Settings) -> dict[str, str]:
    """Start every local service that is not running yet (Kafka, the predictor, the worker, the monitor,
    the retrain listener), create the topics."""
    broker = LocalKafka(settings)
    kafka = broker.start()
    created = create_topics(settings)
    if created:
        log.info("created topics: %s", ", ".join(created))
    predictor = LocalPredictor(settings).start()
    worker = LocalWorker(settings).start()
    monitor = LocalMonitor(settings).start()
    retrainer = LocalRetrainer(settings).start()
    return {"kafka": kafka.describe(), "predictor": predictor.describe(), "worker": worker.describe(),
            "monitor": monitor.describe(), "retrainer": retrainer}


def stack_down(settings: Settings) -> dict[str, str]:
    """Stop the services `stack_up` started, last started first."""
    retrainer = LocalRetrainer(settings).stop()
    monitor = LocalMonitor(settings).stop()
    worker = LocalWorker(settings).stop()
    predictor = LocalPredictor(settings).stop()
    kafka = LocalKafka(settings).stop()
    not_ours = "was not running (started by this stack)"
    return {"retrainer": "stopped" if retrainer else not_ours, "monitor": "stopped" if monitor else not_ours,
            "worker": "stopped" if worker else not_ours, "predictor": "stopped" if predictor else not_ours,
            "kafka": "stopped" if kafka else not_ours}


def stack_status(settings: Settings) -> dict[str, str]:
    """One line of status per service."""
    return {"kafka": LocalKafka(settings).status().describe(), "predictor": LocalPredictor(settings).status().describe(),
            "worker": LocalWorker(settings).status().describe(), "monitor": LocalMonitor(settings).status().describe(),
            "retrainer": LocalRetrainer(settings).describe()}

"""faust-streaming (aiokafka) against the chosen Kafka version: a real worker consumes, keeps a table, produces."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from fraud.settings import Settings
from producers.publisher import publish
from producers.sources import SyntheticSource
from tests.conftest import REPO
from tests.integration.test_roundtrip import consume_all


def test_a_faust_worker_consumes_and_produces_on_our_broker(
    kafka_settings: Settings, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    source, sink = new_topic("probe-in", partitions=3), new_topic("probe-out", partitions=3)
    env = {**os.environ, "PROBE_BOOTSTRAP": kafka_settings.kafka_bootstrap, "PROBE_IN": source, "PROBE_OUT": sink,
           "PROBE_APP_ID": f"probe-{uuid.uuid4().hex[:8]}", "PROBE_DATADIR": str(tmp_path)}
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log_file:
        worker = subprocess.Popen(
            [sys.executable, "-m", "faust", "-A", "tests.integration.faust_probe", "worker", "-l", "info"],
            cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        report = publish(SyntheticSource(300, users=20, seed=5), kafka_settings, topic=source)
        assert report.delivered == 300
        forwarded = consume_all(kafka_settings, sink, expected=300, timeout_s=120)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
    assert len(forwarded) == 300, log_path.read_text()[-3000:]
    ids, counts = zip(*(m.value.decode().rsplit(":", 1) for m in forwarded), strict=True)
    assert len(set(ids)) == 300
    # The table counted each user's events in order: user k's n events carry counts 1..n.
    per_user = Counter(m.key for m in forwarded)
    assert sorted(int(c) for c in counts) == sorted(n for total in per_user.values() for n in range(1, total + 1))

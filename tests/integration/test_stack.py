"""`fraud stack up / status / down` and `fraud produce` from a shell, on a broker of their own."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from kafka.admin import KafkaAdminClient

from fraud.local_stack.process import pid_alive
from tests.conftest import REPO, free_port


def fraud(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fraud.cli", *args], capture_output=True, text=True, env=env, timeout=timeout)


@pytest.fixture
def stack_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")}
    env.update(FRAUD_DATA_DIR=str(tmp_path / "data"), FRAUD_CACHE_DIR=str(REPO / ".cache"),
               FRAUD_KAFKA_BOOTSTRAP=f"127.0.0.1:{free_port()}", FRAUD_KAFKA_CONTROLLER_PORT=str(free_port()),
               FRAUD_PREDICTOR_PORT=str(free_port()), FRAUD_SCORER_METRICS_PORT=str(free_port()),
               FRAUD_MONITOR_METRICS_PORT=str(free_port()))
    return env


def test_up_produce_down_from_a_shell(stack_env: dict[str, str]) -> None:
    try:
        up = fraud("stack", "up", env=stack_env)
        assert up.returncode == 0, up.stderr
        assert "running (PID" in up.stdout
        assert "NOT ready: no model loaded yet" in up.stdout  # the predictor is up, honestly not ready
        assert "worker     running (PID" in up.stdout
        assert "monitor    running (PID" in up.stdout
        assert "retrainer  listening on fraud-retrain (PID" in up.stdout
        pid = up.stdout.split("PID ")[1].split(")")[0]

        again = fraud("stack", "up", env=stack_env)  # idempotent: reuses the running broker
        assert again.returncode == 0 and f"PID {pid}" in again.stdout

        admin = KafkaAdminClient(bootstrap_servers=stack_env["FRAUD_KAFKA_BOOTSTRAP"])
        try:
            described = {t["name"]: len(t["partitions"]) for t in admin.describe_topics()}
        finally:
            admin.close()
        assert {k: described.get(k) for k in ("transactions", "fraud-scores", "transactions-dlq", "fraud-labels", "fraud-retrain")} == {
            "transactions": 6, "fraud-scores": 6, "transactions-dlq": 1, "fraud-labels": 3, "fraud-retrain": 1}

        produced = fraud("produce", "--count", "10000", "--rate", "0", env=stack_env)
        assert produced.returncode == 0, produced.stderr
        assert "delivered 10,000  failed 0" in produced.stdout

        status = fraud("stack", "status", env=stack_env)
        assert f"running (PID {pid})" in status.stdout
        assert "transactions             10,000 events" in status.stdout
        # No model yet: the worker took the events but holds them, publishing no made-up score.
        assert "topic fraud-scores                  0 events" in status.stdout
    finally:
        down = fraud("stack", "down", env=stack_env)
    assert down.returncode == 0 and "stopped" in down.stdout
    assert not pid_alive(int(pid))
    status = fraud("stack", "status", env=stack_env)
    assert "kafka      stopped" in status.stdout and "worker     stopped" in status.stdout
    assert "monitor    stopped" in status.stdout and "retrainer  stopped" in status.stdout
    assert (Path(stack_env["FRAUD_DATA_DIR"]) / "run" / "kafka.log").stat().st_size > 0  # logs under the data dir


def test_a_broker_that_cannot_start_fails_clearly_naming_its_log(stack_env: dict[str, str]) -> None:
    # The controller port is taken, so the broker dies on start-up.
    import socket

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(stack_env["FRAUD_KAFKA_CONTROLLER_PORT"])))
        squatter.listen()
        up = fraud("stack", "up", env={**stack_env, "FRAUD_STACK_START_TIMEOUT_S": "60"})
    fraud("stack", "down", env=stack_env)
    assert up.returncode == 1, (up.stdout, up.stderr)
    assert "Traceback" not in up.stderr, up.stderr
    assert "kafka.log" in up.stderr.strip().splitlines()[-1], up.stderr


def test_demo_tells_the_whole_story_on_its_own_stack(stack_env: dict[str, str]) -> None:
    try:
        demo = fraud("demo", "--users", "1000", "--days", "10", env=stack_env, timeout=900)
        assert demo.returncode == 0, demo.stderr[-3000:]
        # The model the top-scored user's features were pushed for answers for that user through Feast.
        user = demo.stdout.split('{"user_id": "')[1].split('"')[0]
        port = stack_env["FRAUD_PREDICTOR_PORT"]
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/models/fraud-detection:predict", json={"user_id": user}, timeout=30)
    finally:
        fraud("stack", "down", env=stack_env)
    assert re.search(r"promoted v1 \(.+\): first model", demo.stdout)  # it trained, registered and deployed a model
    replayed = int(demo.stdout.split("; replay ")[1].split(" transactions")[0].replace(",", ""))
    assert replayed > 100
    assert f"{replayed:,} transactions scored by model fraud-detection v1" in demo.stdout  # every one came back
    assert "throughput:" in demo.stdout and "p99" in demo.stdout
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["user_id"] == user and body["model_version"] == "1" and 0.0 <= body["prediction"][0][0] <= 1.0

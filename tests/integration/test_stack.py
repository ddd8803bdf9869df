"""`fraud stack up / status / down` and `fraud produce` from a shell, on a broker of their own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
               FRAUD_PREDICTOR_PORT=str(free_port()))
    return env


def test_up_produce_down_from_a_shell(stack_env: dict[str, str]) -> None:
    try:
        up = fraud("stack", "up", env=stack_env)
        assert up.returncode == 0, up.stderr
        assert "running (PID" in up.stdout
        assert "NOT ready: no model loaded yet" in up.stdout  # the predictor is up, honestly not ready
        pid = up.stdout.split("PID ")[1].split(")")[0]

        again = fraud("stack", "up", env=stack_env)  # idempotent: reuses the running broker
        assert again.returncode == 0 and f"PID {pid}" in again.stdout

        admin = KafkaAdminClient(bootstrap_servers=stack_env["FRAUD_KAFKA_BOOTSTRAP"])
        try:
            described = {t["name"]: len(t["partitions"]) for t in admin.describe_topics()}
        finally:
            admin.close()
        assert {k: described.get(k) for k in ("transactions", "fraud-scores", "transactions-dlq", "fraud-labels")} == {
            "transactions": 6, "fraud-scores": 6, "transactions-dlq": 1, "fraud-labels": 3}

        produced = fraud("produce", "--count", "10000", "--rate", "0", env=stack_env)
        assert produced.returncode == 0, produced.stderr
        assert "delivered 10,000  failed 0" in produced.stdout

        status = fraud("stack", "status", env=stack_env)
        assert f"running (PID {pid})" in status.stdout
        assert "transactions             10,000 events" in status.stdout
    finally:
        down = fraud("stack", "down", env=stack_env)
    assert down.returncode == 0 and "stopped" in down.stdout
    assert not pid_alive(int(pid))
    status = fraud("stack", "status", env=stack_env)
    assert "kafka      stopped" in status.stdout
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


def test_demo_runs_to_the_end_on_its_own_stack(stack_env: dict[str, str]) -> None:
    try:
        demo = fraud("demo", "--count", "2000", "--users", "1000", env=stack_env, timeout=900)
    finally:
        fraud("stack", "down", env=stack_env)
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "promoted v1: first model" in demo.stdout  # it trained, registered and deployed a model
    assert "2,000 new events reached topic transactions" in demo.stdout
    assert "read back 2,000 valid CloudEvents, 0 invalid" in demo.stdout
    assert "serving model version 1" in demo.stdout
    answer = demo.stdout.split('-> HTTP 200 ')[1].splitlines()[0]  # the seed-style curl, answered
    body = json.loads(answer)
    assert body["user_id"] == "user_0" and body["model_version"] == "1" and 0.0 <= body["prediction"][0][0] <= 1.0

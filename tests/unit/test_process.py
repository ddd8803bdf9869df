"""Service process handling: PID files, stop escalation, readiness failures naming the log."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from fraud.errors import FraudError
from fraud.local_stack import process

STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"


def test_stop_is_graceful_first(tmp_path: Path) -> None:
    files = process.ServiceFiles("sleeper", tmp_path)
    pid = process.spawn(files, [sys.executable, "-c", "import time; time.sleep(60)"])
    assert files.read_pid() == pid
    started = time.monotonic()
    assert process.stop(files, timeout_s=10)
    assert time.monotonic() - started < 5
    assert not process.pid_alive(pid)
    assert not files.pid_file.exists()


def test_stop_kills_a_process_that_ignores_sigterm(tmp_path: Path) -> None:
    files = process.ServiceFiles("stubborn", tmp_path)
    pid = process.spawn(files, [sys.executable, "-c", STUBBORN])
    process.wait_until(lambda: "up" in files.log_file.read_text(), 10, files, pid, "up")
    started = time.monotonic()
    assert process.stop(files, timeout_s=1.0)
    assert 1.0 <= time.monotonic() - started < 10
    assert not process.pid_alive(pid)


WITH_CHILD = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print("child", child.pid, flush=True)
time.sleep(60)
"""


def test_kill_takes_the_whole_process_group_at_once(tmp_path: Path) -> None:
    # It ignores SIGTERM and has a child of its own, as the worker has its Feast push process.
    files = process.ServiceFiles("crashed", tmp_path)
    pid = process.spawn(files, [sys.executable, "-c", WITH_CHILD])
    process.wait_until(lambda: "child" in files.log_file.read_text(), 10, files, pid, "up")
    child = int(files.log_tail(1).split()[1])
    started = time.monotonic()
    assert process.kill(files)
    assert time.monotonic() - started < 2
    assert not process.pid_alive(pid) and not files.pid_file.exists()
    deadline = time.monotonic() + 5  # the orphaned child is reaped by init, not by us
    while process.pid_alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process.pid_alive(child)
    assert process.kill(files) is False  # nothing left to kill


def test_stop_without_a_running_service_says_so(tmp_path: Path) -> None:
    files = process.ServiceFiles("ghost", tmp_path)
    files.pid_file.write_text("999999999\n")  # stale
    assert process.stop(files, timeout_s=1) is False
    assert not files.pid_file.exists()


def test_a_service_that_dies_during_start_names_its_log(tmp_path: Path) -> None:
    files = process.ServiceFiles("crasher", tmp_path)
    pid = process.spawn(files, [sys.executable, "-c", "raise SystemExit('bad config')"])
    with pytest.raises(FraudError, match=r"crasher exited .* see .*crasher\.log"):
        process.wait_until(lambda: False, 10, files, pid, "ready")
    assert "bad config" in files.log_file.read_text()


def test_a_service_that_never_gets_ready_times_out_naming_its_log(tmp_path: Path) -> None:
    files = process.ServiceFiles("slowpoke", tmp_path)
    pid = process.spawn(files, [sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with pytest.raises(FraudError, match=r"not ready after 1s; see .*slowpoke\.log"):
            process.wait_until(lambda: False, 1.0, files, pid, "ready")
    finally:
        process.stop(files, timeout_s=5)


def test_kafka_cluster_ids_never_start_with_a_dash() -> None:
    from fraud.local_stack.kafka import new_cluster_id

    ids = [new_cluster_id() for _ in range(5000)]  # about 1 in 64 raw draws starts with '-'
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
    assert len(set(ids)) == 5000

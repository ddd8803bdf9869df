"""A worker killed outright (SIGKILL, OOM killer, a node lost) leaves no process of its own behind."""

from __future__ import annotations

import time

import psutil

from fraud.settings import Settings
from tests.predictor.conftest import Predictor
from tests.stream.conftest import Worker, put_profiles


def _alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Those still running; a zombie has exited (only its exit status waits for a parent that may never reap it)."""
    running = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                running.append(process)
        except psutil.NoSuchProcess:
            pass
    return running


def test_a_killed_worker_takes_its_helper_processes_with_it(stream_settings: Settings, predictor: Predictor) -> None:
    put_profiles(stream_settings, {"user_0": (48.0, 11.0, 20.0)})
    worker = Worker(stream_settings)
    descendants: list[psutil.Process] = []
    try:
        worker.wait_for(lambda m: m is not None and m.get("fraud_scorer_ready") == 1, "readiness")  # push helper started
        descendants = psutil.Process(worker.process.pid).children(recursive=True)
        commands = [" ".join(p.cmdline()) for p in descendants]
        assert any("spawn_main" in command for command in commands), commands  # not vacuous: the Feast push helper
        worker.process.kill()
        worker.process.wait()
        deadline = time.monotonic() + 5
        while _alive(descendants) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = {p.pid: " ".join(p.cmdline()) for p in _alive(descendants)}
        assert not left, f"still running 5 s after the worker was killed: {left}"
    finally:
        worker.stop()
        for process in _alive(descendants):  # never leave them to the next test, whatever failed
            process.kill()

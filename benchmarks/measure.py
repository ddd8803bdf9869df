"""Run a command in a child process and measure its wall time and the peak memory of its whole process tree."""

from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class Measurement:
    """Wall time and peak resident memory (child and all its descendants, e.g. a Spark JVM)."""

    seconds: float
    peak_rss_bytes: int
    output: str

    @property
    def peak_gb(self) -> float:
        return self.peak_rss_bytes / 1e9


def measure(command: list[str], interval_s: float = 0.1, env: dict[str, str] | None = None) -> Measurement:
    """Run ``command`` to completion; fail if it fails."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        root = psutil.Process(process.pid)
        while not done.is_set():
            try:
                tree = [root, *root.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            done.wait(interval_s)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = process.communicate()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}): {err.strip()[-2000:]}")
    return Measurement(seconds, peak, out)


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` and its live descendants."""
    root = psutil.Process(pid)
    total = 0.0
    for process in (root, *root.children(recursive=True)):
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:  # gone between the listing and the reading
            pass
    return total

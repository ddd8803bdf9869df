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
    samples: tuple[tuple[float, int], ...] = ()  # (Unix time, tree RSS bytes) of every sample

    @property
    def peak_gb(self) -> float:
        return self.peak_rss_bytes / 1e9

    def peak_between(self, start: float, end: float) -> int:
        """Peak tree RSS sampled from Unix time ``start`` to ``end`` (e.g. one pipeline step); 0 if none."""
        return max((rss for at, rss in self.samples if start <= at <= end), default=0)


def measure(command: list[str], interval_s: float = 0.1, env: dict[str, str] | None = None) -> Measurement:
    """Run ``command`` to completion; fail if it fails."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    samples: list[tuple[float, int]] = []
    done = threading.Event()

    def sample() -> None:
        root = psutil.Process(process.pid)
        while not done.is_set():
            rss = tree_rss(root)
            if rss:
                samples.append((time.time(), rss))
            done.wait(interval_s)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = process.communicate()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}): {err.strip()[-2000:]}")
    return Measurement(seconds, max((rss for _, rss in samples), default=0), out, tuple(samples))


def tree_rss(root: psutil.Process) -> int:
    """Resident bytes of ``root`` and its live descendants now (0 once it is gone)."""
    total = 0
    try:
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    for process in tree:
        try:
            total += process.memory_info().rss
        except psutil.Error:  # gone between the listing and the reading
            pass
    return total


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

"""Background services of the local stack: start detached, track by PID file, stop gracefully."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fraud.errors import FraudError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceFiles:
    """Where a service keeps its PID and its log."""

    name: str
    run_dir: Path

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / f"{self.name}.log"

    def read_pid(self) -> int | None:
        """The PID of the running service we started, or None (a stale PID file is removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if pid_alive(pid):
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the service's log (empty if it has none yet), for failure messages."""
        try:
            with self.log_file.open("rb") as log_stream:
                log_stream.seek(max(0, log_stream.seek(0, os.SEEK_END) - 200 * lines))
                text = log_stream.read().decode(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def pid_alive(pid: int) -> bool:
    """True if a process with this PID exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return True  # not Linux, or gone between the two checks; kill(0) said it exists
    return state != "Z"


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now (for a service started next to others)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def spawn(files: ServiceFiles, command: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> int:
    """Start ``command`` detached from this terminal, output to the log file; record and return its PID."""
    files.run_dir.mkdir(parents=True, exist_ok=True)
    with files.log_file.open("ab") as log_stream:
        process = subprocess.Popen(
            list(command),
            stdout=log_stream,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,  # survives the CLI that started it; Ctrl-C there does not reach it
        )
    files.pid_file.write_text(f"{process.pid}\n")
    log.debug("started %s as PID %d: %s", files.name, process.pid, " ".join(command))
    return process.pid


def wait_until(check: Callable[[], bool], timeout_s: float, files: ServiceFiles, pid: int, what: str) -> None:
    """Poll ``check`` until it passes; fail naming the log if the process dies or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        if not pid_alive(pid):
            files.pid_file.unlink(missing_ok=True)
            raise FraudError(f"{files.name} exited before it was {what}; see {files.log_file}")
        time.sleep(0.25)
    raise FraudError(f"{files.name} was not {what} after {timeout_s:.0f}s; see {files.log_file}")


def stop(files: ServiceFiles, timeout_s: float) -> bool:
    """Stop the service by PID: SIGTERM, then SIGKILL after ``timeout_s``. False if it was not running."""
    pid = files.read_pid()
    if pid is None:
        return False
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid_alive(pid):
        log.warning("%s (PID %d) ignored SIGTERM for %.0fs; killing it", files.name, pid, timeout_s)
        _signal_group(pid, signal.SIGKILL)
        while pid_alive(pid):
            time.sleep(0.05)
    files.pid_file.unlink(missing_ok=True)
    return True


def kill(files: ServiceFiles) -> bool:
    """Kill the service by PID at once, as a crash or an OOM kill would: SIGKILL, no chance to clean up.

    Its whole process group goes (the helpers it spawned too), as when a container is killed.
    False if it was not running.
    """
    pid = files.read_pid()
    if pid is None:
        return False
    _signal_group(pid, signal.SIGKILL)
    while pid_alive(pid):
        time.sleep(0.05)
    files.pid_file.unlink(missing_ok=True)
    log.debug("killed %s (PID %d)", files.name, pid)
    return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    # The service leads its own session (start_new_session), so its children go with it.
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)

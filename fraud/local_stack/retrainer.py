"""The local retrain listener: `fraud retrain --listen`, tracked by PID; it runs the pipeline on each request."""

from __future__ import annotations

import logging
import sys
import time

from fraud.local_stack import process
from fraud.settings import Settings, settings_env
from training_pipeline.retrain import Journal, journal_path

log = logging.getLogger(__name__)


class LocalRetrainer:
    """Start, stop and describe the listener process."""

    def __init__(self, settings: Settings, name: str = "retrainer") -> None:
        self.settings = settings
        self.files = process.ServiceFiles(name, settings.data_dir / "run")

    def start(self) -> str:
        """Start it unless it runs (it needs no warm-up: a request waits on the topic)."""
        if self.files.read_pid() is None:
            pid = process.spawn(self.files, [sys.executable, "-m", "fraud.cli", "retrain", "--listen"],
                                env=settings_env(self.settings))
            log.info("starting the retrain listener (PID %d); log: %s", pid, self.files.log_file)
            time.sleep(0.5)
            if self.files.read_pid() is None:
                return f"exited at once; see {self.files.log_file}"
        return self.describe()

    def stop(self) -> bool:
        """Stop it (a run going on is killed with it; its request is read again at the next start)."""
        return process.stop(self.files, self.settings.stack_stop_timeout_s)

    def describe(self) -> str:
        """One line: stopped, or listening with how many requests it answered and the last outcome."""
        pid = self.files.read_pid()
        if pid is None:
            return "stopped"
        handled = [entry for entry in Journal(journal_path(self.settings)).entries() if entry.get("handled") != "by hand"]
        last = f"; last: {handled[-1]['outcome']}" if handled else ""
        return f"listening on {self.settings.topic_retrain} (PID {pid}): {len(handled)} requests answered{last}"

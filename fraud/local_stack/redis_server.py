"""A throwaway Redis (Debian's `redis-server`) for the cluster feature store's tests: a free port, a password,
nothing persisted. Started detached and stopped by PID like the other services (`fraud.local_stack.process`).
"""

from __future__ import annotations

import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from fraud.errors import FraudError
from fraud.local_stack import process


@dataclass(frozen=True)
class RedisEndpoint:
    """How to reach a running server."""

    host: str
    port: int
    password: str

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


class LocalRedis:
    """One redis-server under ``run_dir`` on a free port of 127.0.0.1."""

    def __init__(self, run_dir: Path, timeout_s: float = 30.0) -> None:
        self.run_dir, self.timeout_s = run_dir, timeout_s
        self.files = process.ServiceFiles("redis", run_dir)

    def start(self) -> RedisEndpoint:
        """Start it and wait until it accepts connections."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise FraudError("redis-server is needed for the Redis online store's tests (apt-get install redis-server)")
        endpoint = RedisEndpoint("127.0.0.1", process.free_port(), secrets.token_hex(16))
        self.run_dir.mkdir(parents=True, exist_ok=True)
        config = self.run_dir / "redis.conf"
        # The password sits in a file only we can read, not on the command line that `ps` shows.
        config.touch(mode=0o600)
        config.write_text("\n".join([
            f"bind {endpoint.host}", f"port {endpoint.port}", f"dir {self.run_dir}", f"requirepass {endpoint.password}",
            'save ""', "appendonly no",  # a test store: nothing to keep
            "set-proc-title no",  # keep the command line (this run's directory) for cleanup scripts that match it
        ]) + "\n")
        pid = process.spawn(self.files, [binary, str(config)])
        process.wait_until(lambda: process.port_open(endpoint.host, endpoint.port), self.timeout_s, self.files, pid,
                           "listening")
        return endpoint

    def stop(self) -> None:
        process.stop(self.files, 10)

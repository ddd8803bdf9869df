"""The embedded Apache Kafka broker: KRaft mode, jars from Maven Central, state under the data dir."""

from __future__ import annotations

import base64
import logging
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError

from fraud.errors import FraudError
from fraud.local_stack import process
from fraud.settings import Settings
from fraud.topics import create_topics, delete_topics, recreate_topic  # noqa: F401 - the stack's topic set-up, kept importable here

log = logging.getLogger(__name__)

_LOG4J = """\
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.request.logger=WARN
"""


@dataclass(frozen=True)
class BrokerStatus:
    """What `fraud stack status` shows for the broker."""

    address: str
    pid: int | None
    reachable: bool

    def describe(self) -> str:
        if self.pid and self.reachable:
            return f"running (PID {self.pid}) on {self.address}"
        if self.pid:
            return f"starting or unhealthy (PID {self.pid}); not answering on {self.address}"
        if self.reachable:
            return f"running on {self.address} (not started by this stack)"
        return "stopped"


class LocalKafka:
    """One single-node KRaft broker for the local stack."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.data_dir / "kafka"
        self.files = process.ServiceFiles("kafka", settings.data_dir / "run")
        self.jars_dir = settings.cache_dir / f"kafka-{settings.kafka_version}" / "libs"

    # -- installation ---------------------------------------------------------
    def ensure_jars(self) -> Path:
        """Resolve the broker jars from Maven Central once; later calls reuse the cache."""
        marker = self.jars_dir.parent / ".complete"
        if marker.exists():
            return self.jars_dir
        if shutil.which("mvn") is None:
            raise FraudError("Maven (mvn) is needed to fetch the Kafka jars; install it (apt-get install maven)")
        log.info("fetching Apache Kafka %s jars from Maven Central into %s", self.settings.kafka_version, self.jars_dir)
        shutil.rmtree(self.jars_dir, ignore_errors=True)
        with resources.as_file(resources.files("fraud.local_stack") / "kafka-pom.xml") as pom:
            result = subprocess.run(
                ["mvn", "-q", "-B", "-f", str(pom), "dependency:copy-dependencies", "-DincludeScope=runtime",
                 f"-Dkafka.version={self.settings.kafka_version}", f"-DoutputDirectory={self.jars_dir}"],
                capture_output=True, text=True, check=False,
            )
        if result.returncode != 0:
            tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
            raise FraudError(f"mvn could not fetch Kafka {self.settings.kafka_version}: {' | '.join(tail)}")
        marker.touch()
        return self.jars_dir

    # -- configuration --------------------------------------------------------
    def _write_config(self) -> Path:
        host, port = self.settings.bootstrap_host_port
        controller = f"{host}:{self.settings.kafka_controller_port}"
        config = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{controller}",
            "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{controller}",
            "advertised.listeners": f"PLAINTEXT://{host}:{port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.home / "data"),
            # One broker: every internal topic has one replica.
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "num.partitions": "1",
            "log.retention.hours": "168",
        }
        self.home.mkdir(parents=True, exist_ok=True)
        path = self.home / "server.properties"
        path.write_text("".join(f"{key}={value}\n" for key, value in config.items()))
        (self.home / "log4j.properties").write_text(_LOG4J)
        return path

    def _java(self, main_class: str, *args: str) -> list[str]:
        return [
            "java", f"-Xmx{self.settings.kafka_heap}", f"-Xms{self.settings.kafka_heap}",
            "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{self.home / 'log4j.properties'}",
            "-cp", f"{self.jars_dir}/*", main_class, *args,
        ]

    def _format_storage(self, config: Path) -> None:
        if (self.home / "data" / "meta.properties").exists():
            return
        cluster_id = new_cluster_id()
        result = subprocess.run(
            self._java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config)),
            capture_output=True, text=True, check=False,
        )
        if result.returncode != 0:
            raise FraudError(f"formatting Kafka storage failed: {result.stdout.strip()} {result.stderr.strip()}"[:500])

    # -- lifecycle ------------------------------------------------------------
    def status(self) -> BrokerStatus:
        """Whether our broker runs and whether anything answers on the bootstrap address."""
        host, port = self.settings.bootstrap_host_port
        return BrokerStatus(f"{host}:{port}", self.files.read_pid(), process.port_open(host, port))

    def start(self) -> BrokerStatus:
        """Start the broker unless one already answers; wait until it serves metadata."""
        current = self.status()
        if current.reachable:
            log.info("Kafka already running on %s; reusing it", current.address)
            self.wait_ready()
            return current
        if current.pid is not None:
            raise FraudError(f"Kafka (PID {current.pid}) is running but not answering on {current.address}; "
                             f"run `fraud stack down` and see {self.files.log_file}")
        self.ensure_jars()
        config = self._write_config()
        self._format_storage(config)
        pid = process.spawn(self.files, self._java("kafka.Kafka", str(config)))
        log.info("starting Kafka %s (PID %d); log: %s", self.settings.kafka_version, pid, self.files.log_file)
        host, port = self.settings.bootstrap_host_port
        process.wait_until(lambda: process.port_open(host, port), self.settings.stack_start_timeout_s,
                           self.files, pid, "listening")
        self.wait_ready()
        return self.status()

    def wait_ready(self) -> None:
        """Block until the broker answers a metadata request (raises FraudError on timeout)."""
        try:
            admin = KafkaAdminClient(**self.settings.kafka_client_config(),
                                     request_timeout_ms=int(self.settings.stack_start_timeout_s * 1000))
        except KafkaError as error:
            raise FraudError(f"Kafka on {self.settings.kafka_bootstrap} does not answer: {error}; "
                             f"see {self.files.log_file}") from error
        try:
            admin.list_topics()
        finally:
            admin.close()

    def stop(self) -> bool:
        """Stop the broker we started (graceful, then forced). False if none was running."""
        return process.stop(self.files, self.settings.stack_stop_timeout_s)


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64, never starting with '-' (as Kafka's own
    Uuid.randomUuid ensures: the storage tool would read such an id as an option and fail)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id

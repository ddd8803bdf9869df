"""The monitor as a Faust app: its own consumer group on `fraud-scores` and `fraud-labels`, Prometheus metrics, the trigger.

It runs as its own process (`fraud monitor`, `python -m monitor`), so it never
slows scoring. One replica by design: the join needs every score and every
label, and the two topics are not co-partitioned (6 and 3 partitions). Its
state is in memory: after a restart it reads both topics from where its group
left off, and the window fills again. A record it cannot read is counted and
logged, never a stop.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import faust
from kafka import KafkaProducer
from kafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from fraud.drift import REFERENCE_KEY, SCORE, Reference
from fraud.events import InvalidEvent, Label, Score, decode, encode
from fraud.registry import open_registry
from fraud.settings import Settings
from fraud.storage import fetch
from monitor.quality import Join, QualityWindow, ServedWindow
from monitor.trigger import RULES, RetrainTrigger, TriggerRules
from stream_scorer.app import faust_broker_options

log = logging.getLogger(__name__)


class MonitorMetrics:
    """Every metric of the monitor, in its own registry."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.precision = Gauge("fraud_monitor_precision", "Precision at the served decisions, last N labelled.", registry=r)
        self.recall = Gauge("fraud_monitor_recall", "Recall at the served decisions, last N labelled.", registry=r)
        self.pr_auc = Gauge("fraud_monitor_pr_auc", "PR-AUC (average precision) of the scores, last N labelled.", registry=r)
        self.labels = Gauge("fraud_monitor_labels_in_window", "Labelled transactions in the quality window.", registry=r)
        self.frauds = Gauge("fraud_monitor_frauds_in_window", "Frauds among them.", registry=r)
        self.alert_rate = Gauge("fraud_monitor_alert_rate", "Share of the last scores flagged as fraud.", registry=r)
        self.psi = Gauge("fraud_monitor_psi", "PSI against the serving model's training reference.", ["feature"], registry=r)
        self.psi_max = Gauge("fraud_monitor_psi_max", "The largest PSI of any feature or the score.", registry=r)
        self.version = Gauge("fraud_monitor_model_version", "1 for the version that scored the latest event.",
                             ["version"], registry=r)
        self.scores_in = Counter("fraud_monitor_scores_in", "Score events read.", registry=r)
        self.labels_in = Counter("fraud_monitor_labels_in", "Label events read.", registry=r)
        self.bad_records = Counter("fraud_monitor_bad_records", "Records on either topic that are not our events.",
                                   ["topic"], registry=r)
        self.retrain_requests = Counter("fraud_monitor_retrain_requests", "Retraining requests published, by the rule that fired.",
                                        ["reason"], registry=r)
        for rule in RULES:
            self.retrain_requests.labels(rule)  # shown as 0 before the first request
        self.waiting = Gauge("fraud_monitor_join_waiting", "Scores and labels waiting for their other half.", registry=r)

    def serve(self, host: str, port: int) -> None:
        start_http_server(port, addr=host, registry=self.registry)


@dataclass
class References:
    """Each model version's training reference, read once from its registered ONNX file (None if it has none).

    `load` does the reading (registry, artifact store, onnxruntime) and so runs in
    a thread, never in the event loop; `of` only looks in the cache. A version
    that could not be read (registry down, artifact missing) is tried again
    after ``retry_s``: the monitor goes on without PSI meanwhile, it never stops.
    """

    settings: Settings
    retry_s: float = 60.0
    cache: dict[str, Reference | None] = field(default_factory=dict)
    failed_at: dict[str, float] = field(default_factory=dict)

    def of(self, version: str) -> Reference | None:
        """The cached reference of ``version``; None if it has none or is not read yet."""
        return self.cache.get(version)

    def needs_load(self, version: str, now: float) -> bool:
        """True if ``version`` was never read, or its last read failed ``retry_s`` ago."""
        return version not in self.cache and now - self.failed_at.get(version, -self.retry_s) >= self.retry_s

    def load(self, version: str, now: float) -> None:
        """Read ``version``'s reference into the cache, or remember that it failed."""
        try:
            self.cache[version] = self._read(version)
        except Exception as error:  # whatever the registry, the store or onnxruntime raise: no PSI for now
            self.failed_at[version] = now
            log.warning("could not read the drift reference of model version %s (again in %.0f s): %s",
                        version, self.retry_s, error)

    def _read(self, version: str) -> Reference | None:
        from fraud.onnx_model import OnnxFraudModel

        found = [v for v in open_registry(self.settings).versions(self.settings.model_name) if v.version == version]
        if not found:
            log.warning("model version %s is not in the registry: no drift reference", version)
            return None
        with tempfile.TemporaryDirectory() as scratch:
            metadata = OnnxFraudModel(fetch(self.settings, found[0].uri, Path(scratch) / "model.onnx")).metadata
        if REFERENCE_KEY not in metadata:
            log.warning("model version %s carries no training reference: no PSI for it", version)
            return None
        return Reference.model_validate_json(metadata[REFERENCE_KEY])


class Monitor:
    """The monitor's state and decisions, fed one event at a time (Faust-free, so a test can drive it)."""

    def __init__(self, settings: Settings, metrics: MonitorMetrics, references: References) -> None:
        self.settings, self.metrics, self.references = settings, metrics, references
        self.join = Join(settings.monitor_join_ttl_s)
        self.quality = QualityWindow(settings.monitor_window)
        self.served = ServedWindow(settings.monitor_score_window)
        self.trigger = RetrainTrigger(TriggerRules(settings.monitor_min_labels, settings.monitor_min_pr_auc,
                                                   settings.monitor_max_psi, settings.monitor_retrain_cooldown_s,
                                                   settings.monitor_retrain_timeout_s))
        self.serving: str | None = None

    def on_score(self, score: Score, now: float) -> None:
        self.metrics.scores_in.inc()
        self.served.add(score)
        if score.model_version != self.serving:
            if self.serving is not None:
                self.metrics.version.labels(self.serving).set(0)
            self.serving = score.model_version
            self.metrics.version.labels(self.serving).set(1)
        pair = self.join.add_score(score, now)
        if pair is not None:
            self.quality.add(pair)

    def on_label(self, label: Label, now: float) -> None:
        self.metrics.labels_in.inc()
        pair = self.join.add_label(label, now)
        if pair is not None:
            self.quality.add(pair)

    def refresh(self, now: float):  # -> RetrainRequest | None
        """Update the gauges from the windows; the retraining request if the trigger fires."""
        quality = self.quality.quality()
        m = self.metrics
        m.labels.set(quality.labels)
        m.frauds.set(quality.frauds)
        m.waiting.set(self.join.waiting)
        for gauge, value in ((m.precision, quality.precision), (m.recall, quality.recall), (m.pr_auc, quality.pr_auc),
                             (m.alert_rate, self.served.alert_rate())):
            gauge.set(float("nan") if value is None else value)
        reference = self.references.of(self.serving) if self.serving else None
        psi = self.served.psi(reference, self.serving) if reference else {}
        for name, value in psi.items():
            m.psi.labels(name).set(value)
        m.psi_max.set(max(psi.values()) if psi else float("nan"))
        # The trigger judges the serving model on its own rows: right after a redeploy the window still
        # holds the previous model's, whose (poor) figures are what the new model was trained to mend.
        return self.trigger.check(self.quality.quality(self.serving), self._drift_that_triggers(psi), self.serving, now)

    def _drift_that_triggers(self, psi: dict[str, float]) -> dict[str, float]:
        """The score's PSI, once the score window is full of the serving model's scores: what the trigger may act on.

        Features' PSI are shown, not acted on: history features such as days since the
        first transaction drift by the calendar alone, and a shift that matters to
        fraud shows in the scores. A window not yet full is too noisy to act on.
        """
        if SCORE not in psi or len(self.served.scored_by(self.serving)) < self.settings.monitor_score_window:
            return {}
        return {SCORE: psi[SCORE]}


def build_monitor_app(settings: Settings, metrics: MonitorMetrics) -> tuple[faust.App, Monitor]:
    """The Faust app: one agent per topic feeding `Monitor`, a timer that refreshes and may request retraining."""
    datadir = settings.data_dir / "monitor" / settings.monitor_app_id
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(settings.monitor_app_id, **faust_broker_options(settings), store="memory://", web_enabled=False,
                    consumer_auto_offset_reset="earliest", broker_client_id=f"{settings.kafka_client_id}-monitor",
                    datadir=str(datadir), topic_allow_declare=False)
    monitor = Monitor(settings, metrics, References(settings))
    scores = app.topic(settings.topic_scores, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    labels = app.topic(settings.topic_labels, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    producer: list[KafkaProducer] = []

    async def feed(stream: faust.StreamT, topic: str, kind: type, handle) -> None:
        """Decode each record of ``topic`` as ``kind`` and hand it to ``handle``; a bad record is counted and skipped."""
        async for event in stream.events():
            try:
                handle(decode(event.message.value, kind, event.headers), time.monotonic())
            except InvalidEvent as error:
                metrics.bad_records.labels(topic).inc()
                log.warning("skipped a record of %s: %s", topic, error.reason)

    @app.agent(scores, name="monitor-scores")
    async def read_scores(stream: faust.StreamT) -> None:
        await feed(stream, settings.topic_scores, Score, monitor.on_score)

    @app.agent(labels, name="monitor-labels")
    async def read_labels(stream: faust.StreamT) -> None:
        await feed(stream, settings.topic_labels, Label, monitor.on_label)

    @app.timer(interval=settings.monitor_refresh_s)
    async def refresh() -> None:
        now = time.monotonic()
        if monitor.serving is not None and monitor.references.needs_load(monitor.serving, now):
            await app.loop.run_in_executor(None, monitor.references.load, monitor.serving, now)
        request = monitor.refresh(now)
        if request is None:
            return
        if not producer:
            producer.append(KafkaProducer(**settings.kafka_client_config(), acks="all"))
        key, value, headers = encode(request, settings.monitor_source)
        try:
            await app.loop.run_in_executor(None, lambda: producer[0].send(settings.topic_retrain, key=key, value=value,
                                                                          headers=headers).get(timeout=30))
        except KafkaError as error:
            monitor.trigger.withdraw()  # not sent: the next refresh may ask again
            log.error("could not publish the retraining request (%s): %s", request.reason, error)
            return
        metrics.retrain_requests.labels(monitor.trigger.last_rule).inc()
        log.warning("requested retraining: %s", request.reason)

    return app, monitor

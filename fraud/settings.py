"""One typed settings object for every endpoint, path and credential.

Values come from the environment (prefix ``FRAUD_``, e.g. ``FRAUD_DATA_DIR``),
then from a ``.env`` file in the working directory, then from the defaults
below, which are the embedded local stack. Nothing else in the code base reads
``os.environ`` for configuration.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

# host:port, where host is a DNS name, IPv4 address or [IPv6] literal.
_BROKER_ADDRESS = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?):(\d{1,5})$")
# Values that are obviously not a real secret; refused so nobody ships them.
_PLACEHOLDER_SECRETS = {"changeme", "change-me", "password", "secret", "minio123", "admin"}
# The Feast repo (feature_store*.yaml + definitions), next to this package.
FEATURE_REPO = Path(__file__).resolve().parents[1] / "feature_repo"


class Settings(BaseSettings):
    """Configuration of the whole product; see README "Configuration"."""

    model_config = SettingsConfigDict(
        env_prefix="FRAUD_",
        env_file=".env",
        extra="ignore",
        validate_default=True,
        frozen=True,
    )

    # --- paths -------------------------------------------------------------
    data_dir: Path = Field(Path("data"), description="Runtime state: broker data, logs, datasets, models.")
    cache_dir: Path = Field(Path(".cache"), description="Downloaded artefacts such as the Kafka jars.")

    # --- Kafka connection ---------------------------------------------------
    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Comma-separated host:port list.")
    kafka_security_protocol: SecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: SaslMechanism | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = Field(None, description="CA bundle that signed the brokers' certificates.")
    kafka_client_id: str = "fraud-scoring"

    # --- topics ---------------------------------------------------------------
    topic_transactions: str = "transactions"
    topic_scores: str = "fraud-scores"
    topic_dlq: str = "transactions-dlq"
    topic_labels: str = "fraud-labels"
    topic_retrain: str = Field("fraud-retrain", description="Retraining requests (fraud.retrain.requested.v1).")
    partitions_transactions: int = Field(6, ge=1)
    partitions_scores: int = Field(6, ge=1)
    partitions_dlq: int = Field(1, ge=1)
    partitions_labels: int = Field(3, ge=1)
    partitions_retrain: int = Field(1, ge=1)
    topic_replication_factor: int = Field(1, ge=1, description="1 for the local broker; 3 on a real cluster.")

    # --- embedded local broker (`fraud stack up`) ------------------------------
    kafka_version: str = Field("3.9.1", pattern=r"^3\.\d+\.\d+$", description="3.x: the launcher configures log4j 1 (reload4j).")
    kafka_controller_port: int = Field(9093, ge=1, le=65535)
    kafka_heap: str = Field("512m", pattern=r"^\d+[mMgG]$")
    stack_start_timeout_s: float = Field(90.0, gt=0)
    stack_stop_timeout_s: float = Field(20.0, gt=0)

    # --- data and batch preparation -------------------------------------------------
    raw_uri: str | None = Field(None, description="Raw parquet location; default <data_dir>/raw, s3a://bucket/raw on a cluster.")
    features_uri: str | None = Field(None, description="Prep output location; default <data_dir>/features.")
    s3_endpoint: str | None = Field(None, description="S3/MinIO endpoint URL for s3a:// locations.")
    s3_access_key: str | None = None
    s3_secret_key: SecretStr | None = None
    spark_master: str = Field("local[*]", description="local[*] here; spark://... or k8s://... on a cluster.")
    spark_driver_memory: str = Field("4g", pattern=r"^\d+[mMgG]$")
    spark_submit: Literal["in_process", "operator"] = Field("in_process", description=(
        "FRAUD_SPARK_SUBMIT: how the prep step runs Spark: `in_process`, a session in the step's own process on "
        "FRAUD_SPARK_MASTER; `operator`, a SparkApplication the Spark operator runs in FRAUD_SPARK_NAMESPACE."))
    spark_namespace: str = Field("fraud", description="FRAUD_SPARK_NAMESPACE: namespace of the prep step's SparkApplications.")
    spark_executor_instances: int = Field(2, ge=1, description="FRAUD_SPARK_EXECUTOR_INSTANCES: executors of the prep SparkApplication.")
    spark_app_timeout_s: float = Field(3_600.0, gt=0, description=(
        "FRAUD_SPARK_APP_TIMEOUT_S: longest the prep step waits for its SparkApplication; then it deletes it and fails."))
    spark_poll_s: float = Field(5.0, gt=0, description="FRAUD_SPARK_POLL_S: how often the SparkApplication's state is read.")
    spark_shuffle_partitions: int = Field(8, ge=1)
    profile_fraction: float = Field(0.2, gt=0, lt=1, description="Oldest share of the time window used only to build user profiles.")
    valid_fraction: float = Field(0.15, gt=0, lt=1)
    test_fraction: float = Field(0.15, gt=0, lt=1)

    # --- model, training and registry ---------------------------------------------------
    model_name: str = Field("fraud-detection", pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
    model_version: str | None = Field(None, description="Serve this registered version instead of the production one.")
    model_registry_url: str | None = Field(None, description="Kubeflow Model Registry, e.g. https://registry.example:443.")
    model_registry_author: str = "fraud-training-pipeline"
    model_registry_token: SecretStr | None = None
    artifact_bucket: str | None = Field(None, description="S3 bucket for model artifacts (with FRAUD_S3_ENDPOINT).")
    target_precision: float = Field(0.8, gt=0, lt=1, description="The decision threshold is the lowest with this precision on valid.")
    train_epochs: int = Field(20, ge=1)
    train_batch_size: int = Field(2048, ge=16)
    train_max_rows: int = Field(1_000_000, ge=1_000, description=(
        "FRAUD_TRAIN_MAX_ROWS: the train split is sampled down to about this many rows (uniformly, seeded, before "
        "the point-in-time join); the valid split by FRAUD_VALID_MAX_ROWS, the test split by FRAUD_TEST_MAX_ROWS."))
    valid_max_rows: int = Field(500_000, ge=1_000, description=(
        "FRAUD_VALID_MAX_ROWS: the valid split is sampled down to about this many rows (uniformly, seeded): about "
        "5,500 frauds at 1,000,000 users, for early stopping, the threshold and the baseline's tuning."))
    test_max_rows: int = Field(500_000, ge=1_000, description=(
        "FRAUD_TEST_MAX_ROWS: the test split is sampled down to about this many rows (uniformly, seeded): half a "
        "million rows hold about 5,500 frauds, enough to measure PR-AUC to about 0.007 (the gate compares models on "
        "the same rows); 100,000 users' test split (265,000 rows) is whole."))
    baseline_tuning_rows: int = Field(250_000, ge=1_000, description=(
        "FRAUD_BASELINE_TUNING_ROWS: the evaluate step tunes the HistGradientBoosting baseline's grid on a uniform "
        "sample of this many train rows, then fits the winner on the whole train split."))
    train_seed: int = 0
    pipeline_users: int = Field(100_000, ge=100, description="Users generated by `fraud pipeline run` when there is no data.")
    pipeline_image: str = Field("quay.io/example/fraud-scoring:latest", description="Image the KFP steps run in on a cluster.")
    kfp_host: str | None = Field(None, description="KFP API endpoint for `fraud retrain` on a cluster.")

    # --- predictor -------------------------------------------------------------------------
    predictor_host: str = Field("127.0.0.1", description="Where the local predictor binds; KServe's own default is 0.0.0.0.")
    predictor_port: int = Field(8080, ge=1, le=65535)
    predictor_max_rows: int = Field(10_000, ge=1, description="Most rows one request may carry.")

    # --- stream scorer (`fraud worker`) ------------------------------------------------------------
    scorer_app_id: str = Field("fraud-scorer", pattern=r"^[A-Za-z0-9._-]+$", description="Faust app id: consumer group and table topic prefix.")
    scorer_group_instance_id: str | None = Field(None, pattern=r"^[A-Za-z0-9._-]+$", description=(
        "Static group membership: a worker restarted under the same id within the session timeout gets its "
        "partitions back without a rebalance. On a cluster, the pod's name."))
    scorer_table_store: Literal["rocksdb", "memory"] = Field("rocksdb", description=(
        "Where the worker keeps its user table: rocksdb (on disk under data_dir, so a restart replays only the "
        "changelog's tail) or memory (rebuilt from the whole changelog on every start)."))
    scorer_state_cache_users: int = Field(50_000, ge=0, description=(
        "With the rocksdb store: most users whose states, as last written, the worker keeps parsed in memory so that "
        "their next batch need not read them back from disk (1-5 KB each, by the merchants they remember; 0 keeps none)."))
    scorer_batch_size: int = Field(2_000, ge=1, description=(
        "Most transactions per micro-batch. A batch takes what the consumer has fetched, up to this; it never "
        "waits for more."))
    scorer_buffer_records: int = Field(20_000, ge=1, description=(
        "Most fetched input records waiting for the agent; beyond it the worker stops fetching until it catches up."))
    scorer_producer_batch_bytes: int = Field(1_000_000, ge=16_384, description=(
        "Largest producer batch the worker sends to one partition. A batch's scores for a partition should fit in one: "
        "the client has one request in flight per broker, with one batch per partition. Keep it at most the "
        "broker's message.max.bytes (1,048,588 by default)."))
    scorer_metrics_host: str = "127.0.0.1"
    scorer_metrics_port: int = Field(9108, ge=1, le=65535, description="Prometheus /metrics of the worker.")
    scorer_source: str = Field("fraud.stream_scorer", description="CloudEvents `source` of score events.")
    feast_push_interval_s: float = Field(1.0, ge=0, description="Shortest time between two Feast pushes of the worker.")
    feast_push_busy_fraction: float = Field(0.25, gt=0, le=1, description=(
        "Most of its time the worker's Feast push process spends pushing: after a push that took t seconds, the next "
        "starts at least t / this after it. Under heavy load Feast lags further behind, and scoring keeps the cores."))
    feast_push_max_pending_rows: int = Field(200_000, ge=1, description=(
        "Most users' rows waiting for the next Feast push; beyond it the oldest batches' rows are dropped (counted in "
        "fraud_scorer_feast_rows_dropped)."))
    profile_cache_ttl_s: float = Field(300.0, gt=0, description="How long the worker reuses a user's Feast profile.")
    profile_cache_max_users: int = Field(100_000, ge=1, description=(
        "Most users' Feast profiles the worker keeps; the least recently seen go first."))
    predictor_timeout_s: float = Field(10.0, gt=0, description="One predictor call, from the worker.")
    predictor_retries: int = Field(4, ge=0, description="Retries of a failing dependency (predictor, Feast, Kafka) before the worker pauses consumption.")
    predictor_backoff_max_s: float = Field(2.0, gt=0, description="Longest wait between two attempts of a failing dependency.")
    transaction_max_amount: float = Field(1_000_000.0, gt=0, allow_inf_nan=False,
                                          description="FRAUD_TRANSACTION_MAX_AMOUNT: a larger amount is dead-lettered by the worker.")
    transaction_max_future_s: float = Field(86_400.0, ge=0, le=366 * 86_400, description=(
        "FRAUD_TRANSACTION_MAX_FUTURE_S: how far ahead of the worker's clock an event_time may be (clock skew)."))

    # --- labels (`fraud labels`, `fraud produce --labels`) ------------------------------------------
    label_delay_median_s: float = Field(2 * 86_400.0, gt=0, description=(
        "FRAUD_LABEL_DELAY_MEDIAN_S: median time from a fraud to its chargeback or confirmation (ground-truth replays)."))
    label_delay_spread: float = Field(0.8, ge=0, description="FRAUD_LABEL_DELAY_SPREAD: sigma of the log-normal delay.")
    label_delay_max_s: float = Field(60 * 86_400.0, gt=0, description="FRAUD_LABEL_DELAY_MAX_S: the longest delay drawn.")
    label_cleared_share: float = Field(0.2, ge=0, le=1, description=(
        "FRAUD_LABEL_CLEARED_SHARE: share of legitimate transactions that get a 'cleared' label; the rest get none."))
    label_chargeback_share: float = Field(0.7, ge=0, le=1, description=(
        "FRAUD_LABEL_CHARGEBACK_SHARE: share of frauds reported by chargeback; the others are 'confirmed'."))
    label_time_scale: float = Field(1.0, gt=0, le=1, description=(
        "FRAUD_LABEL_TIME_SCALE: `fraud produce --labels` publishes a label delay x this after its transaction "
        "(0.001: a 6-hour delay takes 21.6 s); reported_at keeps the full delay."))
    label_source: str = Field("fraud.labels", description="CloudEvents `source` of label events.")

    # --- monitor and automatic retraining (`fraud monitor`) ------------------------------------
    monitor_app_id: str = Field("fraud-monitor", pattern=r"^[A-Za-z0-9._-]+$", description="FRAUD_MONITOR_APP_ID: its consumer group.")
    monitor_metrics_host: str = "127.0.0.1"
    monitor_metrics_port: int = Field(9109, ge=1, le=65535, description="FRAUD_MONITOR_METRICS_PORT: Prometheus /metrics of the monitor.")
    monitor_window: int = Field(2_000, ge=10, description="FRAUD_MONITOR_WINDOW: labelled transactions the quality figures cover.")
    monitor_score_window: int = Field(5_000, ge=10, description="FRAUD_MONITOR_SCORE_WINDOW: latest scores for alert rate and PSI.")
    monitor_join_ttl_s: float = Field(30 * 86_400.0, gt=0, description=(
        "FRAUD_MONITOR_JOIN_TTL_S: how long a score waits for its label (and a label for its score)."))
    monitor_min_labels: int = Field(500, ge=1, description="FRAUD_MONITOR_MIN_LABELS: fewer labelled than this never trigger.")
    monitor_min_pr_auc: float = Field(0.5, ge=0, le=1, description="FRAUD_MONITOR_MIN_PR_AUC: retrain when the window falls below.")
    monitor_max_psi: float = Field(0.25, gt=0, description="FRAUD_MONITOR_MAX_PSI: retrain when the scores' PSI rises above (features' are shown only).")
    monitor_retrain_cooldown_s: float = Field(1_800.0, ge=0, description="FRAUD_MONITOR_RETRAIN_COOLDOWN_S: least time between two requests.")
    monitor_retrain_timeout_s: float = Field(3_600.0, gt=0, description=(
        "FRAUD_MONITOR_RETRAIN_TIMEOUT_S: a request with no new model serving by then no longer counts as in flight."))
    monitor_refresh_s: float = Field(1.0, gt=0, description="FRAUD_MONITOR_REFRESH_S: how often metrics and the trigger are updated.")
    monitor_source: str = Field("fraud.monitor", description="CloudEvents `source` of retraining requests.")

    # --- retraining and redeploy (`fraud retrain`) ---------------------------------------------
    retrain_group: str = Field("fraud-retrainer", description="FRAUD_RETRAIN_GROUP: consumer group of `fraud retrain --listen`.")
    retrain_max_run_s: float = Field(3_600.0, gt=0, description=(
        "FRAUD_RETRAIN_MAX_RUN_S: longest a KFP run is waited for (`fraud retrain --wait`, the listener)."))
    kfp_token: SecretStr | None = Field(None, description=(
        "FRAUD_KFP_TOKEN: bearer token for FRAUD_KFP_HOST (e.g. `oc whoami -t` on OpenShift AI)."))
    kfp_namespace: str | None = Field(None, description="FRAUD_KFP_NAMESPACE: namespace of a multi-user KFP (its profile).")
    kfp_experiment: str = Field("fraud-retraining", min_length=1, description="FRAUD_KFP_EXPERIMENT: KFP experiment of the runs.")
    kfp_ui_host: str | None = Field(None, description="FRAUD_KFP_UI_HOST: base URL of the KFP UI for run links [default: FRAUD_KFP_HOST].")
    kfp_poll_s: float = Field(5.0, gt=0, description="FRAUD_KFP_POLL_S: how often a run's state is read while waiting.")
    deploy_target: Literal["local", "kserve"] = Field("local", description=(
        "FRAUD_DEPLOY_TARGET: where the pipeline's deploy step rolls a promoted version out: `local` asks the "
        "predictor process to reload; `kserve` patches the InferenceService so Knative rolls a new revision."))
    kube_config: Path | None = Field(None, description=(
        "FRAUD_KUBE_CONFIG: kubeconfig of the cluster the `kserve` deploy target patches; default: the pod's "
        "service account in a cluster, else kubectl's current context."))
    kserve_namespace: str = Field("fraud", description="FRAUD_KSERVE_NAMESPACE: namespace of the InferenceService.")
    kserve_canary_percent: int | None = Field(None, ge=1, le=99, description=(
        "FRAUD_KSERVE_CANARY_PERCENT: share of traffic a new revision gets at first (KServe's canaryTrafficPercent); "
        "unset: all of it."))
    kserve_inference_service: str = Field("fraud-detection", description=(
        "FRAUD_KSERVE_INFERENCE_SERVICE: name of the InferenceService the deploy step patches."))
    retrain_labelled_window_days: float = Field(0.0, ge=0, description=(
        "FRAUD_RETRAIN_LABELLED_WINDOW_DAYS: the training data step adds the labelled score events of this many "
        "recent days (the features the model saw + the outcome) to the history; 0 adds none."))

    # --- Feast feature store ---------------------------------------------------------------
    feast_config: str = Field("feature_store.yaml", description=(
        "FRAUD_FEAST_CONFIG: the file of feature_repo/ that Feast opens: feature_store.yaml (SQLite online store "
        "under data_dir) or feature_store.cluster.yaml (Redis online store, registry in S3)."))
    feast_redis_address: str = Field("127.0.0.1:6379", description=(
        "FRAUD_FEAST_REDIS_ADDRESS: host:port of the Redis online store (feature_store.cluster.yaml)."))
    feast_redis_password: SecretStr | None = Field(None, description=(
        "FRAUD_FEAST_REDIS_PASSWORD: password of the Redis online store (from a Secret on a cluster)."))
    feast_registry_uri: str | None = Field(None, pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[^/].*$", description=(
        "FRAUD_FEAST_REGISTRY_URI: s3://bucket/key of the Feast registry on FRAUD_S3_ENDPOINT "
        "(feature_store.cluster.yaml)."))

    # --- producer ---------------------------------------------------------------
    produce_rate: float = Field(0.0, ge=0, description="Events per second; 0 means as fast as possible.")
    producer_linger_ms: int = Field(20, ge=0)
    producer_batch_size: int = Field(256 * 1024, ge=1024)
    producer_compression: Literal["none", "gzip"] = "none"
    producer_final_wait_s: float = Field(30.0, gt=0, description="How long to wait for the last acknowledgements.")
    event_source: str = Field("fraud.producers", description="CloudEvents `source` attribute of our events.")

    @field_validator("kafka_bootstrap")
    @classmethod
    def _check_bootstrap(cls, value: str) -> str:
        addresses = [part.strip() for part in value.split(",") if part.strip()]
        if not addresses:
            raise ValueError("needs at least one host:port")
        for address in addresses:
            match = _BROKER_ADDRESS.match(address)
            if not match or not 0 < int(match.group(3)) <= 65535:
                raise ValueError(f"{address!r} is not host:port (for example 127.0.0.1:9092)")
        return ",".join(addresses)

    @field_validator("feast_redis_address")
    @classmethod
    def _check_redis_address(cls, value: str) -> str:
        match = _BROKER_ADDRESS.match(value)
        if not match or not 0 < int(match.group(3)) <= 65535:
            raise ValueError(f"FRAUD_FEAST_REDIS_ADDRESS {value!r} is not host:port (for example redis:6379)")
        return value

    @field_validator("feast_config")
    @classmethod
    def _check_feast_config(cls, value: str) -> str:
        choices = sorted(path.name for path in FEATURE_REPO.glob("feature_store*.yaml"))
        if value not in choices:
            raise ValueError(f"FRAUD_FEAST_CONFIG {value!r} is not a feature_store file of feature_repo/; use one of: "
                             f"{', '.join(choices)}")
        return value

    @field_validator("raw_uri", "features_uri")
    @classmethod
    def _check_uri(cls, value: str | None) -> str | None:
        if value is not None and "://" in value and not value.startswith(("s3a://", "file://", "hdfs://")):
            raise ValueError(f"{value!r}: use a local path, s3a://, hdfs:// or file://")
        return value.rstrip("/") if value else value

    @field_validator("kafka_sasl_password", "s3_secret_key", "kfp_token", "feast_redis_password")
    @classmethod
    def _refuse_placeholder_password(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value().lower() in _PLACEHOLDER_SECRETS:
            raise ValueError("is a placeholder; set the real secret")
        return value

    @field_validator("feast_redis_password")
    @classmethod
    def _fits_connection_string(cls, value: SecretStr | None) -> SecretStr | None:
        # Feast passes Redis options as "host:port,password=...", split at commas.
        if value is not None and ("," in value.get_secret_value() or not value.get_secret_value()):
            raise ValueError("FRAUD_FEAST_REDIS_PASSWORD must be non-empty and hold no comma (Feast splits its "
                             "Redis connection string at commas)")
        return value

    @field_validator("data_dir", "cache_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @model_validator(mode="after")
    def _check_security(self) -> Settings:
        if self.kafka_security_protocol.startswith("SASL_"):
            if self.kafka_sasl_mechanism is None:
                raise ValueError(f"kafka_security_protocol={self.kafka_security_protocol} needs kafka_sasl_mechanism")
            if not self.kafka_sasl_username or self.kafka_sasl_password is None:
                raise ValueError("SASL needs kafka_sasl_username and kafka_sasl_password")
        if self.profile_fraction + self.valid_fraction + self.test_fraction >= 0.95:
            raise ValueError("profile_fraction + valid_fraction + test_fraction leave (almost) no training window")
        if self.kafka_ssl_cafile is not None and not self.kafka_ssl_cafile.is_file():
            raise ValueError(f"kafka_ssl_cafile {self.kafka_ssl_cafile} does not exist")
        return self

    @property
    def raw_dir(self) -> Path:
        """Generated or ingested raw data: users.parquet and transactions.parquet."""
        return self.data_dir / "raw"

    @property
    def features_dir(self) -> Path:
        """Output of the batch preparation: the feature table, the user profiles and a manifest."""
        return self.data_dir / "features"

    @property
    def predictor_url(self) -> str:
        """Base URL of the predictor."""
        return f"http://{self.predictor_host}:{self.predictor_port}"

    @property
    def raw_location(self) -> str:
        """Where Spark reads raw data: a local folder or an s3a:// URI."""
        return self.raw_uri or str(self.raw_dir)

    @property
    def features_location(self) -> str:
        """Where the prep step writes and Feast reads: a local folder or an s3a:// URI."""
        return self.features_uri or str(self.features_dir)

    @property
    def bootstrap_host_port(self) -> tuple[str, int]:
        """The first bootstrap address, split; the local broker listens there."""
        host, _, port = self.kafka_bootstrap.split(",")[0].rpartition(":")
        return host.strip("[]"), int(port)

    @property
    def topic_partitions(self) -> dict[str, int]:
        """Every topic the product uses, with its partition count."""
        return {
            self.topic_transactions: self.partitions_transactions,
            self.topic_scores: self.partitions_scores,
            self.topic_dlq: self.partitions_dlq,
            self.topic_labels: self.partitions_labels,
            self.topic_retrain: self.partitions_retrain,
        }

    def kafka_client_config(self) -> dict[str, Any]:
        """Connection keyword arguments shared by kafka-python clients."""
        config: dict[str, Any] = {
            "bootstrap_servers": self.kafka_bootstrap.split(","),
            "security_protocol": self.kafka_security_protocol,
            "client_id": self.kafka_client_id,
        }
        if self.kafka_sasl_mechanism is not None:
            config["sasl_mechanism"] = self.kafka_sasl_mechanism
            config["sasl_plain_username"] = self.kafka_sasl_username
            config["sasl_plain_password"] = self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None
        if self.kafka_ssl_cafile is not None:
            config["ssl_cafile"] = str(self.kafka_ssl_cafile)
        return config


def settings_env(settings: Settings) -> dict[str, str]:
    """``settings`` as FRAUD_* environment variables, so a child process (worker, predictor) sees the same values."""
    env = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[f"FRAUD_{name.upper()}"] = str(value)
    return env


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment, with explicit overrides (e.g. CLI options) on top."""
    return Settings(**{key: value for key, value in overrides.items() if value is not None})

"""Settings: defaults, environment, and refusal of nonsense."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from fraud.events import TransactionLimits
from fraud.settings import Settings


def test_defaults_are_the_local_stack(tmp_path: Path) -> None:
    settings = Settings(_env_file=None)
    assert settings.kafka_bootstrap == "127.0.0.1:9092"
    assert settings.kafka_security_protocol == "PLAINTEXT"
    assert settings.data_dir == Path.cwd() / "data"
    assert settings.topic_partitions == {"transactions": 6, "fraud-scores": 6, "transactions-dlq": 1, "fraud-labels": 3,
                                       "fraud-retrain": 1}


def test_environment_with_prefix_moves_the_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FRAUD_DATA_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("FRAUD_PRODUCE_RATE", "250")
    settings = Settings(_env_file=None)
    assert settings.data_dir == tmp_path / "elsewhere"
    assert settings.produce_rate == 250


@pytest.mark.parametrize("rate", [-1, -0.001, float("nan")])
def test_refuses_a_negative_or_missing_rate(rate: float) -> None:
    with pytest.raises(ValidationError, match="produce_rate"):
        Settings(produce_rate=rate, _env_file=None)


@pytest.mark.parametrize(
    "bootstrap",
    ["localhost", "127.0.0.1:", ":9092", "127.0.0.1:99999", "127.0.0.1:0", "host name:9092", "http://x:9092", ",", ""],
)
def test_refuses_a_malformed_bootstrap_address(bootstrap: str) -> None:
    with pytest.raises(ValidationError, match="kafka_bootstrap"):
        Settings(kafka_bootstrap=bootstrap, _env_file=None)


@pytest.mark.parametrize("bootstrap", ["localhost:9092", "b-1.kafka.example.com:9096, b-2.kafka.example.com:9096", "[::1]:9092"])
def test_accepts_real_bootstrap_addresses(bootstrap: str) -> None:
    settings = Settings(kafka_bootstrap=bootstrap, _env_file=None)
    assert settings.kafka_client_config()["bootstrap_servers"] == [part.strip() for part in bootstrap.split(",")]


def test_sasl_ssl_needs_mechanism_and_credentials() -> None:
    with pytest.raises(ValidationError, match="kafka_sasl_mechanism"):
        Settings(kafka_security_protocol="SASL_SSL", _env_file=None)
    with pytest.raises(ValidationError, match="kafka_sasl_username"):
        Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512", _env_file=None)


def test_sasl_ssl_scram_with_ca_file_reaches_the_client_config(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = Settings(
        kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="scorer", kafka_sasl_password="s3cr3t-from-a-vault", kafka_ssl_cafile=ca, _env_file=None,
    )
    config = settings.kafka_client_config()
    assert config["security_protocol"] == "SASL_SSL"
    assert config["sasl_mechanism"] == "SCRAM-SHA-512"
    assert config["sasl_plain_username"] == "scorer"
    assert config["sasl_plain_password"] == "s3cr3t-from-a-vault"
    assert config["ssl_cafile"] == str(ca)
    assert "s3cr3t" not in repr(settings)  # SecretStr keeps it out of logs


def test_plaintext_config_has_no_security_keys() -> None:
    config = Settings(_env_file=None).kafka_client_config()
    assert not {"sasl_mechanism", "sasl_plain_password", "ssl_cafile"} & set(config)


def test_refuses_a_missing_ca_file_and_placeholder_password(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="does not exist"):
        Settings(kafka_ssl_cafile=tmp_path / "missing.crt", _env_file=None)
    with pytest.raises(ValidationError, match="placeholder"):
        Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="PLAIN", kafka_sasl_username="u",
                 kafka_sasl_password="changeme", _env_file=None)


def test_refuses_an_unknown_security_protocol() -> None:
    with pytest.raises(ValidationError, match="kafka_security_protocol"):
        Settings(kafka_security_protocol="TLS", _env_file=None)


def test_locations_default_under_the_data_dir_and_take_s3a_uris(tmp_path: Path) -> None:
    local = Settings(data_dir=tmp_path, _env_file=None)
    assert (local.raw_location, local.features_location) == (str(tmp_path / "raw"), str(tmp_path / "features"))
    remote = Settings(raw_uri="s3a://bucket/raw/", features_uri="s3a://bucket/features", _env_file=None)
    assert (remote.raw_location, remote.features_location) == ("s3a://bucket/raw", "s3a://bucket/features")
    with pytest.raises(ValidationError, match="s3a://"):
        Settings(raw_uri="ftp://host/raw", _env_file=None)


def test_s3a_locations_configure_spark_with_matching_hadoop_aws() -> None:
    from fraud.spark import s3a_conf

    assert s3a_conf(Settings(_env_file=None)) == {}
    config = s3a_conf(Settings(raw_uri="s3a://bucket/raw", s3_endpoint="http://127.0.0.1:9000", s3_access_key="fraud",
                               s3_secret_key="a-real-looking-secret", _env_file=None))
    assert config["spark.jars.packages"].startswith("org.apache.hadoop:hadoop-aws:3.")
    assert config["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:9000"
    assert config["spark.hadoop.fs.s3a.secret.key"] == "a-real-looking-secret"


def test_transaction_limits_default_alike_and_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert TransactionLimits.from_settings(Settings(_env_file=None)) == TransactionLimits()
    monkeypatch.setenv("FRAUD_TRANSACTION_MAX_AMOUNT", "250000")
    monkeypatch.setenv("FRAUD_TRANSACTION_MAX_FUTURE_S", "600")
    limits = TransactionLimits.from_settings(Settings(_env_file=None))
    assert limits == TransactionLimits(max_amount=250_000.0, max_future_s=600.0)


@pytest.mark.parametrize(
    ("name", "value"),
    [("transaction_max_amount", 0), ("transaction_max_amount", float("inf")), ("transaction_max_amount", float("nan")),
     ("transaction_max_future_s", -1), ("transaction_max_future_s", 1e12)],
)
def test_refuses_nonsense_transaction_limits(name: str, value: float) -> None:
    with pytest.raises(ValidationError, match=name):
        Settings(**{name: value}, _env_file=None)


def test_feast_config_selects_a_file_of_the_feature_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(_env_file=None).feast_config == "feature_store.yaml"
    monkeypatch.setenv("FRAUD_FEAST_CONFIG", "feature_store.cluster.yaml")
    assert Settings(_env_file=None).feast_config == "feature_store.cluster.yaml"


@pytest.mark.parametrize("name", ["feature_store.prod.yaml", "../pyproject.toml", "definitions.py", ""])
def test_refuses_a_feast_config_that_is_not_in_the_repo(name: str) -> None:
    with pytest.raises(ValidationError, match="FRAUD_FEAST_CONFIG .* use one of: feature_store.cluster.yaml, feature_store.yaml"):
        Settings(feast_config=name, _env_file=None)


@pytest.mark.parametrize("address", ["redis", "redis:", "redis:0", "redis://redis:6379", "a b:6379"])
def test_refuses_a_malformed_redis_address(address: str) -> None:
    with pytest.raises(ValidationError, match="FRAUD_FEAST_REDIS_ADDRESS"):
        Settings(feast_redis_address=address, _env_file=None)


@pytest.mark.parametrize("password", ["changeme", "a,b", ""])
def test_refuses_a_redis_password_feast_cannot_use(password: str) -> None:
    with pytest.raises(ValidationError, match="feast_redis_password"):
        Settings(feast_redis_password=password, _env_file=None)


def test_redis_password_is_secret_and_registry_uri_is_checked() -> None:
    settings = Settings(feast_redis_address="fraud-redis:6379", feast_redis_password="s3cr3t-redis",
                        feast_registry_uri="s3://feast/fraud/registry.db", _env_file=None)
    assert "s3cr3t-redis" not in repr(settings)
    with pytest.raises(ValidationError, match="feast_registry_uri"):
        Settings(feast_registry_uri="file:///tmp/registry.db", _env_file=None)

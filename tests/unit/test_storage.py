"""Artifact storage: the local filesystem, and S3 through the minio client against a real S3 API (moto)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fraud.errors import FraudError
from fraud.settings import Settings
from fraud.storage import LocalArtifactStore, S3ArtifactStore, artifact_store, fetch


def test_local_store_round_trip(tmp_path: Path) -> None:
    store = artifact_store(Settings(data_dir=tmp_path, _env_file=None))
    assert isinstance(store, LocalArtifactStore)
    source = tmp_path / "model.onnx"
    source.write_bytes(b"onnx bytes")
    uri = store.put(source, "fraud-detection/1/model.onnx")
    assert uri.startswith("file://") and uri.endswith("/artifacts/fraud-detection/1/model.onnx")
    assert fetch(Settings(data_dir=tmp_path, _env_file=None), uri, tmp_path / "copy.onnx").read_bytes() == b"onnx bytes"
    with pytest.raises(FraudError, match="does not exist"):
        store.get(uri.replace("model.onnx", "other.onnx"), tmp_path / "x")


def test_s3_store_round_trip_through_minio(tmp_path: Path, s3_endpoint: str) -> None:
    settings = Settings(data_dir=tmp_path, s3_endpoint=s3_endpoint, s3_access_key="testing",
                        s3_secret_key="testing-secret-key", artifact_bucket="models", _env_file=None)
    store = artifact_store(settings)
    assert isinstance(store, S3ArtifactStore)
    source = tmp_path / "model.onnx"
    source.write_bytes(b"\x08\x07onnx")
    uri = store.put(source, "fraud-detection/1/model.onnx")
    assert uri == "s3://models/fraud-detection/1/model.onnx"
    assert fetch(settings, uri, tmp_path / "back.onnx").read_bytes() == b"\x08\x07onnx"
    with pytest.raises(FraudError, match="NoSuchKey"):
        fetch(settings, "s3://models/missing.onnx", tmp_path / "missing.onnx")


def test_s3_uri_without_s3_settings_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FraudError, match="FRAUD_S3_ENDPOINT"):
        fetch(Settings(data_dir=tmp_path, _env_file=None), "s3://models/a.onnx", tmp_path / "a.onnx")

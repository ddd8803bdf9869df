"""The embedded model registry, and the Kubeflow backend's use of its client."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from fraud.errors import FraudError
from fraud.registry import EmbeddedRegistry, KubeflowModelRegistry, open_registry
from fraud.settings import Settings


def test_versions_count_up_and_one_is_production(tmp_path: Path) -> None:
    registry = EmbeddedRegistry(tmp_path / "registry.json")
    assert registry.models() == [] and registry.production("fraud-detection") is None
    first = registry.register("fraud-detection", "file:///a.onnx", "onnx", "17", {"pr_auc": 0.8})
    second = registry.register("fraud-detection", "file:///b.onnx", "onnx", "17", {"pr_auc": 0.9})
    assert (first.version, second.version) == ("1", "2")
    assert registry.production("fraud-detection") is None  # registering is not promoting
    registry.promote("fraud-detection", "1")
    registry.promote("fraud-detection", "2")
    production = registry.production("fraud-detection")
    assert production is not None and production.version == "2" and production.uri == "file:///b.onnx"
    assert [v.production for v in registry.versions("fraud-detection")] == [False, True]
    assert registry.versions("fraud-detection")[0].metadata == {"pr_auc": 0.8}
    with pytest.raises(FraudError, match="no version '9'"):
        registry.promote("fraud-detection", "9")


def test_concurrent_registrations_get_distinct_versions(tmp_path: Path) -> None:
    registry = EmbeddedRegistry(tmp_path / "registry.json")
    threads = [threading.Thread(target=registry.register, args=("m", f"file:///{n}", "onnx", "17", {})) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(int(v.version) for v in registry.versions("m")) == list(range(1, 21))


def test_open_registry_is_embedded_unless_a_url_is_set(tmp_path: Path) -> None:
    assert isinstance(open_registry(Settings(data_dir=tmp_path, _env_file=None)), EmbeddedRegistry)
    with pytest.raises(FraudError, match="does not answer"):
        open_registry(Settings(data_dir=tmp_path, model_registry_url="http://127.0.0.1:1", _env_file=None))


class _FakeClient:
    """Stands in for model_registry.ModelRegistry: records calls, keeps versions in memory."""

    def __init__(self) -> None:
        self.model: SimpleNamespace | None = None
        self.versions: list[SimpleNamespace] = []
        self.artifacts: dict[str, SimpleNamespace] = {}

    def register_model(self, name, uri, *, model_format_name, model_format_version, version, metadata):
        self.model = self.model or SimpleNamespace(name=name, custom_properties={})
        self.versions.append(SimpleNamespace(name=version, custom_properties=metadata, create_time_since_epoch="1"))
        self.artifacts[version] = SimpleNamespace(uri=uri, model_format_name=model_format_name,
                                                  model_format_version=model_format_version)
        return self.model

    def get_registered_model(self, name):
        return self.model

    def get_model_version(self, name, version):
        return next((v for v in self.versions if v.name == version), None)

    def get_model_artifact(self, name, version):
        return self.artifacts.get(version)

    def get_model_versions(self, name):
        return list(self.versions)

    def get_registered_models(self):
        return [self.model] if self.model else []

    def update(self, model):
        self.model = model
        return model


def test_kubeflow_backend_maps_versions_and_production_onto_the_client() -> None:
    registry = KubeflowModelRegistry.__new__(KubeflowModelRegistry)
    registry.client = _FakeClient()
    version = registry.register("fraud-detection", "s3://models/a.onnx", "onnx", "17", {"threshold": 0.7, "features": ["a"]})
    assert version.version == "1" and version.uri == "s3://models/a.onnx"
    assert registry.client.versions[0].custom_properties == {"threshold": 0.7, "features": '["a"]'}  # flat values only
    registry.promote("fraud-detection", "1")
    assert registry.client.model.custom_properties == {"production_version": "1"}
    assert registry.production("fraud-detection").version == "1"
    assert registry.models() == ["fraud-detection"]

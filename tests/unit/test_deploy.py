"""The deploy step: which backend rolls a version out, and the InferenceService patch the cluster backend sends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fraud.errors import FraudError
from fraud.settings import Settings
from training_pipeline import deploy as deploy_module
from training_pipeline.deploy import VERSION_ANNOTATION, VERSION_ENV, backend_for, deploy, rollout_patch

CUSTOM = {
    "metadata": {"name": "fraud-detection", "resourceVersion": "4711", "annotations": {"team": "fraud"}},
    "spec": {"predictor": {"minReplicas": 1, "containers": [
        {"name": "sidecar", "image": "proxy:1"},
        {"name": "kserve-container", "image": "fraud:1", "args": ["predictor"],
         "env": [{"name": "FRAUD_KAFKA_BOOTSTRAP", "value": "kafka:9092"}, {"name": VERSION_ENV, "value": "3"}]},
    ]}},
}


def test_custom_predictor_gets_the_version_in_its_env_and_keeps_everything_else() -> None:
    patch = rollout_patch(CUSTOM, "4", "s3://models/fraud-detection/x/model.onnx")
    assert patch["metadata"] == {"annotations": {VERSION_ANNOTATION: "4"}, "resourceVersion": "4711"}
    sidecar, predictor = patch["spec"]["predictor"]["containers"]
    assert sidecar == {"name": "sidecar", "image": "proxy:1"}
    assert predictor["image"] == "fraud:1" and predictor["args"] == ["predictor"]
    assert predictor["env"] == [{"name": "FRAUD_KAFKA_BOOTSTRAP", "value": "kafka:9092"}, {"name": VERSION_ENV, "value": "4"}]
    assert CUSTOM["spec"]["predictor"]["containers"][1]["env"][1]["value"] == "3"  # the input is not modified
    assert "minReplicas" not in patch["spec"]["predictor"]  # a merge patch leaves unnamed fields alone


def test_model_format_predictor_gets_the_storage_uri() -> None:
    service = {"metadata": {"name": "fraud"}, "spec": {"predictor": {"model": {"modelFormat": {"name": "onnx"},
                                                                                "storageUri": "s3://models/v1"}}}}
    patch = rollout_patch(service, "2", "s3://models/v2/model.onnx")
    assert patch == {"metadata": {"annotations": {VERSION_ANNOTATION: "2"}},
                     "spec": {"predictor": {"model": {"storageUri": "s3://models/v2/model.onnx"},
                                            "canaryTrafficPercent": None}}}  # null: a merge patch clears an old canary


def test_a_canary_share_goes_into_the_patch() -> None:
    patch = rollout_patch(CUSTOM, "5", "s3://models/v5/model.onnx", canary_percent=10)
    assert patch["spec"]["predictor"]["canaryTrafficPercent"] == 10


def test_a_single_unnamed_container_is_the_predictor() -> None:
    patch = rollout_patch({"spec": {"predictor": {"containers": [{"image": "fraud:1"}]}}}, "7", "file:///m.onnx")
    assert patch["spec"]["predictor"]["containers"] == [{"image": "fraud:1", "env": [{"name": VERSION_ENV, "value": "7"}]}]


def test_a_predictor_without_model_or_containers_is_refused() -> None:
    with pytest.raises(FraudError, match="neither"):
        rollout_patch({"spec": {"predictor": {}}}, "1", "file:///m.onnx")


def test_backend_follows_the_deploy_target(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert backend_for(Settings(_env_file=None)) is deploy_module.deploy_local
    monkeypatch.setenv("FRAUD_DEPLOY_TARGET", "kserve")
    settings = Settings(data_dir=tmp_path, _env_file=None)
    assert backend_for(settings) is deploy_module.deploy_kserve
    monkeypatch.setattr(deploy_module, "deploy_kserve", lambda decision, s: f"patched to {decision['version']}")
    message = deploy({"promoted": True, "version": "5", "uri": "s3://m/5", "reason": "better"}, settings)
    assert message == "deployed fraud-detection v5: patched to 5"
    assert json.loads((tmp_path / "deployments.jsonl").read_text())["target"] == "kserve"


def test_an_unknown_target_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUD_DEPLOY_TARGET", "ftp")
    with pytest.raises(ValueError, match="deploy_target"):
        Settings(_env_file=None)


def test_nothing_promoted_deploys_nothing(tmp_path: Path) -> None:
    message = deploy({"promoted": False, "reason": "kept production v1"}, Settings(data_dir=tmp_path, _env_file=None))
    assert message == "nothing to deploy: kept production v1" and not (tmp_path / "deployments.jsonl").exists()

"""The prep step's `operator` path against a real API server holding the Spark operator's own SparkApplication CRD.

No Spark operator and no Spark run here, so each test plays them: it waits for the step's SparkApplication to
appear, writes the manifest.json a Spark job would have written, and patches the object's status subresource
the way the operator does (COMPLETED, or FAILED with an errorMessage). What is proven is the step's part: an
application the server accepts under strict validation (so the template matches the operator's real schema),
named per run and carrying the run's locations, and a step that returns or fails on the operator's verdict.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fraud.errors import FraudError
from fraud.local_stack.kube import KubeApi
from fraud.settings import Settings
from tests.cluster.conftest import _plural, apply, client_for, create_namespace
from tests.cluster.test_manifests import build
from training_pipeline.prep import PrepResult
from training_pipeline.spark_submit import GROUP, PLURAL, VERSION, load_template, prepare_with_operator

MANIFEST = {"split": {"start": "2026-01-01T00:00:00+00:00", "profile_end": "2026-01-02T00:00:00+00:00",
                      "valid_start": "2026-01-08T00:00:00+00:00", "test_start": "2026-01-09T00:00:00+00:00",
                      "end": "2026-01-10T00:00:00+00:00"},
            "rows": {"profile": 10, "train": 60, "valid": 15, "test": 15}, "features": [], "created": "2026-01-10T00:00:00+00:00"}
COMPLETED = {"applicationState": {"state": "COMPLETED"}, "driverInfo": {}}  # driverInfo: required by the schema


@pytest.fixture(autouse=True)
def _served(kube_api: KubeApi) -> None:
    """The CRDs are installed at the session's start; wait until SparkApplications are served, and their namespace."""
    _plural(kube_api, f"{GROUP}/{VERSION}", "SparkApplication")
    create_namespace(kube_api, "fraud-prep")


def _settings(api: KubeApi, tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path, kube_config=api.kubeconfig, spark_submit="operator",
                    spark_namespace="fraud-prep", spark_poll_s=0.1, pipeline_image="registry.example/fraud:1",
                    raw_uri=str(tmp_path / "raw"), features_uri=str(tmp_path / "features"), **overrides)


def _objects(api: KubeApi) -> Any:
    from kubernetes import client

    return client.CustomObjectsApi(client_for(api))


def _play_the_operator(api: KubeApi, status: dict, known: set[str], step: dict) -> dict:
    """Wait for a new SparkApplication, then give it ``status`` through the status subresource, as the operator would."""
    import time

    for _ in range(200):
        if "error" in step:  # the step failed before the operator had anything to do
            raise step["error"]
        fresh = [item for item in _objects(api).list_namespaced_custom_object(GROUP, VERSION, "fraud-prep", PLURAL)["items"]
                 if item["metadata"]["name"] not in known]
        if fresh:
            app = fresh[0]
            _objects(api).patch_namespaced_custom_object_status(
                GROUP, VERSION, "fraud-prep", PLURAL, app["metadata"]["name"], {"status": status})
            return app
        time.sleep(0.05)
    raise AssertionError("the step created no SparkApplication")


def _run_step(step: Callable[[], PrepResult]) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = step()
        except Exception as error:  # noqa: BLE001 - handed to the test thread
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def _names(api: KubeApi) -> set[str]:
    items = _objects(api).list_namespaced_custom_object(GROUP, VERSION, "fraud-prep", PLURAL)["items"]
    return {item["metadata"]["name"] for item in items}


def test_the_step_submits_an_application_and_returns_once_the_operator_completes_it(kube_api: KubeApi, tmp_path: Path) -> None:
    settings = _settings(kube_api, tmp_path)
    (tmp_path / "features").mkdir()
    (tmp_path / "features" / "manifest.json").write_text(json.dumps(MANIFEST))  # what the Spark job writes
    known = _names(kube_api)
    thread, outcome = _run_step(lambda: prepare_with_operator(settings))
    app = _play_the_operator(kube_api, COMPLETED, known, outcome)
    thread.join(timeout=30)
    assert "error" not in outcome, outcome.get("error")
    result = outcome["result"]
    assert result.rows_per_split == MANIFEST["rows"]
    assert result.features_path == f"{tmp_path}/features/transaction_features.parquet"
    assert result.split.test_start.isoformat() == MANIFEST["split"]["test_start"]
    spec = app["spec"]
    assert app["metadata"]["name"].startswith("fraud-prep-")
    assert spec["arguments"] == ["--raw", f"{tmp_path}/raw", "--out", f"{tmp_path}/features"]
    assert spec["image"] == "registry.example/fraud:1" and spec["type"] == "Python"
    assert spec["driver"]["serviceAccount"] == "fraud-spark"
    assert spec["executor"]["instances"] == settings.spark_executor_instances
    assert spec["driver"]["securityContext"]["readOnlyRootFilesystem"] and spec["driver"]["podSecurityContext"]["runAsNonRoot"]


def test_every_run_gets_its_own_application(kube_api: KubeApi, tmp_path: Path) -> None:
    settings = _settings(kube_api, tmp_path)
    (tmp_path / "features").mkdir()
    (tmp_path / "features" / "manifest.json").write_text(json.dumps(MANIFEST))
    names = []
    for _ in range(2):
        known = _names(kube_api)
        thread, outcome = _run_step(lambda: prepare_with_operator(settings))
        names.append(_play_the_operator(kube_api, COMPLETED, known, outcome)["metadata"]["name"])
        thread.join(timeout=30)
        assert "result" in outcome, outcome.get("error")
    assert names[0] != names[1]


def test_a_failed_application_fails_the_step_with_the_operators_message(kube_api: KubeApi, tmp_path: Path) -> None:
    settings = _settings(kube_api, tmp_path)
    known = _names(kube_api)
    thread, outcome = _run_step(lambda: prepare_with_operator(settings))
    message = "driver container failed with ExitCode: 1, Reason: Error"
    failed = {"applicationState": {"state": "FAILED", "errorMessage": message}, "driverInfo": {}}
    _play_the_operator(kube_api, failed, known, outcome)
    thread.join(timeout=30)
    error = outcome.get("error")
    assert isinstance(error, FraudError) and "ended FAILED" in str(error) and message in str(error)


def test_an_application_never_done_is_deleted_at_the_timeout(kube_api: KubeApi, tmp_path: Path) -> None:
    settings = _settings(kube_api, tmp_path, spark_app_timeout_s=1.0)
    known = _names(kube_api)
    with pytest.raises(FraudError, match="not done after 1s"):
        prepare_with_operator(settings)
    assert _names(kube_api) == known  # nothing left running for nobody


def test_a_template_field_the_operator_does_not_know_is_refused(kube_api: KubeApi, tmp_path: Path) -> None:
    """The tier can fail: strict validation against the operator's generated schema refuses a misspelt field."""
    wrong = load_template()
    wrong["spec"]["driver"]["memoryLimits"] = "8g"  # the real field is memoryLimit
    with pytest.raises(FraudError, match=r'cannot create .* HTTP 400 .*unknown field "spec.driver.memoryLimits"'):
        prepare_with_operator(_settings(kube_api, tmp_path), template=wrong)


def test_the_spark_job_and_the_steps_read_only_settings_that_exist() -> None:
    """Env the template gives the driver, and the pipeline's ConfigMap, are Settings fields (a typo would be ignored)."""
    fields = {f"FRAUD_{name.upper()}" for name in Settings.model_fields}
    driver = load_template()["spec"]["driver"]
    assert {variable["name"] for variable in driver["env"]} - fields == set()
    objects = build("manifests/base")
    config_maps = {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == "ConfigMap"}
    assert {source["configMapRef"]["name"] for source in driver["envFrom"]} <= config_maps.keys()
    assert set(config_maps["fraud-pipeline-settings"]["data"]) - fields == set()
    service_accounts = {obj["metadata"]["name"] for obj in objects if obj["kind"] == "ServiceAccount"}
    assert driver["serviceAccount"] in service_accounts
    values = {key.removeprefix("FRAUD_").lower(): value for key, value in config_maps["fraud-pipeline-settings"]["data"].items()}
    secrets = {"kafka_sasl_password": "from-strimzi-s-secret"}  # the template's secretKeyRef, checked just above
    assert Settings(_env_file=None, **values, **secrets).spark_submit == "operator"  # every value passes its validation


def test_only_pipeline_step_pods_reach_the_model_registry() -> None:
    objects = build("manifests/base")
    policy = next(obj for obj in objects if obj["kind"] == "NetworkPolicy"
                  and obj["spec"]["podSelector"]["matchLabels"].get("component") == "model-registry")
    registry = next(obj for obj in objects if obj["kind"] == "ModelRegistry")
    assert policy["spec"]["podSelector"]["matchLabels"]["app"] == registry["metadata"]["name"]
    (rule,) = policy["spec"]["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": {"pipelines.kubeflow.org/v2_component": "true"}}}]
    assert rule["ports"] == [{"port": registry["spec"]["rest"]["port"], "protocol": "TCP"}]



def test_the_stand_in_crds_refuse_inline_credentials(kube_api: KubeApi) -> None:
    """tests/cluster/crds are strict too: the DSPA's S3 keys can only come from a Secret reference."""
    from kubernetes.client.exceptions import ApiException

    dspa = next(obj for obj in build("manifests/base") if obj["kind"] == "DataSciencePipelinesApplication")
    dspa["spec"]["objectStorage"]["externalStorage"]["accessKey"] = "AKIA..."
    create_namespace(kube_api, "fraud")
    with pytest.raises(ApiException) as refused:
        apply(kube_api, dspa, dry_run=True)
    assert ".spec.objectStorage.externalStorage.accessKey: field not declared in schema" in refused.value.body

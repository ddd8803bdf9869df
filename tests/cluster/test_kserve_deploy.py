"""The deploy step's `kserve` backend against a real API server holding KServe's own InferenceService CRD.

Only the API server runs here: no KServe controller, no Knative, so nothing rolls a revision.
What is proven is what the deploy step is responsible for: a patch the server accepts, which
changes the object's spec (a new generation, the version pinned) and which a conflicting writer
cannot silently overwrite.
"""

from __future__ import annotations

import pytest

from fraud.errors import FraudError
from fraud.local_stack.kube import KubeApi
from fraud.settings import Settings
from tests.cluster.conftest import apply, client_for, create_namespace
from training_pipeline.deploy import VERSION_ANNOTATION, VERSION_ENV, deploy_kserve

ISVC = {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
        "metadata": {"name": "fraud-detection", "namespace": "fraud"},
        "spec": {"predictor": {"minReplicas": 1, "containers": [
            {"name": "kserve-container", "image": "fraud-scoring:latest", "args": ["python", "-m", "predictor"],
             "env": [{"name": "FRAUD_MODEL_NAME", "value": "fraud-detection"}]}]}}}


def _read(api: KubeApi, name: str = "fraud-detection") -> dict:
    from kubernetes import client

    return client.CustomObjectsApi(client_for(api)).get_namespaced_custom_object(
        "serving.kserve.io", "v1beta1", "fraud", "inferenceservices", name)


def test_the_deploy_step_patches_a_real_inference_service(kube_api: KubeApi) -> None:
    create_namespace(kube_api, "fraud")
    apply(kube_api, ISVC)
    before = _read(kube_api)
    settings = Settings(_env_file=None, deploy_target="kserve", kube_config=kube_api.kubeconfig,
                        kserve_namespace="fraud", kserve_inference_service="fraud-detection")
    answer = deploy_kserve({"version": "7", "uri": "s3://models/fraud-detection/7/model.onnx"}, settings)
    after = _read(kube_api)
    assert "patched InferenceService fraud/fraud-detection to version 7" in answer
    assert after["metadata"]["generation"] == before["metadata"]["generation"] + 1  # the spec changed: a new revision
    assert after["metadata"]["annotations"][VERSION_ANNOTATION] == "7"
    env = after["spec"]["predictor"]["containers"][0]["env"]
    assert {"name": VERSION_ENV, "value": "7"} in env and {"name": "FRAUD_MODEL_NAME", "value": "fraud-detection"} in env
    canary = settings.model_copy(update={"kserve_canary_percent": 10})
    assert "with 10% of traffic" in deploy_kserve({"version": "8", "uri": "s3://models/fraud-detection/8/model.onnx"}, canary)
    patched = _read(kube_api)
    assert [e["value"] for e in patched["spec"]["predictor"]["containers"][0]["env"]
            if e["name"] == VERSION_ENV] == ["8"]  # replaced, not appended
    assert patched["spec"]["predictor"]["canaryTrafficPercent"] == 10
    deploy_kserve({"version": "9", "uri": "s3://models/fraud-detection/9/model.onnx"}, settings)
    assert "canaryTrafficPercent" not in _read(kube_api)["spec"]["predictor"]  # the next full rollout clears it


def test_a_patch_that_cannot_land_fails_the_step(kube_api: KubeApi) -> None:
    settings = Settings(_env_file=None, deploy_target="kserve", kube_config=kube_api.kubeconfig,
                        kserve_namespace="fraud", kserve_inference_service="no-such-service")
    with pytest.raises(FraudError, match="cannot patch InferenceService fraud/no-such-service: HTTP 404"):
        deploy_kserve({"version": "9", "uri": "s3://x/model.onnx"}, settings)


def test_strict_validation_refuses_a_field_the_crd_does_not_declare(kube_api: KubeApi) -> None:
    """The tier can fail: the server's own schema check, from KServe's generated CRD."""
    from kubernetes.client.exceptions import ApiException

    create_namespace(kube_api, "fraud")
    wrong = {**ISVC, "metadata": {"name": "typo", "namespace": "fraud"},
             "spec": {"predictor": {**ISVC["spec"]["predictor"], "replicas": 3}}}
    with pytest.raises(ApiException) as refused:
        apply(kube_api, wrong, dry_run=True)
    assert ".spec.predictor.replicas: field not declared in schema" in refused.value.body

"""What each overlay changes: how KServe deploys the predictor, and that both scale the worker on lag."""

from __future__ import annotations

import pytest

from tests.cluster.test_manifests import build


def _predictor(path: str) -> dict:
    return next(obj for obj in build(path) if obj["kind"] == "InferenceService")


def test_kubernetes_serves_the_predictor_as_a_raw_deployment_and_openshift_on_knative() -> None:
    raw = _predictor("manifests/overlays/kubernetes")
    assert raw["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
    serverless = _predictor("manifests/overlays/openshift")
    assert serverless["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Serverless"
    # OpenShift AI makes a Route for an exposed InferenceService; the base labels stay.
    assert serverless["metadata"]["labels"]["networking.kserve.io/visibility"] == "exposed"
    assert serverless["metadata"]["labels"]["modelregistry.opendatahub.io/registered-model-id"] == "fraud-detection"


@pytest.mark.parametrize("path", ["manifests/overlays/kubernetes", "manifests/overlays/openshift"])
def test_each_overlay_scales_the_worker_on_consumer_lag(path: str) -> None:
    assert [obj["metadata"]["name"] for obj in build(path) if obj["kind"] == "ScaledObject"] == ["fraud-worker"]

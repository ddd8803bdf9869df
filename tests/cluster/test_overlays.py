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


@pytest.mark.parametrize("path", ["manifests/overlays/kubernetes", "manifests/overlays/openshift"])
def test_keda_reads_the_lag_as_a_kafka_user_of_its_own(path: str) -> None:
    objects = build(path)
    trigger = next(obj for obj in objects if obj["kind"] == "ScaledObject")["spec"]["triggers"][0]
    auth = next(obj for obj in objects if obj["kind"] == "TriggerAuthentication"
                and obj["metadata"]["name"] == trigger["authenticationRef"]["name"])
    users = {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == "KafkaUser"}
    password = next(ref for ref in auth["spec"]["secretTargetRef"] if ref["parameter"] == "password")
    user = users[password["name"]]  # Strimzi names a KafkaUser's Secret after it
    # KEDA spells the mechanism scram_sha512, Strimzi scram-sha-512
    assert trigger["metadata"]["sasl"] == "scram_sha512" and user["spec"]["authentication"]["type"] == "scram-sha-512"
    assert {acl["operations"][0] for acl in user["spec"]["authorization"]["acls"]} == {"Describe"}


def test_a_worker_rejoins_under_its_pod_name() -> None:
    worker = next(obj for obj in build("manifests/base") if obj["metadata"]["name"] == "fraud-worker"
                  and obj["kind"] == "Deployment")
    env = {v["name"]: v for v in worker["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["FRAUD_SCORER_GROUP_INSTANCE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"

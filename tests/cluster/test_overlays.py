"""What each overlay changes: how KServe deploys the predictor, and that both scale the worker on lag."""

from __future__ import annotations

import pytest

from tests.cluster.test_manifests import OVERLAYS, build


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


def _worker(path: str) -> dict:
    return next(obj for obj in build(path) if obj["metadata"]["name"] == "fraud-worker" and obj["kind"] == "StatefulSet")


def test_a_worker_rejoins_under_its_pod_name() -> None:
    worker = _worker("manifests/base")
    env = {v["name"]: v for v in worker["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["FRAUD_SCORER_GROUP_INSTANCE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


@pytest.mark.parametrize("path", OVERLAYS)
def test_each_worker_keeps_its_own_disk_for_its_table_across_restarts_and_rolling_updates(path: str) -> None:
    """A claim per pod (a StatefulSet's name is stable: fraud-worker-N), mounted where Settings puts the table."""
    objects = build(path)
    worker = next(obj for obj in objects if obj["metadata"]["name"] == "fraud-worker" and obj["kind"] == "StatefulSet")
    pod = worker["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    claims = {claim["metadata"]["name"]: claim for claim in worker["spec"]["volumeClaimTemplates"]}
    config = next(obj for obj in objects if obj["kind"] == "ConfigMap" and obj["metadata"]["name"] == "fraud-settings")
    data_dir = config["data"]["FRAUD_DATA_DIR"]
    volume = next(name for name, mount in mounts.items() if mount == data_dir)
    assert volume in claims and claims[volume]["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert volume not in {v["name"] for v in pod.get("volumes", [])}  # not an emptyDir, gone with the pod
    assert config["data"].get("FRAUD_SCORER_TABLE_STORE", "rocksdb") == "rocksdb"
    assert worker["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"] == "Retain"
    if path.endswith("kubernetes"):  # the image's non-root user writes the volume through the pod's group
        assert pod["securityContext"]["fsGroup"] == 1001
    governing = next(obj for obj in objects if obj["kind"] == "Service"
                     and obj["metadata"]["name"] == worker["spec"]["serviceName"])
    assert governing["spec"]["clusterIP"] == "None"
    assert governing["spec"]["selector"].items() <= pod_labels(worker).items()


def pod_labels(workload: dict) -> dict:
    return workload["spec"]["template"]["metadata"]["labels"]

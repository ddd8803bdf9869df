"""manifests/: kustomize builds them, and the real API server accepts every object with strict validation.

The CRD-backed kinds are validated against the operators' own schemas (scripts/kube/build.sh generates
KServe's); a kind whose CRD is not installed here would fail the test rather than pass unchecked.
Nothing runs the objects: there is no kubelet, no KServe controller.
"""

from __future__ import annotations

import subprocess

import pytest
import yaml

from fraud.local_stack.kube import CACHE, KubeApi
from fraud.settings import Settings
from stream_scorer.metrics import LIVE_PATH, READY_PATH
from tests.cluster.conftest import apply
from tests.conftest import REPO

OVERLAYS = ["manifests/base", "manifests/overlays/kubernetes", "manifests/overlays/openshift"]
WORKLOADS = ("Deployment", "StatefulSet")  # the kinds whose pod template runs our containers


def build(path: str) -> list[dict]:
    """`kubectl kustomize` (the kubectl built from the same Kubernetes module) of one kustomization."""
    built = subprocess.run([str(CACHE / "bin" / "kubectl"), "kustomize", str(REPO / path)], check=True,
                           capture_output=True, text=True)
    return [doc for doc in yaml.safe_load_all(built.stdout) if doc]


def _containers(objects: list[dict]) -> list[dict]:
    found = []
    for obj in objects:
        spec = obj.get("spec", {})
        pod = spec.get("template", {}).get("spec", {}) if obj["kind"] in WORKLOADS else spec.get("predictor", {})
        found += pod.get("containers", [])
    return found


@pytest.mark.parametrize("path", OVERLAYS)
def test_every_object_applies_with_server_side_dry_run_and_strict_validation(kube_api: KubeApi, path: str) -> None:
    objects = build(path)
    namespaces = [obj for obj in objects if obj["kind"] == "Namespace"]
    for namespace in namespaces:  # a dry run does not create the namespace the others need
        apply(kube_api, namespace)
    errors = {}
    for obj in objects:
        try:
            apply(kube_api, obj, dry_run=True)
        except Exception as error:  # noqa: BLE001 - collected, so one run names every refusal
            errors[f"{obj['kind']}/{obj['metadata']['name']}"] = getattr(error, "body", str(error))
    assert errors == {}
    assert {obj["kind"] for obj in objects} >= {"Deployment", "StatefulSet", "InferenceService", "NetworkPolicy", "ConfigMap",
                                                "ServiceMonitor", "PodMonitor"}


@pytest.mark.parametrize("path", OVERLAYS)
def test_every_env_var_is_a_setting_and_the_ports_are_the_codes(path: str) -> None:
    objects = build(path)
    fields = {f"FRAUD_{name.upper()}" for name in Settings.model_fields}
    env_from = {source["configMapRef"]["name"] for container in _containers(objects)
                for source in container.get("envFrom", []) if "configMapRef" in source}
    config = {key for obj in objects if obj["kind"] == "ConfigMap" and obj["metadata"]["name"] in env_from
              for key in obj.get("data", {})}
    env = {variable["name"]: variable.get("value") for container in _containers(objects)
           for variable in container.get("env", [])}
    assert (config | set(env)) - fields == set()  # a typo here would be silently ignored by Settings
    defaults = Settings(_env_file=None)
    ports = {container["name"]: [p["containerPort"] for p in container.get("ports", [])]
             for container in _containers(objects)}
    assert ports["worker"] == [defaults.scorer_metrics_port] == [int(env["FRAUD_SCORER_METRICS_PORT"])]
    assert ports["monitor"] == [defaults.monitor_metrics_port] == [int(env["FRAUD_MONITOR_METRICS_PORT"])]
    assert ports["kserve-container"] == [defaults.predictor_port] == [int(env["FRAUD_PREDICTOR_PORT"])]
    predictor = next(c for c in _containers(objects) if c["name"] == "kserve-container")
    # The V2 health routes of KServe's ModelServer; tests/predictor calls both on the real predictor.
    assert predictor["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert predictor["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    worker = next(c for c in _containers(objects) if c["name"] == "worker")
    assert worker["livenessProbe"]["httpGet"]["path"] == LIVE_PATH  # alive while recovering: never killed for it
    assert worker["readinessProbe"]["httpGet"]["path"] == READY_PATH
    assert all(c["securityContext"]["readOnlyRootFilesystem"] for c in _containers(objects))


def test_the_worker_scales_on_its_own_consumer_group_and_never_past_the_partitions() -> None:
    defaults = Settings(_env_file=None)
    scaled = next(obj for obj in build("manifests/overlays/kubernetes") if obj["kind"] == "ScaledObject")
    trigger = scaled["spec"]["triggers"][0]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["consumerGroup"] == defaults.scorer_app_id  # the Faust app id is the group
    assert trigger["metadata"]["topic"] == defaults.topic_transactions
    assert scaled["spec"]["maxReplicaCount"] <= defaults.partitions_transactions
    target = scaled["spec"]["scaleTargetRef"]
    worker = next(obj for obj in build("manifests/overlays/kubernetes") if obj["metadata"]["name"] == target["name"]
                  and obj["kind"] == target["kind"])  # KEDA's default kind is Deployment: it must be named
    assert (worker["apiVersion"], worker["kind"]) == (target["apiVersion"], "StatefulSet")
    behaviour = scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behaviour["scaleDown"]["stabilizationWindowSeconds"] >= 300  # a rebalance stalls consumption


def test_prometheus_scrapes_ports_that_exist() -> None:
    """Each ServiceMonitor's port is a port of a Service it selects; the PodMonitor's, a port of the predictor."""
    objects = build("manifests/base")
    services = [obj for obj in objects if obj["kind"] == "Service"]
    for monitor in (obj for obj in objects if obj["kind"] == "ServiceMonitor"):
        wanted = monitor["spec"]["selector"]["matchLabels"]
        selected = [s for s in services if wanted.items() <= s["metadata"].get("labels", {}).items()]
        assert selected, monitor["metadata"]["name"]
        for endpoint in monitor["spec"]["endpoints"]:
            assert any(endpoint["port"] == port["name"] for s in selected for port in s["spec"]["ports"])
    pod_monitor = next(obj for obj in objects if obj["kind"] == "PodMonitor")
    predictor = next(c for c in _containers(objects) if c["name"] == "kserve-container")
    assert {e["port"] for e in pod_monitor["spec"]["podMetricsEndpoints"]} <= {p["name"] for p in predictor["ports"]}

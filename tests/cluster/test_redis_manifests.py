"""manifests/base/redis.yaml against the code: Feast's clients get everything feature_store.cluster.yaml needs,
reach Redis at the Service's address, and are the only pods the NetworkPolicy lets in."""

from __future__ import annotations

import re

from fraud.settings import FEATURE_REPO, Settings
from tests.cluster.test_manifests import WORKLOADS, build

FEAST_CLIENTS = {"worker", "kserve-container"}  # the stream worker and the predictor


def _pod_specs(objects: list[dict]) -> dict[str, tuple[dict, dict]]:
    """Container name -> (the container, its pod's labels); KServe labels the predictor's pods with the ISVC's name."""
    found = {}
    for obj in objects:
        if obj["kind"] in WORKLOADS:
            template = obj["spec"]["template"]
            for container in template["spec"]["containers"]:
                found[container["name"]] = (container, template["metadata"].get("labels", {}))
        elif obj["kind"] == "InferenceService":
            labels = {"serving.kserve.io/inferenceservice": obj["metadata"]["name"]}
            for container in obj["spec"]["predictor"]["containers"]:
                found[container["name"]] = (container, labels)
    return found


def test_feast_clients_get_every_setting_the_cluster_file_needs() -> None:
    objects = build("manifests/base")
    config = next(obj for obj in objects if obj["kind"] == "ConfigMap" and obj["metadata"]["name"] == "fraud-settings")
    assert config["data"]["FRAUD_FEAST_CONFIG"] == "feature_store.cluster.yaml"
    needed = set(re.findall(r"\$\{(FRAUD_[A-Z0-9_]+)\}", (FEATURE_REPO / "feature_store.cluster.yaml").read_text()))
    defaults = Settings(_env_file=None)
    needed = {name for name in needed if getattr(defaults, name.removeprefix("FRAUD_").lower()) is None}
    assert "FRAUD_FEAST_REDIS_PASSWORD" in needed and "FRAUD_FEAST_REGISTRY_URI" in needed
    pods = _pod_specs(objects)
    assert FEAST_CLIENTS <= set(pods)
    for name, (container, _) in pods.items():
        if name in FEAST_CLIENTS:
            given = set(config["data"]) | {variable["name"] for variable in container.get("env", [])}
            assert needed - given == set(), name
            password = next(v for v in container["env"] if v["name"] == "FRAUD_FEAST_REDIS_PASSWORD")
            assert password["valueFrom"]["secretKeyRef"] == {"name": "fraud-redis", "key": "password"}


def test_redis_is_at_the_configured_address_and_only_feast_clients_reach_it() -> None:
    objects = build("manifests/base")
    config = next(obj for obj in objects if obj["kind"] == "ConfigMap" and obj["metadata"]["name"] == "fraud-settings")
    host, port = config["data"]["FRAUD_FEAST_REDIS_ADDRESS"].split(":")
    service = next(obj for obj in objects if obj["kind"] == "Service" and obj["metadata"]["name"] == host)
    assert int(port) in [p["port"] for p in service["spec"]["ports"]]
    pods = _pod_specs(objects)
    redis, redis_labels = pods["redis"]
    assert service["spec"]["selector"].items() <= redis_labels.items()
    assert redis["env"][0]["valueFrom"]["secretKeyRef"] == {"name": "fraud-redis", "key": "password"}
    policy = next(obj for obj in objects if obj["kind"] == "NetworkPolicy"
                  and obj["spec"]["podSelector"]["matchLabels"].items() <= redis_labels.items())
    allowed = [peer["podSelector"]["matchLabels"] for rule in policy["spec"]["ingress"] for peer in rule["from"]]
    admitted = {name for name, (_, labels) in pods.items() if any(wanted.items() <= labels.items() for wanted in allowed)}
    assert admitted == FEAST_CLIENTS
    assert [p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]] == [int(port)]

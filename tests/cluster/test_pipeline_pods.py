"""The compiled pipeline's step pods get what the manifests provide: every ConfigMap key, Secret and label exists.

kfp-kubernetes writes the pods' settings into the pipeline YAML (`platforms.kubernetes`); nothing checks them
against the cluster until a run fails. Here each one is held to manifests/base.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from fraud.settings import Settings
from tests.cluster.test_manifests import _containers, build
from training_pipeline.pipeline import CLUSTER_POD_LABELS, compile_pipeline

STEPS = {"exec-prep", "exec-features", "exec-training-data", "exec-train-model", "exec-evaluate", "exec-register",
         "exec-deploy"}


def _executors(tmp_path: Path) -> dict:
    compiled = compile_pipeline("registry.example/fraud:1", tmp_path / "pipeline.yaml")
    documents = list(yaml.safe_load_all(compiled.read_text()))
    return documents[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def test_every_step_pod_gets_every_key_of_the_settings_config_maps_as_settings(tmp_path: Path) -> None:
    objects = build("manifests/base")
    config_maps = {obj["metadata"]["name"]: obj["data"] for obj in objects if obj["kind"] == "ConfigMap"}
    fields = {f"FRAUD_{name.upper()}" for name in Settings.model_fields}
    executors = _executors(tmp_path)
    assert set(executors) == STEPS
    for name, executor in executors.items():
        for source in executor["configMapAsEnv"]:
            keys = {pair["configMapKey"] for pair in source["keyToEnv"]}
            assert keys == set(config_maps[source["configMapName"]]), (name, source["configMapName"])  # no key left out
            assert {pair["envVar"] for pair in source["keyToEnv"]} <= fields, name
        assert {s["configMapName"] for s in executor["configMapAsEnv"]} == {"fraud-settings", "fraud-pipeline-settings"}


def test_the_step_pods_secrets_are_those_the_cluster_has_and_their_label_lets_them_reach_redis(tmp_path: Path) -> None:
    objects = build("manifests/base")
    fields = {f"FRAUD_{name.upper()}" for name in Settings.model_fields}
    referenced = {(ref["name"], ref["key"]) for container in _containers(objects)  # the manifests' own pods' Secrets
                  for variable in container.get("env", [])
                  if (ref := variable.get("valueFrom", {}).get("secretKeyRef"))}
    kafka_users = {obj["metadata"]["name"] for obj in objects if obj["kind"] == "KafkaUser"}
    redis_policy = next(obj for obj in objects if obj["kind"] == "NetworkPolicy"
                        and obj["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name") == "fraud-redis")
    admitted = [peer["podSelector"]["matchLabels"] for rule in redis_policy["spec"]["ingress"]
                for peer in rule["from"] if "podSelector" in peer]
    for name, executor in _executors(tmp_path).items():
        for secret in executor["secretAsEnv"]:
            for pair in secret["keyToEnv"]:
                assert pair["envVar"] in fields, name
                # a Secret another pod reads with the same key, or the one Strimzi writes for a KafkaUser
                assert (secret["secretName"], pair["secretKey"]) in referenced or (
                    secret["secretName"] in kafka_users and pair["secretKey"] == "password"), (name, secret["secretName"])
        labels = executor["podMetadata"]["labels"]
        assert labels == CLUSTER_POD_LABELS
        assert any(selector.items() <= labels.items() for selector in admitted), name

"""Kafka on a cluster (manifests/base/kafka.yaml): Strimzi's own schemas accept it, and it matches fraud/settings.py.

The CRDs are Strimzi 1.2.0's, generated from its Java API types by its own crd-generator (scripts/kube/build.sh),
so the API server checks every field the way a cluster with Strimzi installed would. No operator runs here:
whether Kafka then starts is not tested, only that the operator would be handed valid, consistent objects.
"""

from __future__ import annotations

import copy
import json
import secrets
from collections.abc import Callable

import faust
import pytest
from kubernetes.client.exceptions import ApiException
from pydantic import SecretStr

from fraud.local_stack.kube import KubeApi
from fraud.settings import Settings
from stream_scorer.app import STATE_TABLE
from tests.cluster.conftest import apply, client_for
from tests.cluster.test_manifests import build

STRIMZI = "kafka.strimzi.io/v1"
KINDS = {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser"}
DAY_MS = 86_400_000


@pytest.fixture(scope="module")
def objects() -> list[dict]:
    return build("manifests/base")


def of_kind(objects: list[dict], kind: str) -> list[dict]:
    return [obj for obj in objects if obj["kind"] == kind]


def topic_name(topic: dict) -> str:
    """The Kafka topic a KafkaTopic stands for (spec.topicName when Kafka's name is not a valid Kubernetes one)."""
    return topic["spec"].get("topicName", topic["metadata"]["name"])


def faust_topics(settings: Settings) -> dict[str, int]:
    """The topics Faust itself declares, named by Faust: the worker's table changelog, each app's leader topic."""
    scorer, monitor = faust.App(settings.scorer_app_id), faust.App(settings.monitor_app_id)
    table = scorer.Table(STATE_TABLE, default=None, partitions=settings.partitions_transactions)
    return {table.changelog_topic.get_topic_name(): settings.partitions_transactions,
            scorer._leader_assignor._leader_topic_name: 1, monitor._leader_assignor._leader_topic_name: 1}


def acls(user: dict, resource: str) -> dict[str, set[str]]:
    """A KafkaUser's allowed operations on each named resource of one type (topic, group, ...)."""
    found: dict[str, set[str]] = {}
    for acl in user["spec"]["authorization"]["acls"]:
        if acl["resource"]["type"] == resource:
            found.setdefault(acl["resource"]["name"], set()).update(acl["operations"])
    return found


def test_strimzi_serves_v1_and_every_kafka_object_applies_with_strict_validation(kube_api: KubeApi,
                                                                                 objects: list[dict]) -> None:
    discovery = client_for(kube_api).call_api(f"/apis/{STRIMZI}", "GET", auth_settings=["BearerToken"],
                                              response_type="object", _return_http_data_only=True)
    assert {resource["kind"] for resource in discovery["resources"]} >= KINDS
    strimzi = [obj for obj in objects if obj["apiVersion"] == STRIMZI]
    assert {obj["kind"] for obj in strimzi} == KINDS
    for namespace in of_kind(objects, "Namespace"):
        apply(kube_api, namespace)
    for obj in strimzi:
        apply(kube_api, obj, dry_run=True)


def _misspell_partitions(objects: list[dict]) -> dict:
    topic = copy.deepcopy(of_kind(objects, "KafkaTopic")[0])
    topic["spec"]["partiton"] = topic["spec"].pop("partitions")
    return topic


def _port_as_text(objects: list[dict]) -> dict:
    kafka = copy.deepcopy(of_kind(objects, "Kafka")[0])
    kafka["spec"]["kafka"]["listeners"][0]["port"] = "9092"
    return kafka


def _operation_kafka_lacks(objects: list[dict]) -> dict:
    user = copy.deepcopy(of_kind(objects, "KafkaUser")[0])
    user["spec"]["authorization"]["acls"][0]["operations"] = ["Produce"]
    return user


@pytest.mark.parametrize(("break_it", "message"), [
    (_misspell_partitions, ".spec.partiton: field not declared in schema"),
    (_port_as_text, ".spec.kafka.listeners[0].port: expected numeric (int or float), got string"),
    (_operation_kafka_lacks, 'spec.authorization.acls[0].operations[0]: Unsupported value: "Produce"'),
])
def test_the_server_refuses_a_malformed_strimzi_object(kube_api: KubeApi, objects: list[dict],
                                                       break_it: Callable[[list[dict]], dict], message: str) -> None:
    """The schemas are really enforced: a typo or a wrong type is refused, not silently dropped or coerced.

    Server-side apply first converts the object to the CRD's structural schema, and an undeclared field or a
    wrong type fails there (500, "failed to create typed patch object"); a value outside an enum is the schema
    validation's 422.
    """
    for namespace in of_kind(objects, "Namespace"):
        apply(kube_api, namespace)
    with pytest.raises(ApiException) as refused:
        apply(kube_api, break_it(objects), dry_run=True)
    assert message in json.loads(refused.value.body)["message"]


def test_every_topic_is_one_the_product_uses_with_its_partitions(objects: list[dict]) -> None:
    settings = Settings(_env_file=None)
    declared = {topic_name(topic): topic for topic in of_kind(objects, "KafkaTopic")}
    wanted = settings.topic_partitions | faust_topics(settings)
    assert {name: topic["spec"]["partitions"] for name, topic in declared.items()} == wanted
    assert all(topic["metadata"]["labels"]["strimzi.io/cluster"] == "fraud" for topic in declared.values())
    # Keyed by user_id: compaction would keep one score or label per user. The table's changelog is the opposite.
    policy = {name: topic["spec"].get("config", {}).get("cleanup.policy", "delete") for name, topic in declared.items()}
    changelog, *_ = faust_topics(settings)
    assert {name for name, value in policy.items() if value == "compact"} == {changelog}
    # A score waits up to monitor_join_ttl_s for its label; both must still be there to be joined.
    for name in (settings.topic_scores, settings.topic_labels):
        assert declared[name]["spec"]["config"]["retention.ms"] >= settings.monitor_join_ttl_s * 1000
    assert declared[settings.topic_transactions]["spec"]["config"]["retention.ms"] >= 7 * DAY_MS


def test_every_acl_names_a_declared_topic_and_the_apps_own_groups(objects: list[dict]) -> None:
    settings = Settings(_env_file=None)
    topics = {topic_name(topic) for topic in of_kind(objects, "KafkaTopic")}
    users = {user["metadata"]["name"]: user for user in of_kind(objects, "KafkaUser")}
    for user in users.values():
        assert user["spec"]["authentication"]["type"] == "scram-sha-512"
        for acl in user["spec"]["authorization"]["acls"]:
            assert acl["resource"].get("patternType", "literal") == "literal"  # exact names, never a prefix
            assert acl["resource"]["type"] in {"topic", "group"} and "All" not in acl["operations"]
            assert acl.get("type", "allow") == "allow"
        assert set(acls(user, "topic")) <= topics
    assert set(acls(users["fraud-scorer"], "group")) == {settings.scorer_app_id}  # the Faust app id is the group
    assert set(acls(users["fraud-monitor"], "group")) == {settings.monitor_app_id}
    assert set(acls(users["fraud-pipeline"], "group")) == {settings.retrain_group}
    # Who may write what: each topic has exactly the writers the data flow says.
    writers = {topic: {name for name, user in users.items() if "Write" in acls(user, "topic").get(topic, set())}
               for topic in topics}
    changelog, scorer_leader, monitor_leader = faust_topics(settings)  # in that order
    assert writers == {settings.topic_transactions: {"fraud-producer"}, settings.topic_labels: {"fraud-producer"},
                       settings.topic_scores: {"fraud-scorer"}, settings.topic_dlq: {"fraud-scorer"},
                       changelog: {"fraud-scorer"}, settings.topic_retrain: {"fraud-monitor"},
                       scorer_leader: set(), monitor_leader: set()}


def test_each_kafka_client_deployment_logs_in_as_a_declared_user_with_its_secret(objects: list[dict]) -> None:
    users = {user["metadata"]["name"]: user for user in of_kind(objects, "KafkaUser")}
    kafka = of_kind(objects, "Kafka")[0]
    listener = kafka["spec"]["kafka"]["listeners"][0]
    config = next(obj for obj in objects if obj["kind"] == "ConfigMap" and obj["metadata"]["name"] == "fraud-settings")
    # Strimzi's bootstrap Service is `<cluster>-kafka-bootstrap`, on the listener's port.
    assert config["data"]["FRAUD_KAFKA_BOOTSTRAP"] == f"{kafka['metadata']['name']}-kafka-bootstrap:{listener['port']}"
    logged_in = set()
    for deployment in of_kind(objects, "Deployment") + of_kind(objects, "StatefulSet"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            env = {variable["name"]: variable for variable in container.get("env", [])}
            if "FRAUD_KAFKA_SASL_USERNAME" not in env:
                continue
            user = env["FRAUD_KAFKA_SASL_USERNAME"]["value"]
            assert user in users
            assert env["FRAUD_KAFKA_SASL_PASSWORD"]["valueFrom"] == {"secretKeyRef": {"name": user, "key": "password"}}
            mechanism = env["FRAUD_KAFKA_SASL_MECHANISM"]["value"]
            assert mechanism.lower() == users[user]["spec"]["authentication"]["type"] == listener["authentication"]["type"]
            protocol = env["FRAUD_KAFKA_SECURITY_PROTOCOL"]["value"]
            assert protocol == ("SASL_SSL" if listener["tls"] else "SASL_PLAINTEXT")
            # What the container gets is a valid Settings (the password stands in for the Secret's).
            Settings(_env_file=None, kafka_bootstrap=config["data"]["FRAUD_KAFKA_BOOTSTRAP"],
                     kafka_security_protocol=protocol, kafka_sasl_mechanism=mechanism, kafka_sasl_username=user,
                     kafka_sasl_password=SecretStr(secrets.token_urlsafe(12)))
            logged_in.add(user)
    assert logged_in == {"fraud-scorer", "fraud-monitor"}

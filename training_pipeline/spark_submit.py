"""The prep step on a cluster (FRAUD_SPARK_SUBMIT=operator): a SparkApplication for the Spark operator.

The step's own pod only submits and waits. The operator runs spark-submit; Spark's driver pod runs
training_pipeline/prep_driver.py (the same ``prepare`` as a local run) with its executors beside it and
writes the features, the profiles and manifest.json to the run's output location, where the step reads
the result back. The application is created with strict field validation, so a template field the
operator's schema does not know fails the step instead of being dropped silently.
"""

from __future__ import annotations

import copy
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from fraud.errors import FraudError
from fraud.settings import Settings
from training_pipeline.deploy import api_message, kube_client
from training_pipeline.prep import PrepResult, read_result

log = logging.getLogger(__name__)

GROUP, VERSION, PLURAL = "sparkoperator.k8s.io", "v1beta2", "sparkapplications"
TEMPLATE = Path(__file__).with_name("spark_prep.yaml")
COMPLETED = "COMPLETED"
FAILED = ("FAILED", "SUBMISSION_FAILED")  # the operator's terminal failures; its other states are on the way


@dataclass(frozen=True)
class SparkRun:
    """One prep run on the cluster: its SparkApplication's name and namespace, the locations its job reads and writes."""

    name: str
    namespace: str
    raw: str
    out: str

    @classmethod
    def new(cls, settings: Settings, raw: str | None = None, out: str | None = None) -> SparkRun:
        """A uniquely named run: two retrainings never collide, and a retry never finds its predecessor's object."""
        name = f"fraud-prep-{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
        return cls(name, settings.spark_namespace, raw or settings.raw_location, out or settings.features_location)

    def __str__(self) -> str:
        return f"SparkApplication {self.namespace}/{self.name}"


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """The prep SparkApplication template shipped with the code."""
    return yaml.safe_load(path.read_text())


def application(template: dict[str, Any], run: SparkRun, settings: Settings) -> dict[str, Any]:
    """The SparkApplication of ``run``: the template with the run's name, locations, image and sizes (pure)."""
    app = copy.deepcopy(template)
    app["metadata"] = {**app.get("metadata", {}), "name": run.name, "namespace": run.namespace}
    spec = app["spec"]
    spec["image"] = settings.pipeline_image
    spec["arguments"] = ["--raw", run.raw, "--out", run.out]
    spec["driver"]["memory"] = settings.spark_driver_memory
    spec["executor"]["instances"] = settings.spark_executor_instances
    return app


def prepare_with_operator(settings: Settings, raw: str | None = None, out: str | None = None,
                          template: dict[str, Any] | None = None) -> PrepResult:
    """Submit the prep job, wait until the operator reports it COMPLETED, and read back what it wrote."""
    from kubernetes import client

    run = SparkRun.new(settings, raw, out)
    api = client.CustomObjectsApi(kube_client(settings))
    submit(api, application(template or load_template(), run, settings))
    wait_until_done(api, run, settings)
    return read_result(settings, run.out)


def submit(api: Any, body: dict[str, Any]) -> None:  # api: kubernetes.client.CustomObjectsApi
    """Create the SparkApplication; the server's schema check is strict, so a misspelt field is an error."""
    from kubernetes.client.exceptions import ApiException

    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    try:
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body, field_validation="Strict")
    except ApiException as error:
        raise FraudError(f"cannot create SparkApplication {namespace}/{name}: HTTP {error.status} {error.reason}"
                         f"{api_message(error.body)}") from error
    log.info("submitted SparkApplication %s/%s: %s", namespace, name, " ".join(body["spec"]["arguments"]))


def wait_until_done(api: Any, run: SparkRun, settings: Settings) -> None:
    """Poll the application's state until COMPLETED; a failure or the timeout fails the step.

    Polling rather than a watch: a watch connection is dropped now and then over an hour-long job, and a
    read every few seconds costs the API server nothing worth saving.
    """
    deadline = time.monotonic() + settings.spark_app_timeout_s
    last = None
    while True:
        state, error = application_state(api, run)
        if state != last:
            log.info("%s: %s", run, state or "not yet picked up by the operator")
            last = state
        if state == COMPLETED:
            return
        if state in FAILED:
            raise FraudError(f"{run} ended {state}: {error or 'the operator gave no message'}")
        if time.monotonic() >= deadline:
            _delete(api, run)  # its driver and executors would otherwise keep running for nobody
            raise FraudError(f"{run} not done after {settings.spark_app_timeout_s:.0f}s (FRAUD_SPARK_APP_TIMEOUT_S); "
                             f"last state {state or 'none'}; deleted it")
        time.sleep(settings.spark_poll_s)


def application_state(api: Any, run: SparkRun) -> tuple[str | None, str | None]:
    """The operator's status.applicationState: (state, errorMessage); (None, None) before it writes one."""
    from kubernetes.client.exceptions import ApiException

    try:
        current = api.get_namespaced_custom_object(GROUP, VERSION, run.namespace, PLURAL, run.name)
    except ApiException as error:
        raise FraudError(f"cannot read {run}: HTTP {error.status} {error.reason}{api_message(error.body)}") from error
    state = current.get("status", {}).get("applicationState", {})
    return state.get("state"), state.get("errorMessage")


def _delete(api: Any, run: SparkRun) -> None:
    """Delete the application (the operator then removes its pods); a failure to do so is logged, not raised."""
    from kubernetes.client.exceptions import ApiException

    try:
        api.delete_namespaced_custom_object(GROUP, VERSION, run.namespace, PLURAL, run.name)
    except ApiException as error:
        log.warning("could not delete %s: HTTP %s %s", run, error.status, error.reason)

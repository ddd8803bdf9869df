"""Pipeline step `deploy`: roll the promoted version out, to the backend `FRAUD_DEPLOY_TARGET` names.

- ``local``: ask the running predictor process to reload (KServe's repository
  API loads the new production version with no failed request).
- ``kserve``: patch the InferenceService so Knative rolls a new revision and
  shifts traffic to it once it is ready. A predictor with a model-format spec
  gets the artifact's ``storageUri``; the custom predictor (our image) gets
  ``FRAUD_MODEL_VERSION`` in its container's env, which pins the version it
  loads. Either way the version is also an annotation, for people and `kubectl`.

Both record the rollout in ``<data dir>/deployments.jsonl``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fraud.errors import FraudError
from fraud.settings import Settings

KSERVE_GROUP, KSERVE_VERSION, KSERVE_PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
VERSION_ANNOTATION = "fraud.example.com/model-version"
VERSION_ENV = "FRAUD_MODEL_VERSION"  # the predictor serves this registered version (see Settings.model_version)
PREDICTOR_CONTAINER = "kserve-container"  # KServe's name for a custom predictor's main container


def deploy(decision: dict, settings: Settings) -> str:
    """Roll out a promoted version with the configured backend; say what happened either way."""
    if not decision["promoted"]:
        return f"nothing to deploy: {decision['reason']}"
    outcome = backend_for(settings)(decision, settings)
    record = {"at": datetime.now(UTC).isoformat(), "model": settings.model_name, "version": decision["version"],
              "uri": decision["uri"], "target": settings.deploy_target, "outcome": outcome}
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with (settings.data_dir / "deployments.jsonl").open("a") as journal:
        journal.write(json.dumps(record) + "\n")
    return f"deployed {settings.model_name} v{decision['version']}: {outcome}"


def backend_for(settings: Settings) -> Callable[[dict, Settings], str]:
    """The rollout function for ``settings.deploy_target``."""
    return {"local": deploy_local, "kserve": deploy_kserve}[settings.deploy_target]


def deploy_local(decision: dict, settings: Settings) -> str:
    """Ask the local predictor process to load the production version."""
    from fraud.serving import reload_model

    return reload_model(settings)


def deploy_kserve(decision: dict, settings: Settings) -> str:
    """Patch the InferenceService (read, then a merge patch guarded by its resourceVersion) to serve the version."""
    import urllib3
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    api = client.CustomObjectsApi(kube_client(settings))
    where = dict(group=KSERVE_GROUP, version=KSERVE_VERSION, plural=KSERVE_PLURAL, namespace=settings.kserve_namespace,
                 name=settings.kserve_inference_service)
    try:
        current = api.get_namespaced_custom_object(**where)
        api.patch_namespaced_custom_object(**where, body=rollout_patch(current, decision["version"], decision["uri"],
                                                                       settings.kserve_canary_percent))
    except ApiException as error:
        raise FraudError(f"cannot patch InferenceService {settings.kserve_namespace}/{settings.kserve_inference_service}:"
                         f" HTTP {error.status} {error.reason}{api_message(error.body)}") from error
    except urllib3.exceptions.HTTPError as error:  # nothing answers: the step fails, it never reports a rollout
        raise FraudError(f"cannot reach the Kubernetes API to patch InferenceService {settings.kserve_namespace}/"
                         f"{settings.kserve_inference_service}: {error}") from error
    canary = f" with {settings.kserve_canary_percent}% of traffic" if settings.kserve_canary_percent else ""
    return (f"patched InferenceService {settings.kserve_namespace}/{settings.kserve_inference_service} to "
            f"version {decision['version']}; Knative rolls a new revision{canary}")


def api_message(body: object) -> str:
    """The API server's own message from an error body, if it has one."""
    try:
        message = json.loads(body).get("message") if body else None
    except (TypeError, ValueError, AttributeError):
        return ""
    return f": {message}" if message else ""


def kube_client(settings: Settings):  # -> kubernetes.client.ApiClient
    """In a pod, its service account; else FRAUD_KUBE_CONFIG's kubeconfig, or kubectl's current context."""
    from kubernetes import client, config

    if settings.kube_config is not None:
        return config.new_client_from_config(config_file=str(settings.kube_config))
    try:
        config.load_incluster_config()
        return client.ApiClient()
    except config.ConfigException:
        return config.new_client_from_config()


def rollout_patch(inference_service: dict[str, Any], version: str, uri: str,
                  canary_percent: int | None = None) -> dict[str, Any]:
    """The JSON merge patch that makes ``inference_service`` serve ``version`` (a pure function).

    A merge patch replaces lists whole, so the custom predictor's containers are
    sent back complete, with only the version's env var set; the resourceVersion
    makes the API server refuse the patch if someone changed the object meanwhile.
    With ``canary_percent``, KServe sends that share of traffic to the new revision
    and the rest to the last ready one; None sends it all (and clears an earlier canary).
    """
    predictor = inference_service.get("spec", {}).get("predictor", {})
    patch: dict[str, Any] = {"metadata": {"annotations": {VERSION_ANNOTATION: version}}}
    if "resourceVersion" in inference_service.get("metadata", {}):
        patch["metadata"]["resourceVersion"] = inference_service["metadata"]["resourceVersion"]
    if "model" in predictor:
        patch["spec"] = {"predictor": {"model": {"storageUri": uri}}}
    elif predictor.get("containers"):
        patch["spec"] = {"predictor": {"containers": _with_version_env(predictor["containers"], version)}}
    else:
        raise FraudError("the InferenceService's predictor has neither `model` nor `containers`: nothing to point at the new version")
    patch["spec"]["predictor"]["canaryTrafficPercent"] = canary_percent  # None: null, which a merge patch removes
    return patch


def _with_version_env(containers: list[dict[str, Any]], version: str) -> list[dict[str, Any]]:
    """A copy of ``containers`` whose predictor container has VERSION_ENV=version (the first, if none is named so)."""
    updated = copy.deepcopy(containers)
    names = [container.get("name") for container in updated]
    target = updated[names.index(PREDICTOR_CONTAINER)] if PREDICTOR_CONTAINER in names else updated[0]
    env = [variable for variable in target.get("env", []) if variable.get("name") != VERSION_ENV]
    target["env"] = [*env, {"name": VERSION_ENV, "value": version}]
    return updated

"""A real Kubernetes API server (etcd + kube-apiserver, built from k8s.io/kubernetes v1.34.4) for the whole session,
with the CRDs the cluster code uses installed from the operators' own Go API types (scripts/kube/build.sh)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from fraud.local_stack.kube import CACHE, KubeApi, LocalKubeApi

STAND_IN_CRDS = Path(__file__).with_name("crds")


@pytest.fixture(scope="session")
def kube_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeApi]:
    server = LocalKubeApi(tmp_path_factory.mktemp("kube"))
    try:
        api = server.start()
        for crd in sorted((CACHE / "crds").glob("*.yaml")):
            apply(api, yaml.safe_load(crd.read_text()))
        for crd in sorted(STAND_IN_CRDS.glob("*.yaml")):  # hand-written where no operator source builds (see each)
            apply(api, yaml.safe_load(crd.read_text()))
        yield api
    finally:
        server.stop()


def client_for(api: KubeApi):  # -> kubernetes.client.ApiClient
    from kubernetes import config

    return config.new_client_from_config(config_file=str(api.kubeconfig))


def apply(api: KubeApi, manifest: dict, dry_run: bool = False, namespace: str | None = None) -> dict:
    """Server-side apply with strict field validation (the server's own checks), optionally as a dry run."""
    group_version, kind = manifest["apiVersion"], manifest["kind"]
    name = manifest["metadata"]["name"]
    namespace = namespace or manifest["metadata"].get("namespace")
    plural = _plural(api, group_version, kind)
    base = f"/api/{group_version}" if "/" not in group_version else f"/apis/{group_version}"
    path = f"{base}/namespaces/{namespace}/{plural}/{name}" if namespace else f"{base}/{plural}/{name}"
    query = [("fieldManager", "fraud-tests"), ("force", "true"), ("fieldValidation", "Strict")]
    if dry_run:
        query.append(("dryRun", "All"))
    return client_for(api).call_api(
        path, "PATCH", query_params=query, body=manifest, auth_settings=["BearerToken"], response_type="object",
        header_params={"Content-Type": "application/apply-patch+yaml", "Accept": "application/json"},
        _return_http_data_only=True)


def _plural(api: KubeApi, group_version: str, kind: str) -> str:
    """The resource name of ``kind``, from the API server's discovery (so CRDs count too)."""
    import time

    from kubernetes.client.exceptions import ApiException

    base = f"/api/{group_version}" if "/" not in group_version else f"/apis/{group_version}"
    for _ in range(50):  # a freshly installed CRD takes a moment to be served
        try:
            listing = client_for(api).call_api(base, "GET", auth_settings=["BearerToken"], response_type="object",
                                               _return_http_data_only=True)
            for resource in listing["resources"]:
                if resource["kind"] == kind and "/" not in resource["name"]:
                    return resource["name"]
        except ApiException as error:
            if error.status != 404:
                raise
        time.sleep(0.2)
    raise LookupError(f"{kind} is not served under {group_version}")


def create_namespace(api: KubeApi, name: str) -> None:
    apply(api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


@pytest.fixture
def kube_config(kube_api: KubeApi) -> Path:
    return kube_api.kubeconfig

"""A real Kubernetes API server on this machine (etcd + kube-apiserver), for proving the manifests and the
deploy step's cluster backend. No kubelet, no controllers: objects are stored and validated, nothing runs.

`scripts/kube/build.sh` builds the API server and generates the operators' CRDs into ``.cache/kube``;
etcd is Debian's `etcd-server`. Both are started detached and stopped by PID like the other services.
"""

from __future__ import annotations

import logging
import secrets
import ssl
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx

from fraud.errors import FraudError
from fraud.local_stack import process

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache" / "kube"


@dataclass(frozen=True)
class KubeApi:
    """How to reach a running API server: its URL, an admin token, its CA, and a kubeconfig file saying the same."""

    url: str
    token: str
    ca: Path  # the API server's self-signed serving certificate and the CA that signed it (--cert-dir)
    kubeconfig: Path


def build() -> Path:
    """Build (once) the API server and the CRDs; the directory holding ``bin/`` and ``crds/``."""
    subprocess.run([str(REPO / "scripts" / "kube" / "build.sh")], check=True)
    return CACHE


class LocalKubeApi:
    """etcd and kube-apiserver under ``run_dir``, on free ports of 127.0.0.1, admin by bearer token."""

    def __init__(self, run_dir: Path, timeout_s: float = 90.0) -> None:
        self.run_dir, self.timeout_s = run_dir, timeout_s
        self.etcd = process.ServiceFiles("etcd", run_dir)
        self.apiserver = process.ServiceFiles("kube-apiserver", run_dir)

    def start(self) -> KubeApi:
        """Start both and wait until the API server is ready."""
        etcd = shutil.which("etcd")
        if etcd is None:
            raise FraudError("etcd is needed for the local Kubernetes API server (apt-get install etcd-server)")
        binary = build() / "bin" / "kube-apiserver"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        client_port, peer_port, api_port = process.free_port(), process.free_port(), process.free_port()
        pid = process.spawn(self.etcd, [etcd, "--data-dir", str(self.run_dir / "etcd"),
                                        "--listen-client-urls", f"http://127.0.0.1:{client_port}",
                                        "--advertise-client-urls", f"http://127.0.0.1:{client_port}",
                                        "--listen-peer-urls", f"http://127.0.0.1:{peer_port}"])
        process.wait_until(lambda: process.port_open("127.0.0.1", client_port), self.timeout_s, self.etcd, pid, "listening")
        token = secrets.token_hex(16)
        key = self._service_account_key()
        (self.run_dir / "tokens.csv").write_text(f"{token},admin,admin,system:masters\n")
        pid = process.spawn(self.apiserver, [
            str(binary), f"--etcd-servers=http://127.0.0.1:{client_port}", "--bind-address=127.0.0.1",
            f"--secure-port={api_port}", f"--cert-dir={self.run_dir / 'certs'}",
            f"--token-auth-file={self.run_dir / 'tokens.csv'}", "--authorization-mode=RBAC",
            f"--service-account-key-file={key.with_suffix('.pub')}", f"--service-account-signing-key-file={key}",
            "--service-account-issuer=https://kubernetes.default.svc", "--service-cluster-ip-range=10.96.0.0/16"])
        api = KubeApi(f"https://127.0.0.1:{api_port}", token, self.run_dir / "certs" / "apiserver.crt",
                      self.run_dir / "kubeconfig")
        process.wait_until(lambda: _ready(api), self.timeout_s, self.apiserver, pid, "ready")
        api.kubeconfig.write_text(_kubeconfig(api))
        log.info("Kubernetes API server ready on %s (kubeconfig %s)", api.url, api.kubeconfig)
        return api

    def stop(self) -> None:
        process.stop(self.apiserver, 20)
        process.stop(self.etcd, 20)

    def _service_account_key(self) -> Path:
        key = self.run_dir / "service-account.key"
        subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
        subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-out", str(key.with_suffix(".pub"))],
                       check=True, capture_output=True)
        return key


def _ready(api: KubeApi) -> bool:
    if not api.ca.exists():  # written by the API server as it starts
        return False
    try:
        answer = httpx.get(f"{api.url}/readyz", headers={"Authorization": f"Bearer {api.token}"},
                           verify=ssl.create_default_context(cafile=str(api.ca)), timeout=2)
    except httpx.HTTPError:
        return False
    return answer.status_code == 200


def _kubeconfig(api: KubeApi) -> str:
    return ("apiVersion: v1\nkind: Config\ncurrent-context: local\n"
            f"clusters:\n- name: local\n  cluster: {{server: '{api.url}', certificate-authority: '{api.ca}'}}\n"
            f"users:\n- name: admin\n  user: {{token: '{api.token}'}}\n"
            "contexts:\n- name: local\n  context: {cluster: local, user: admin}\n")

"""`fraud retrain` with FRAUD_KFP_HOST: the real kfp.Client against a stand-in KFP API server.

No Kubeflow Pipelines server can run on this machine (it needs a Kubernetes
cluster with Argo and MySQL), so the server here is a small stdlib HTTP server
that implements only the v2beta1 endpoints kfp.Client 2.16 calls for
`create_run_from_pipeline_package` and reading a run (healthz, experiments list
and create, runs create and get; see kfp_server_api/api/*_service_api.py). It
records what it receives and answers with KFP's JSON shapes, so the client's
own request building and response parsing are exercised; what a real KFP does
with the run (scheduling it on Argo) is not.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import kfp
import pytest
import yaml

from fraud.cli import main
from fraud.local_stack.process import free_port
from training_pipeline.pipeline import PIPELINE_NAME, compile_pipeline

API = "/apis/v2beta1"


@dataclass
class StandInKfp:
    """What the stand-in server was sent, and how the runs it creates end."""

    final_state: str = "SUCCEEDED"
    error: str | None = None
    experiments: dict[str, dict] = field(default_factory=dict)
    runs: dict[str, dict] = field(default_factory=dict)
    reads: dict[str, int] = field(default_factory=dict)
    authorization: set[str] = field(default_factory=set)
    refuse_runs: bool = False

    def answer(self, method: str, path: str, query: dict[str, list[str]], body: dict | None) -> tuple[int, dict]:
        """KFP's answer to one call; 404 for anything kfp.Client is not expected to call."""
        if (method, path) == ("GET", f"{API}/healthz"):
            return 200, {"multi_user": False}
        if (method, path) == ("GET", f"{API}/experiments"):
            wanted = json.loads(query["filter"][0])["predicates"][0]["stringValue"]  # display_name EQUALS
            found = [e for e in self.experiments.values() if e["display_name"] == wanted]
            return 200, {"experiments": found, "total_size": len(found)} if found else {}
        if (method, path) == ("POST", f"{API}/experiments"):
            experiment = {**body, "experiment_id": uuid.uuid4().hex, "created_at": "2026-03-01T12:00:00Z"}
            self.experiments[experiment["experiment_id"]] = experiment
            return 200, experiment
        if (method, path) == ("POST", f"{API}/runs") and self.refuse_runs:
            return 403, {"code": 7, "message": "user cannot create runs in namespace kubeflow"}
        if (method, path) == ("POST", f"{API}/runs"):
            run = {**body, "run_id": uuid.uuid4().hex, "state": "PENDING", "created_at": "2026-03-01T12:00:00Z"}
            self.runs[run["run_id"]] = run
            return 200, run
        if method == "GET" and path.startswith(f"{API}/runs/") and path.rsplit("/", 1)[1] in self.runs:
            return 200, self._read(path.rsplit("/", 1)[1])
        return 404, {"error": f"not found: {method} {path}", "code": 5, "message": f"not found: {path}"}

    def _read(self, run_id: str) -> dict:
        """Running on the first read, finished on the next (so waiting has to poll)."""
        self.reads[run_id] = self.reads.get(run_id, 0) + 1
        run = {**self.runs[run_id], "state": "RUNNING" if self.reads[run_id] == 1 else self.final_state}
        if self.reads[run_id] > 1 and self.error:
            run["error"] = {"code": 2, "message": self.error}
        return run


@pytest.fixture
def kfp_server() -> Iterator[tuple[StandInKfp, str]]:
    """The stand-in on a free port, and its URL."""
    stand_in = StandInKfp()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            url = urlparse(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            stand_in.authorization.add(self.headers.get("Authorization", ""))
            status, answer = stand_in.answer(self.command, url.path, parse_qs(url.query), body)
            payload = json.dumps(answer).encode()
            self.send_response(status)  # with its standard reason phrase, as KFP's gateway sends
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _serve

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield stand_in, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def kfp_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Settings for a KFP retrain; no ~/.config/kfp context of this machine leaks in."""
    monkeypatch.setattr(kfp.Client, "_LOCAL_KFP_CONTEXT", str(tmp_path / "kfp-context.json"))
    monkeypatch.setenv("FRAUD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FRAUD_KFP_TOKEN", "a-real-token")
    monkeypatch.setenv("FRAUD_KFP_POLL_S", "0.05")
    monkeypatch.setenv("FRAUD_PIPELINE_IMAGE", "registry.example/fraud:1.2.3")
    return tmp_path / "data"


def errors(stderr: str) -> list[str]:
    """The CLI's error lines (the rest of stderr is the log)."""
    return [line for line in stderr.splitlines() if line.startswith("fraud:")]


def journal(data_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (data_dir / "pipeline" / "retrain_requests.jsonl").read_text().splitlines()]


def test_retrain_submits_our_compiled_pipeline_and_waits_for_success(
        kfp_server: tuple[StandInKfp, str], kfp_env: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    stand_in, url = kfp_server
    monkeypatch.setenv("FRAUD_KFP_HOST", url)

    assert main(["retrain", "--reason", "PR-AUC fell to 0.41", "--users", "500", "--wait"]) == 0

    [run] = stand_in.runs.values()
    # kfp.Client sends the pipeline and, when there is one, its Kubernetes platform spec (the step pods' settings)
    sent = run["pipeline_spec"]
    pipeline, platform = yaml.safe_load_all(compile_pipeline("registry.example/fraud:1.2.3", tmp_path / "ours.yaml").read_text())
    assert sent == {"pipeline_spec": pipeline, "platform_spec": platform}
    spec = sent["pipeline_spec"]
    assert spec["pipelineInfo"]["name"] == PIPELINE_NAME
    assert {"data_dir", "users"} <= set(spec["root"]["inputDefinitions"]["parameters"])
    assert {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()} == {"registry.example/fraud:1.2.3"}
    assert run["runtime_config"]["parameters"] == {"users": 500}
    assert "PR-AUC fell to 0.41" in run["display_name"]
    [experiment] = stand_in.experiments.values()
    assert experiment["display_name"] == "fraud-retraining" and run["experiment_id"] == experiment["experiment_id"]
    assert stand_in.authorization == {"Bearer a-real-token"}
    assert stand_in.reads[run["run_id"]] == 2  # it polled until the run finished

    printed = capsys.readouterr().out
    assert f"{url}/#/runs/details/{run['run_id']}" in printed
    assert f"KFP run {run['run_id']} SUCCEEDED" in printed
    [entry] = journal(kfp_env)
    assert entry["request"]["reason"] == "PR-AUC fell to 0.41" and entry["handled"] == "by hand"
    assert entry["outcome"].startswith(f"KFP run {run['run_id']} SUCCEEDED")


def test_without_wait_it_prints_the_url_and_does_not_read_the_run(
        kfp_server: tuple[StandInKfp, str], kfp_env: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    stand_in, url = kfp_server
    monkeypatch.setenv("FRAUD_KFP_HOST", url)

    assert main(["retrain"]) == 0

    [run] = stand_in.runs.values()
    assert run["runtime_config"].get("parameters") in (None, {})  # the pipeline's defaults: FRAUD_PIPELINE_USERS
    assert stand_in.reads == {}
    assert f"{url}/#/runs/details/{run['run_id']}" in capsys.readouterr().out


def test_a_failed_run_is_one_line_and_exit_1(kfp_server: tuple[StandInKfp, str], kfp_env: Path,
                                             monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    stand_in, url = kfp_server
    stand_in.final_state, stand_in.error = "FAILED", "train_model: OOMKilled"
    monkeypatch.setenv("FRAUD_KFP_HOST", url)

    assert main(["retrain", "--wait"]) == 1

    [run_id] = stand_in.runs
    err = capsys.readouterr().err
    assert errors(err) == [f"fraud: KFP run {run_id} ended FAILED: train_model: OOMKilled; see {url}/#/runs/details/{run_id}"]
    assert "Traceback" not in err
    assert journal(kfp_env)[0]["outcome"].startswith(f"failed: KFP run {run_id} ended FAILED")


def test_an_unreachable_server_is_one_line_naming_the_host(kfp_env: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    host = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("FRAUD_KFP_HOST", host)

    assert main(["retrain", "--wait"]) == 1

    err = capsys.readouterr().err
    [error] = errors(err)
    assert error.startswith(f"fraud: cannot reach KFP at {host} to connect: ") and "Connection refused" in error, error
    assert "Traceback" not in err


def test_a_refused_submission_is_one_line_with_kfps_reason(kfp_server: tuple[StandInKfp, str], kfp_env: Path,
                                                          monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    stand_in, url = kfp_server
    stand_in.refuse_runs = True
    monkeypatch.setenv("FRAUD_KFP_HOST", url)

    assert main(["retrain"]) == 1

    assert errors(capsys.readouterr().err) == [
        f"fraud: KFP at {url} refused to submit a run: HTTP 403 Forbidden (user cannot create runs in namespace kubeflow)"]

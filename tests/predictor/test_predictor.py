"""The KServe predictor: in process, then over HTTP (V1, V2, Feast lookup, bad input, hot reload, readiness)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from kserve import InferInput, InferRequest

from fraud.features import FEATURE_NAMES
from fraud.settings import Settings
from predictor.model import FraudModel
from tests.conftest import free_port
from tests.predictor.conftest import ROWS, F, Predictor, direct, register


def v2_body(rows: np.ndarray, datatype: str = "FP32") -> dict:
    return {"inputs": [{"name": "features", "shape": list(rows.shape), "datatype": datatype, "data": rows.reshape(-1).tolist()}]}


def test_in_process_predict_on_a_tiny_real_model(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, _env_file=None)
    model = FraudModel(settings)
    assert model.load() is False and model.ready is False  # nothing registered: not ready, no crash
    register(settings, seed=1)
    assert model.load() and model.ready and model.current.version == "1"
    expected = direct(settings).predict(ROWS)

    request_input = InferInput("features", list(ROWS.shape), "FP32")
    request_input.set_data_from_numpy(ROWS, binary_data=False)
    response = asyncio.run(model.predict(InferRequest(model_name=settings.model_name, infer_inputs=[request_input])))
    assert response.model_version == "1"
    assert np.allclose(response.outputs[0].as_numpy().reshape(-1), expected, atol=1e-6)
    v1 = asyncio.run(model.predict({"instances": ROWS.tolist()}))
    assert np.allclose(np.array(v1["predictions"]).reshape(-1), expected, atol=1e-6) and v1["model_version"] == "1"


def test_v1_user_id_reads_feast_and_scores(serving) -> None:
    settings, predictor, users = serving
    answer = httpx.post(f"{predictor.url}/v1/models/fraud-detection:predict", json={"user_id": "user_0"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    expected = direct(settings).predict(np.array([users["user_0"]], dtype=np.float32))[0]
    assert body["user_id"] == "user_0" and body["model_version"] == "1"
    assert abs(body["prediction"][0][0] - expected) < 1e-6


def test_v1_instances_and_v2_equal_onnxruntime_directly(serving) -> None:
    settings, predictor, _ = serving
    expected = direct(settings).predict(ROWS)
    v1 = httpx.post(f"{predictor.url}/v1/models/fraud-detection:predict", json={"instances": ROWS.tolist()}).json()
    v2 = httpx.post(f"{predictor.url}/v2/models/fraud-detection/infer", json=v2_body(ROWS)).json()
    assert v1["model_version"] == v2["model_version"] == "1"
    assert np.max(np.abs(np.array(v1["predictions"]).reshape(-1) - expected)) < 1e-6
    assert v2["outputs"][0]["shape"] == [50, 1]
    assert np.max(np.abs(np.array(v2["outputs"][0]["data"]) - expected)) < 1e-6


def test_v2_metadata_names_the_features(serving) -> None:
    _, predictor, _ = serving
    metadata = httpx.get(f"{predictor.url}/v2/models/fraud-detection").json()
    assert metadata["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, F],
                                   "parameters": {"feature_names": list(FEATURE_NAMES)}}]


def test_json_without_content_type_is_parsed(serving) -> None:
    settings, predictor, _ = serving
    answer = httpx.post(f"{predictor.url}/v1/models/fraud-detection:predict", content=b'{"user_id": "user_7"}',
                        headers={"Content-Type": "application/x-www-form-urlencoded"})  # what curl -d sends
    assert answer.status_code == 200 and answer.json()["user_id"] == "user_7"
    for headers in ({"Content-Type": "application/x-www-form-urlencoded"}, {}, {"Content-Type": "application/octet-stream"}):
        v2 = httpx.post(f"{predictor.url}/v2/models/fraud-detection/infer", content=json.dumps(v2_body(ROWS)), headers=headers)
        assert v2.status_code == 200, v2.text
        assert np.max(np.abs(np.array(v2.json()["outputs"][0]["data"]) - direct(settings).predict(ROWS))) < 1e-6


def binary_body(header: dict, data: bytes, length: str | None = None) -> dict:
    """httpx arguments for a binary V2 request: JSON part, then ``data``; ``length`` overrides the header's value."""
    encoded = json.dumps(header).encode()
    return {"content": encoded + data, "headers": {"Content-Type": "application/octet-stream",
                                                   "Inference-Header-Content-Length": length or str(len(encoded))}}


ONE_ROW = {"name": "features", "shape": [1, F], "datatype": "FP32", "parameters": {"binary_data_size": 4 * F}}


TOO_MANY = np.zeros((2001, F), dtype=np.float32)


@pytest.mark.parametrize(
    ("path", "kwargs", "status", "says"),
    [
        ("v1", {"json": {"user_id": "user_404"}}, 404, "unknown user 'user_404'"),
        ("v1", {"json": {"user_id": 7}}, 400, "non-empty string"),
        ("v1", {"json": {"instances": [[1.0] * (F - 1)]}}, 400, f"list of {F} numbers"),
        ("v1", {"json": {"instances": [["a"] * F]}}, 400, "numbers only"),
        ("v1", {"json": {"instances": []}}, 400, "non-empty list"),
        ("v1", {"json": {"instances": TOO_MANY.tolist()}}, 400, "more than the limit of 2000"),
        ("v1", {"content": b'{"instances": [[NaN' + b", 1" * (F - 1) + b"]]}",
                "headers": {"Content-Type": "application/json"}}, 400, ""),
        ("v1", {"json": {"instances": [[1e39] + [1.0] * (F - 1)]}}, 400, "finite"),  # inf once cast to FP32
        ("v1", {"content": b"{not json", "headers": {"Content-Type": "application/json"}}, 400, ""),
        ("v1", {"content": b"user_id=user_0"}, 400, "Content-Type: application/json"),
        ("v1", {"json": {"rows": []}}, 400, "expected"),
        ("v2", {"json": v2_body(ROWS[:, :5])}, 400, f"[N, {F}]"),
        ("v2", {"json": v2_body(ROWS.astype(np.float64), "FP64")}, 400, "must be FP32"),
        ("v2", {"json": v2_body(ROWS.astype(np.int64), "INT64")}, 400, "must be FP32"),
        ("v2", {"json": v2_body(TOO_MANY)}, 400, "1 to 2000 rows"),
        ("v2", {"json": {"inputs": [{"name": "features", "shape": [2, F], "datatype": "FP32", "data": [1.0] * F}]}}, 400, ""),
        ("v2", {"json": {"inputs": []}}, 400, ""),
        ("v2", {"content": b"[]", "headers": {"Content-Type": "application/json"}}, 422, "valid dictionary"),
        # Without a JSON Content-Type (tritonclient, curl -d): the same answers as with one.
        ("v2", {"content": b"[]"}, 422, "valid dictionary"),
        ("v2", {"content": json.dumps(v2_body(ROWS[:, :5]))}, 400, f"[N, {F}]"),
        ("v2", {"content": b'{"inputs": [{"name": "features", "shape": [1, 14], "datatype": "FP32", "data": [NaN'
                           + b", 1" * (F - 1) + b"]}]}"}, 400, "features must be finite"),
        ("v2", {"content": b"features=1,2,3"}, 400, "neither V2 JSON"),
        # FastAPI's own 422 handler fails on the NaN it echoes back; ours leaves the echo out.
        ("v2", {"content": b'{"inputs": [{"name": "features", "data": [NaN]}]}',
                "headers": {"Content-Type": "application/json"}}, 422, "Field required"),
        ("v2", {"content": b'{"inputs": [{"name": "features", "data": [-Infinity]}]}'}, 422, "Field required"),
        # Binary tensors whose JSON part or data is wrong.
        ("v2", binary_body({"inputs": [ONE_ROW]}, ROWS[:1].tobytes(), length="12abc"), 400, "must be the length"),
        ("v2", binary_body({"inputs": [ONE_ROW]}, ROWS[:1].tobytes(), length="100000"), 400, "must be the length"),
        ("v2", binary_body({"inputs": [{"name": "features"}]}, b""), 400, "JSON part of the binary request is not valid"),
        ("v2", binary_body({"inputs": [ONE_ROW], "parameters": [1]}, ROWS[:1].tobytes()), 400, "not valid"),
        ("v2", binary_body({"inputs": [ONE_ROW | {"parameters": {"binary_data_size": 7}}]}, ROWS[:1].tobytes()[:7]),
         400, "does not match"),
    ],
)
def test_bad_input_gets_a_4xx_with_a_message(serving, path: str, kwargs: dict, status: int, says: str) -> None:
    _, predictor, _ = serving
    url = (f"{predictor.url}/v1/models/fraud-detection:predict" if path == "v1"
           else f"{predictor.url}/v2/models/fraud-detection/infer")
    answer = httpx.post(url, **kwargs)
    assert answer.status_code == status, answer.text
    message = answer.json().get("error") or answer.json().get("detail")
    assert message and says in str(message)


def test_explain_a_version_not_served_and_an_unknown_model_are_404s(serving) -> None:
    _, predictor, _ = serving
    cases = [("/v1/models/fraud-detection:explain", "has no explainer"),
             ("/v2/models/fraud-detection/versions/9/infer", "serves version"),
             ("/v2/repository/models/no-such-model/load", "does not exist")]
    for path, says in cases:
        answer = httpx.post(f"{predictor.url}{path}", json=v2_body(ROWS[:1]))
        assert answer.status_code == 404 and says in str(answer.json()), (path, answer.text)


def test_reload_under_load_swaps_versions_with_no_failed_request(serving) -> None:
    settings, predictor, _ = serving
    body = v2_body(ROWS[:1])

    async def load_run() -> tuple[list[int], list[list[str]]]:
        statuses: list[int] = []
        versions: list[list[str]] = [[] for _ in range(4)]
        stop = asyncio.Event()
        async with httpx.AsyncClient(base_url=predictor.url, timeout=10) as client:
            async def worker(index: int) -> None:
                deadline = time.monotonic() + 20  # bounded even if the reload hangs
                while not stop.is_set() and time.monotonic() < deadline:
                    answer = await client.post("/v2/models/fraud-detection/infer", json=body)
                    statuses.append(answer.status_code)
                    if answer.status_code == 200:
                        versions[index].append(answer.json()["model_version"])

            workers = [asyncio.create_task(worker(i)) for i in range(4)]
            await asyncio.sleep(1.0)
            await asyncio.to_thread(register, settings, 2)
            reload = await client.post("/v2/repository/models/fraud-detection/load", timeout=60)
            assert reload.status_code == 200, reload.text
            await asyncio.sleep(1.0)
            stop.set()
            await asyncio.gather(*workers)
        return statuses, versions

    statuses, versions = asyncio.run(load_run())
    assert len(statuses) > 100 and set(statuses) == {200}
    for seen in versions:  # each worker saw v1, then v2, and never went back
        assert seen[0] == "1" and seen[-1] == "2" and seen == sorted(seen)
    answer = httpx.post(f"{predictor.url}/v2/models/fraud-detection/infer", json=v2_body(ROWS)).json()
    assert np.max(np.abs(np.array(answer["outputs"][0]["data"]) - direct(settings, 2).predict(ROWS))) < 1e-6


def test_not_ready_without_a_model_then_ready_after_promotion_and_load(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, predictor_port=free_port(), _env_file=None)
    predictor = Predictor(settings)
    try:
        assert httpx.get(f"{predictor.url}/v2/health/ready").status_code == 503
        assert httpx.post(f"{predictor.url}/v2/models/fraud-detection/infer", json=v2_body(ROWS[:1])).status_code == 503
        register(settings, seed=3)
        assert httpx.post(f"{predictor.url}/v2/repository/models/fraud-detection/load", timeout=60).status_code == 200
        assert httpx.get(f"{predictor.url}/v2/health/ready").json() == {"ready": True}
    finally:
        predictor.stop()


def test_v2_binary_tensors_in_and_out(serving) -> None:
    settings, predictor, _ = serving
    header = {"inputs": [{"name": "features", "shape": list(ROWS.shape), "datatype": "FP32",
                          "parameters": {"binary_data_size": ROWS.nbytes}}],
              "outputs": [{"name": "score", "parameters": {"binary_data": True}}]}
    encoded = json.dumps(header).encode()
    answer = httpx.post(f"{predictor.url}/v2/models/fraud-detection/infer", content=encoded + ROWS.tobytes(),
                        headers={"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(encoded))})
    assert answer.status_code == 200, answer.text
    json_length = int(answer.headers["inference-header-content-length"])
    meta = json.loads(answer.content[:json_length])
    scores = np.frombuffer(answer.content[json_length:], dtype=np.float32)
    assert meta["outputs"][0]["shape"] == [50, 1]
    # The version is whatever the module's server serves now (the reload test promotes v2).
    assert np.max(np.abs(scores - direct(settings, int(meta["model_version"])).predict(ROWS))) < 1e-6
    short = json.dumps({"inputs": [header["inputs"][0] | {"parameters": {"binary_data_size": 8}}]}).encode()
    refused = httpx.post(f"{predictor.url}/v2/models/fraud-detection/infer", content=short + ROWS.tobytes()[:8],
                         headers={"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(short))})
    assert refused.status_code == 400 and "do not fill shape" in refused.json()["error"]

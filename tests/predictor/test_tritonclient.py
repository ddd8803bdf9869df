"""The predictor through tritonclient: the standard Open Inference Protocol (V2) client, which we did not write.

tritonclient sends a JSON-only body with no JSON Content-Type, asks for binary outputs with
``binary_data_output`` when it names no outputs, and reads errors from the ``error`` field: each of
these is a way a server can pass its own tests and still fail a standard client.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from tritonclient.http import InferenceServerClient, InferInput, InferRequestedOutput
from tritonclient.utils import InferenceServerException

from fraud.features import FEATURE_NAMES
from tests.predictor.conftest import ROWS, F, direct

MODEL = "fraud-detection"


@pytest.fixture(scope="module")
def client(serving) -> Iterator[InferenceServerClient]:
    """A tritonclient HTTP client of the module's predictor (tiny model v1)."""
    _, predictor, _ = serving
    client = InferenceServerClient(predictor.url.removeprefix("http://"), network_timeout=30)
    yield client
    client.close()


def features(rows: np.ndarray, binary: bool, datatype: str = "FP32") -> list[InferInput]:
    tensor = InferInput("features", list(rows.shape), datatype)
    tensor.set_data_from_numpy(rows, binary_data=binary)
    return [tensor]


def test_server_and_model_metadata_and_readiness(client: InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(MODEL)
    assert client.get_server_metadata()["name"] == "kserve"
    metadata = client.get_model_metadata(MODEL)
    assert metadata["name"] == MODEL
    assert metadata["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, F],
                                   "parameters": {"feature_names": list(FEATURE_NAMES)}}]
    assert metadata["outputs"] == [{"name": "score", "datatype": "FP32", "shape": [-1, 1]}]


@pytest.mark.parametrize("binary_input", [True, False], ids=["binary-in", "json-in"])
@pytest.mark.parametrize("binary_output", [True, False, None], ids=["binary-out", "json-out", "no-output-named"])
def test_infer_scores_equal_the_model_in_process(serving, client: InferenceServerClient, binary_input: bool,
                                                 binary_output: bool | None) -> None:
    settings, _, _ = serving
    outputs = None if binary_output is None else [InferRequestedOutput("score", binary_data=binary_output)]
    result = client.infer(MODEL, features(ROWS, binary_input), outputs=outputs)
    response = result.get_response()
    assert response["model_version"] == "1"
    assert np.allclose(result.as_numpy("score").reshape(-1), direct(settings).predict(ROWS), atol=1e-6)
    # Naming no output makes tritonclient ask for binary outputs (`binary_data_output`): honoured too.
    sent_binary = "binary_data_size" in (response["outputs"][0].get("parameters") or {})
    assert sent_binary == (binary_output is not False)


def test_the_served_version_can_be_named_and_another_is_a_404(client: InferenceServerClient) -> None:
    assert client.infer(MODEL, features(ROWS[:2], True), model_version="1").get_response()["model_version"] == "1"
    assert client.get_model_metadata(MODEL, model_version="1")["name"] == MODEL
    with pytest.raises(InferenceServerException) as raised:
        client.infer(MODEL, features(ROWS[:2], True), model_version="7")
    assert raised.value.status() == "404" and "serves version 1" in raised.value.message()


NOT_FINITE = ROWS[:3].copy()
NOT_FINITE[1, 4] = np.nan


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize(
    ("rows", "datatype", "says"),
    [
        (ROWS[:, :5], "FP32", f"input shape must be [N, {F}], got [50, 5]"),
        (ROWS.astype(np.float64), "FP64", "must be FP32, got FP64"),
        (NOT_FINITE, "FP32", "row 1 column 4 is nan: features must be finite numbers"),
    ],
    ids=["wrong-shape", "wrong-datatype", "not-finite"],
)
def test_a_bad_request_raises_with_our_message_and_a_4xx(client: InferenceServerClient, binary: bool, rows: np.ndarray,
                                                         datatype: str, says: str) -> None:
    with pytest.raises(InferenceServerException) as raised:
        client.infer(MODEL, features(rows, binary, datatype))
    assert raised.value.status() == "400", raised.value
    assert says in raised.value.message()

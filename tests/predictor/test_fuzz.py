"""Generated requests against the running predictor: none gets a 5xx, every 4xx says why.

Schemathesis reads the schema the predictor itself serves at ``/openapi.json``: KServe's FastAPI
app keeps FastAPI's default ``openapi_url``, and ``enable_docs_url=False`` only turns off the
Swagger UI at ``/docs``. So the schema is the one any client sees, and nothing is enabled for the test.
That schema cannot describe binary V2 tensors nor V1 bodies (KServe reads those raw), so two
Hypothesis properties generate those.

A 503 is legitimate only while no model is loaded (``test_not_ready_without_a_model_…`` covers it);
this predictor has one loaded, so every 5xx it answers is a bug.
Deterministic for CI: a fixed seed or ``derandomize``, and no example database.
"""

from __future__ import annotations

import json

import httpx
import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import BaseSchema, Case, CheckContext, Response
from schemathesis.checks import not_a_server_error

from tests.predictor.conftest import Predictor

MODEL = "fraud-detection"
INFER = f"/v2/models/{MODEL}/infer"
SEED = 20_240_611
our_model = schemathesis.pytest.from_fixture("our_model_schema")
any_model = schemathesis.pytest.from_fixture("any_model_schema")
bounded = settings(max_examples=150, derandomize=True, database=None, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow])


def load_schema(predictor: Predictor, max_examples: int, model_name: str | None) -> BaseSchema:
    """The predictor's own schema, aimed at it, generating at most ``max_examples`` requests per operation."""
    config = schemathesis.Config(seed=SEED)
    config.projects.default.update(base_url=predictor.url, request_timeout=30,
                                   parameters={"model_name": model_name} if model_name else None)
    config.projects.default.generation.update(max_examples=max_examples, database="none")
    return schemathesis.openapi.from_url(f"{predictor.url}/openapi.json", config=config, timeout=10)


@pytest.fixture(scope="module")
def our_model_schema(serving) -> BaseSchema:
    """Every operation with ``{model_name}`` set to the served model, so generated bodies reach its checks."""
    return load_schema(serving[1], max_examples=60, model_name=MODEL)


@pytest.fixture(scope="module")
def any_model_schema(serving) -> BaseSchema:
    """Every operation with generated model names: an unknown model must be a 404, not a 5xx."""
    return load_schema(serving[1], max_examples=25, model_name=None)


@pytest.fixture(autouse=True)
def node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    """schemathesis 4.32's fixture-loaded schemas read ``request.node._nodeid``, which pytest 9.2 no longer has."""
    request.node._nodeid = request.node.nodeid


def says_why(status: int, content: bytes) -> None:
    """A refused request (4xx) carries JSON with a non-empty ``error`` or ``detail``."""
    if 400 <= status < 500:
        try:
            body = orjson.loads(content)
        except orjson.JSONDecodeError:
            raise AssertionError(f"{status} without a JSON body: {content[:200]!r}") from None
        assert isinstance(body, dict) and (body.get("error") or body.get("detail")), f"{status} without a message: {body}"


def a_4xx_says_why(ctx: CheckContext, response: Response, case: Case) -> None:
    """`says_why` as a schemathesis check."""
    says_why(response.status_code, response.content)


def no_5xx_and_says_why(answer: httpx.Response) -> None:
    assert answer.status_code < 500, f"{answer.status_code}: {answer.text[:300]}"
    says_why(answer.status_code, answer.content)


CHECKS = [not_a_server_error, a_4xx_says_why]


# Unloading the served model is an operator's deliberate act and would leave nothing to test; the
# other test below sends it with generated names, where it can only refuse.
@our_model.exclude(path_regex="/unload$").parametrize()
def test_no_request_to_the_served_model_gets_a_5xx(case: Case) -> None:
    case.call_and_validate(checks=CHECKS)


@any_model.parametrize()
def test_no_request_for_any_model_name_gets_a_5xx(case: Case) -> None:
    case.call_and_validate(checks=CHECKS)


# Any JSON, and V2-shaped JSON whose every field may be anything: bodies the schema cannot describe.
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5)  # floats: NaN and inf too
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=16)
                    | st.dictionaries(st.text(max_size=5), inner, max_size=4), max_leaves=30)
SIZES = st.fixed_dictionaries({"binary_data_size": JSON | st.integers(-4, 80)})
V2_TENSOR = st.fixed_dictionaries(
    {"name": JSON | st.just("features"), "shape": JSON | st.lists(st.integers(-2, 20)),
     "datatype": JSON | st.sampled_from(["FP32", "FP64", "INT8", "BYTES", "BOOL", "FP16"]), "parameters": JSON | SIZES},
    optional={"data": JSON})
V2_OUTPUT = st.fixed_dictionaries({"name": JSON | st.just("score")}, optional={"parameters": JSON})
V2_REQUEST = st.fixed_dictionaries({}, optional={
    "id": JSON, "parameters": JSON | st.fixed_dictionaries({"binary_data_output": JSON}),
    "inputs": JSON | st.lists(V2_TENSOR, max_size=2), "outputs": JSON | st.lists(V2_OUTPUT, max_size=2)})


@bounded
@given(body=JSON | V2_REQUEST | st.fixed_dictionaries({"instances": JSON}) | st.fixed_dictionaries({"user_id": JSON}),
       path=st.sampled_from([INFER, f"/v1/models/{MODEL}:predict"]),
       content_type=st.sampled_from([None, "application/json", "application/octet-stream"]))
def test_no_json_body_gets_a_5xx(serving, body: object, path: str, content_type: str | None) -> None:
    """Bodies as Python's json writes them (NaN and Infinity included), with and without a JSON Content-Type."""
    answer = httpx.post(f"{serving[1].url}{path}", content=json.dumps(body),
                        headers={"Content-Type": content_type} if content_type else {}, timeout=30)
    no_5xx_and_says_why(answer)


@bounded
@given(header=JSON | V2_REQUEST, data=st.binary(max_size=120), shift=st.integers(-3, 3))
def test_no_binary_request_gets_a_5xx(serving, header: object, data: bytes, shift: int) -> None:
    """Binary V2 requests whose JSON part, data and length header need not agree."""
    encoded = json.dumps(header).encode()
    answer = httpx.post(f"{serving[1].url}{INFER}", content=encoded + data, timeout=30, headers={
        "Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(max(0, len(encoded) + shift))})
    no_5xx_and_says_why(answer)

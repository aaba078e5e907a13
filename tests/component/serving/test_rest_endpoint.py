"""The online endpoint over REST (Open Inference Protocol v2), on a real socket, with a model
stand-in that adds two features (tests/integration/streaming serves a real Keras champion):
strict reading of hostile requests, the binary-data extension, adaptive batching of
concurrent requests, a version switch that fails no request, and replicas sharing one port."""

from __future__ import annotations

import http.client
import json
import struct
import threading
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pyarrow as pa
import pytest
from loopline.spec.sections import Features, ModelSpec, ServeSpec
from loopline.stack.config import free_port
from loopline.streaming.endpoint import Endpoint

MODEL = ModelSpec(
    features=Features(numeric=["amount", "hour"], categorical=["merchant"]), label="y"
)


class AddingModel:
    """amount + hour per row; records the rows of each call; raises on merchant 'boom'."""

    def __init__(self, delay_s: float = 0.0, offset: float = 0.0) -> None:
        self.calls: list[int] = []
        self.delay_s, self.offset = delay_s, offset

    def __call__(self, rows: pa.Table) -> np.ndarray:
        self.calls.append(rows.num_rows)
        if "boom" in rows.column("merchant").to_pylist():
            raise ValueError("cannot score merchant boom")
        time.sleep(self.delay_s)
        amount, hour = rows.column("amount").to_numpy(), rows.column("hour").to_numpy()
        scores = amount + hour + self.offset
        scores[rows.column("merchant").to_numpy(zero_copy_only=False) == "nan"] = np.nan
        return scores


def start(model: AddingModel, version: int = 1, **serve: object) -> Endpoint:
    settings = {"http_port": free_port(), "grpc_port": 0, "max_queue_delay_ms": 5.0, **serve}
    endpoint = Endpoint("fraud", MODEL, ServeSpec.model_validate(settings))
    endpoint.switch_to(model, version)
    endpoint.start()
    return endpoint


@pytest.fixture(scope="module")
def endpoint() -> Iterator[Endpoint]:
    endpoint = start(AddingModel(), version=3, max_request_rows=100, max_request_bytes=64 * 1024)
    yield endpoint
    endpoint.stop()


@pytest.fixture(scope="module")
def client(endpoint: Endpoint) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=endpoint.addresses["http"], timeout=10) as client:
        yield client


def request(amounts: list[float], merchants: list[str] | None = None, **extra: object) -> dict:
    rows = len(amounts)
    return {
        "inputs": [
            {"name": "amount", "shape": [rows], "datatype": "FP32", "data": amounts},
            {"name": "hour", "shape": [rows, 1], "datatype": "INT64", "data": [[1]] * rows},
            {"name": "merchant", "shape": [rows], "datatype": "BYTES",
             "data": merchants or ["shop"] * rows},
        ],
        **extra,
    }  # fmt: skip


def test_scores_carry_the_version_and_echo_the_id(client: httpx.Client) -> None:
    response = client.post("/v2/models/fraud/infer", json=request([1.5, 2.0], id="r-1"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == "fraud" and body["model_version"] == "3"
    assert body["id"] == "r-1"
    assert body["outputs"] == [
        {"name": "score", "datatype": "FP32", "shape": [2], "data": [2.5, 3.0]}
    ]
    versioned = client.post("/v2/models/fraud/versions/3/infer", json=request([1.0]))
    assert versioned.status_code == 200 and versioned.json()["id"]  # an id is made up


def test_health_and_metadata(client: httpx.Client) -> None:
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").status_code == 200
    assert client.get("/v2/models/fraud/ready").status_code == 200
    assert client.get("/v2/models/other/ready").status_code == 404
    metadata = client.get("/v2/models/fraud").json()
    assert metadata["versions"] == ["3"]
    assert [(i["name"], i["datatype"]) for i in metadata["inputs"]] == [
        ("amount", "FP32"), ("hour", "FP32"), ("merchant", "BYTES")
    ]  # fmt: skip
    assert metadata["outputs"][0]["name"] == "score"


def test_not_ready_until_a_model_is_loaded() -> None:
    endpoint = Endpoint("fraud", MODEL, ServeSpec(http_port=free_port(), grpc_port=0))
    endpoint.start()
    try:
        with httpx.Client(base_url=endpoint.addresses["http"]) as client:
            assert client.get("/v2/health/live").status_code == 200
            assert client.get("/v2/health/ready").status_code == 503
            response = client.post("/v2/models/fraud/infer", json=request([1.0]))
            assert response.status_code == 503 and "no model" in response.json()["error"]
    finally:
        endpoint.stop()


BAD_REQUESTS = [
    (b'{"inputs": [', 400, "not JSON"),
    (b"[1, 2]", 400, "not an object"),
    (b'{"inputs": []}', 400, "'inputs' must be a non-empty list"),
    (b"[" * 60_000, 400, "not JSON"),
    (json.dumps(request([1.0]) | {"outputs": [{"name": "proba"}]}).encode(), 400, "unknown output"),
    (json.dumps(request([1.0], id="x" * 300)).encode(), 400, "'id' must be a string"),
]


def bad_input(change: dict) -> bytes:
    body = request([1.0, 2.0])
    body["inputs"][0] |= change
    return json.dumps(body).encode()


BAD_REQUESTS += [
    (bad_input({"datatype": "BYTES"}), 400, "is a number"),
    (bad_input({"datatype": "FLOAT"}), 400, "not a v2 datatype"),
    (bad_input({"data": [1.0, "2"]}), 400, "not a number"),
    (bad_input({"data": [1.0, True]}), 400, "not a number"),
    (bad_input({"data": [1.0]}), 400, "1 values for shape [2]"),
    (bad_input({"data": [1.0, 1e300]}), 400, "beyond float32"),
    (bad_input({"data": [1.0, 10**400]}), 400, "beyond float32"),
    (bad_input({"shape": [2, 2]}), 400, "expected [rows] or [rows, 1]"),
    (bad_input({"shape": [3]}), 400, "disagree on the number of rows"),
    (bad_input({"shape": [101], "data": [1.0] * 101}), 400, "101 rows > the limit of 100"),
    (bad_input({"name": "amount_usd"}), 400, "unknown input(s) ['amount_usd']"),
    (bad_input({"name": "hour"}), 400, "given twice"),
    (bad_input({"data": [[[[[[[[[[[1.0]]]]]]]]]], 2.0]}), 400, "nested deeper"),
]


@pytest.mark.parametrize(("body", "status", "reason"), BAD_REQUESTS)
def test_a_bad_request_is_refused_with_its_reason(
    client: httpx.Client, endpoint: Endpoint, body: bytes, status: int, reason: str
) -> None:
    response = client.post("/v2/models/fraud/infer", content=body)
    assert response.status_code == status, response.text
    assert reason in response.json()["error"]
    # and the endpoint serves on
    assert client.post("/v2/models/fraud/infer", json=request([1.0])).status_code == 200


def test_size_limit_unknown_model_and_version(client: httpx.Client) -> None:
    big = json.dumps(request([1.0] * 100, merchants=["m" * 700] * 100)).encode()
    assert len(big) > 64 * 1024
    response = client.post("/v2/models/fraud/infer", content=big)
    assert response.status_code == 413 and "limit of 65,536" in response.json()["error"]
    streamed = client.post("/v2/models/fraud/infer", content=iter([big[:40_000], big[40_000:]]))
    assert streamed.status_code == 413  # no Content-Length: counted as it arrives
    assert client.post("/v2/models/churn/infer", json=request([1.0])).status_code == 404
    other = client.post("/v2/models/fraud/versions/2/infer", json=request([1.0]))
    assert other.status_code == 404 and "v3 is" in other.json()["error"]


def test_binary_data_extension_in_and_out(client: httpx.Client) -> None:
    amounts = np.array([1.25, 2.5, -3.0], dtype="<f4").tobytes()
    merchants = b"".join(struct.pack("<I", len(m)) + m for m in (b"a", b"bb", "caf\u00e9".encode()))
    header = {
        "inputs": [
            {"name": "amount", "shape": [3], "datatype": "FP32",
             "parameters": {"binary_data_size": len(amounts)}},
            {"name": "hour", "shape": [3], "datatype": "INT32", "data": [0, 1, 2]},
            {"name": "merchant", "shape": [3], "datatype": "BYTES",
             "parameters": {"binary_data_size": len(merchants)}},
        ],
        "outputs": [{"name": "score", "parameters": {"binary_data": True}}],
    }  # fmt: skip
    text = json.dumps(header).encode()
    response = client.post(
        "/v2/models/fraud/infer",
        content=text + amounts + merchants,
        headers={"Inference-Header-Content-Length": str(len(text))},
    )
    assert response.status_code == 200, response.text
    length = int(response.headers["inference-header-content-length"])
    described = json.loads(response.content[:length])
    assert described["outputs"][0]["parameters"] == {"binary_data_size": 12}
    scores = np.frombuffer(response.content[length:], dtype="<f4")
    assert scores.tolist() == [1.25, 3.5, -1.0]

    truncated = client.post(
        "/v2/models/fraud/infer",
        content=text + amounts + merchants[:-2],
        headers={"Inference-Header-Content-Length": str(len(text))},
    )
    assert truncated.status_code == 400 and "not all there" in truncated.json()["error"]


def test_concurrent_requests_are_scored_together_and_one_bad_row_fails_only_its_request() -> None:
    model = AddingModel(delay_s=0.02)
    endpoint = start(model, max_batch_size=64, max_queue_delay_ms=10.0)
    client = httpx.Client(base_url=endpoint.addresses["http"], timeout=10)  # thread-safe
    answers: dict[int, httpx.Response] = {}

    def call(index: int) -> None:
        merchant = "boom" if index == 7 else "nan" if index == 9 else "shop"
        body = request([float(index)], merchants=[merchant])
        answers[index] = client.post("/v2/models/fraud/infer", json=body)

    try:
        threads = [threading.Thread(target=call, args=(i,)) for i in range(24)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        client.close()
        endpoint.stop()
    assert answers[7].status_code == 400 and "cannot score merchant boom" in answers[7].text
    assert answers[9].status_code == 400 and "scored row 0 nan" in answers[9].text
    for index, answer in answers.items():
        if index not in (7, 9):
            assert answer.status_code == 200, answer.text
            assert answer.json()["outputs"][0]["data"] == [index + 1.0]
    batched = [rows for rows in model.calls if rows > 1]
    assert batched, f"24 concurrent requests were scored one by one: {model.calls}"
    assert max(model.calls) <= 64


def test_a_version_switch_under_load_fails_no_request() -> None:
    endpoint = start(AddingModel(delay_s=0.002), version=1)
    client = httpx.Client(base_url=endpoint.addresses["http"], timeout=10)  # thread-safe
    stop = threading.Event()
    seen: list[tuple[int, str, float]] = []

    def load() -> None:
        while not stop.is_set():
            response = client.post("/v2/models/fraud/infer", json=request([1.0]))
            body = response.json()
            score = body["outputs"][0]["data"][0] if response.status_code == 200 else -1
            seen.append((response.status_code, body.get("model_version", ""), score))

    def wait_for(version: str, count: int) -> None:
        deadline = time.monotonic() + 20
        while sum(v == version for _, v, _ in seen) < count and time.monotonic() < deadline:
            time.sleep(0.01)

    threads = [threading.Thread(target=load) for _ in range(4)]
    try:
        for thread in threads:
            thread.start()
        wait_for("1", 20)
        endpoint.switch_to(AddingModel(offset=100.0), 2)
        wait_for("2", 20)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        client.close()
        endpoint.stop()
    assert {status for status, _, _ in seen} == {200}
    # each answer was scored by the version it names, and both served
    assert {(v, s) for _, v, s in seen} == {("1", 2.0), ("2", 102.0)}


def test_replicas_share_one_port() -> None:
    port = free_port()
    first = start(AddingModel(), version=1, http_port=port)
    second = start(AddingModel(), version=2, http_port=port)
    try:
        versions = []
        for _ in range(40):  # a new connection each time: the kernel picks a listener
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("POST", "/v2/models/fraud/infer", json.dumps(request([1.0])))
            versions.append(json.loads(connection.getresponse().read())["model_version"])
            connection.close()
        assert set(versions) == {"1", "2"}, versions
    finally:
        first.stop()
        second.stop()


def test_a_bug_of_ours_is_a_500_not_a_404(
    endpoint: Endpoint, client: httpx.Client, monkeypatch, caplog
) -> None:
    """A KeyError raised by our code is a LookupError, but not "no such model": 500, counted
    as failed, and the endpoint serves on. The caller gets an error id, never the exception's
    text (it may hold paths or data); the log has the id beside the traceback."""
    from loopline.streaming import endpoint as module

    def broken(*args: object) -> None:
        raise KeyError("/secret/path/of/the/model")

    failed = endpoint.summary()["failed"]
    monkeypatch.setattr(module, "read_rest_request", broken)
    response = client.post("/v2/models/fraud/infer", json=request([1.0]))
    error = response.json()["error"]
    assert response.status_code == 500 and "secret" not in error and "KeyError" not in error
    error_id = error.split()[2].rstrip(":")
    logged = [r for r in caplog.records if f"(error {error_id})" in r.getMessage()]
    assert logged and "/secret/path/of/the/model" in str(logged[0].exc_info[1])
    assert endpoint.summary()["failed"] == failed + 1
    monkeypatch.undo()
    assert client.post("/v2/models/fraud/infer", json=request([1.0])).status_code == 200

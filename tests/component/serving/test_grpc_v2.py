"""The OIP v2 gRPC service on a real grpc.aio server (127.0.0.1, a free port) in front of a fake
backend that scores the sum of its numeric features: each call goes over the wire with this
module's own message classes, and every fault comes back as its gRPC status, never UNKNOWN.

(pytest-asyncio is not in the lock: each test runs its coroutine with asyncio.run.)
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import grpc
import numpy as np
import pytest
from loopline.serving import grpc_v2
from loopline.serving.grpc_v2 import ModelInferRequest, messages
from loopline.serving.protocol import InferenceRequest, Limits, NotReady, Scored
from loopline.spec.sections import Features, ModelSpec

PIPELINE = "churn"
VERSION = 7
LIMITS = Limits(max_rows=100, max_bytes=64 * 1024)
SPEC = ModelSpec(features=Features(numeric=["amount", "age"], categorical=["country"]), label="y")


class FakeBackend:
    """Scores a row as amount + age + len(country); remembers what it was asked."""

    pipeline = PIPELINE
    model = SPEC
    limits = LIMITS

    def __init__(self, version: int | None = VERSION, fail: Exception | None = None) -> None:
        self._version = version
        self.fail = fail
        self.requests: list[InferenceRequest] = []
        self.counted_calls = 0

    def version(self) -> int | None:
        return self._version

    async def counted(self, call):
        self.counted_calls += 1
        return await call()

    async def infer(self, request: InferenceRequest) -> Scored:
        self.requests.append(request)
        if self.fail is not None:
            raise self.fail
        if self._version is None:
            raise NotReady("no model yet")
        rows = request.rows.to_pydict()
        columns = zip(rows["amount"], rows["age"], rows["country"], strict=True)
        scores = [amount + age + len(country) for amount, age, country in columns]
        return Scored(np.asarray(scores, dtype=np.float32), self._version)


@asynccontextmanager
async def started(backend: FakeBackend) -> AsyncIterator[str]:
    """The service on a free port of 127.0.0.1; yields its address, ``host:port``."""
    server = grpc.aio.server(options=grpc_v2.server_options(backend.limits))
    grpc_v2.add_inference_service(server, backend)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


@asynccontextmanager
async def serving(backend: FakeBackend) -> AsyncIterator[grpc.aio.Channel]:
    """The service, and a channel to it."""
    async with started(backend) as address, grpc.aio.insecure_channel(address) as channel:
        yield channel


async def call(channel: grpc.aio.Channel, method: str, request: Any) -> Any:
    """`method`'s response, with this module's own message classes on the wire."""
    stub = channel.unary_unary(
        f"/{grpc_v2.SERVICE}/{method}",
        request_serializer=type(request).SerializeToString,
        response_deserializer=messages.get(f"{method}Response", type(request)).FromString,
    )
    return await stub(request, timeout=10)


def run(backend: FakeBackend, method: str, request: Any) -> Any:
    async def once() -> Any:
        async with serving(backend) as channel:
            return await call(channel, method, request)

    return asyncio.run(once())


def status_of(backend: FakeBackend, method: str, request: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        run(backend, method, request)
    return raised.value.code(), raised.value.details()


def raw_bytes(values: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(v)) + v for v in values)


def raw_request(rows: int = 2, **fields: Any) -> Any:
    """A request as tritonclient's gRPC client sends it: every input raw."""
    request = ModelInferRequest(model_name=PIPELINE, id="r-1", **fields)
    amounts = np.arange(1, rows + 1, dtype="<f4")
    ages = np.full(rows, 10, dtype="<f4")
    countries = [b"fr", "\u00e9s".encode()] * (rows // 2) + [b"de"] * (rows % 2)
    for name, datatype, data in (
        ("amount", "FP32", amounts.tobytes()),
        ("age", "FP32", ages.tobytes()),
        ("country", "BYTES", raw_bytes(countries)),
    ):
        request.inputs.add(name=name, datatype=datatype, shape=[rows])
        request.raw_input_contents.append(data)
    return request


def contents_request() -> Any:
    """The same request with typed contents (kserve's client with binary_data=False)."""
    request = ModelInferRequest(model_name=PIPELINE, id="r-2")
    amount = request.inputs.add(name="amount", datatype="FP64", shape=[2, 1])
    amount.contents.fp64_contents.extend([1.0, 2.0])
    age = request.inputs.add(name="age", datatype="INT32", shape=[2])
    age.contents.int_contents.extend([10, 10])
    country = request.inputs.add(name="country", datatype="BYTES", shape=[2])
    country.contents.bytes_contents.extend([b"fr", "\u00e9s".encode()])
    return request


def scores_of(response: Any) -> list[float]:
    assert len(response.raw_output_contents) == len(response.outputs) == 1
    return np.frombuffer(response.raw_output_contents[0], dtype="<f4").tolist()


# ---------------------------------------------------------------------------- infer
def test_a_raw_request_is_scored_with_its_version_and_id() -> None:
    backend = FakeBackend()
    response = run(backend, "ModelInfer", raw_request())
    assert (response.model_name, response.model_version, response.id) == (PIPELINE, "7", "r-1")
    [output] = response.outputs
    assert (output.name, output.datatype, list(output.shape)) == ("score", "FP32", [2])
    assert scores_of(response) == [13.0, 14.0]  # BYTES raw elements decoded: "fr", "és"
    assert backend.requests[0].rows.column("country").to_pylist() == ["fr", "és"]


def test_typed_contents_are_read_by_datatype() -> None:
    response = run(FakeBackend(), "ModelInfer", contents_request())
    assert response.id == "r-2"
    assert scores_of(response) == [13.0, 14.0]


def test_a_request_without_id_gets_one_and_a_matching_version_is_served() -> None:
    request = raw_request(model_version="7")
    request.id = ""
    response = run(FakeBackend(), "ModelInfer", request)
    assert len(response.id) == 32 and response.model_version == "7"


def test_the_score_output_may_be_requested() -> None:
    request = raw_request()
    request.outputs.add(name="score")
    assert scores_of(run(FakeBackend(), "ModelInfer", request)) == [13.0, 14.0]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda r: setattr(r.inputs[0], "datatype", "BYTES"), "is a number"),
        (lambda r: setattr(r.inputs[2], "datatype", "FP32"), "is a category"),
        (lambda r: setattr(r.inputs[0], "datatype", "FLOAT"), "not a v2 datatype"),
        (lambda r: r.inputs[0].shape.extend([1, 1]), "expected [rows] or [rows, 1]"),
        (lambda r: r.outputs.add(name="proba"), "unknown output 'proba'"),
        (lambda r: r.raw_input_contents.append(b"x"), "raw contents are given for every input"),
        (lambda r: r.inputs[0].contents.fp32_contents.append(1.0), "as well as raw"),
        (lambda r: r.raw_input_contents.__setitem__(0, b"\0" * 7), "raw bytes for 2 FP32"),
        (lambda r: r.raw_input_contents.__setitem__(2, b"\xff\0\0\0"), "overruns the data"),
        (lambda r: setattr(r, "id", "x" * 300), "'id' must be at most"),
        (
            lambda r: setattr(r.inputs[0], "name", "montant\u20ac"),
            "unknown input(s) ['montant\u20ac']",
        ),
        (lambda r: r.inputs[0].ClearField("shape"), "shape [] is not 1 to 8 sizes"),
    ],
)
def test_a_bad_request_is_invalid_argument(change: Callable[[Any], None], reason: str) -> None:
    request = raw_request()
    change(request)
    code, details = status_of(FakeBackend(), "ModelInfer", request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert reason in details


def test_a_missing_input_is_invalid_argument() -> None:
    request = raw_request()
    del request.inputs[2]
    del request.raw_input_contents[2]
    code, details = status_of(FakeBackend(), "ModelInfer", request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "missing input(s) ['country']" in details


def test_contents_in_another_field_than_the_datatype_names_are_refused() -> None:
    request = contents_request()
    request.inputs[1].contents.fp32_contents.extend([1.0, 2.0])  # INT32 takes int_contents
    code, details = status_of(FakeBackend(), "ModelInfer", request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "int_contents, not ['fp32_contents']" in details


def test_more_rows_than_the_limit_are_invalid_argument() -> None:
    code, details = status_of(FakeBackend(), "ModelInfer", raw_request(rows=101))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "101 rows > the limit of 100" in details


def test_a_message_over_the_size_limit_is_refused_before_it_is_read() -> None:
    backend = FakeBackend()
    request = raw_request()
    request.parameters["padding"].string_param = "x" * LIMITS.max_bytes
    code, _ = status_of(backend, "ModelInfer", request)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert backend.requests == []


def test_another_model_or_version_is_not_found() -> None:
    request = raw_request()
    request.model_name = "fraud"
    assert status_of(FakeBackend(), "ModelInfer", request)[0] == grpc.StatusCode.NOT_FOUND
    code, details = status_of(FakeBackend(), "ModelInfer", raw_request(model_version="6"))
    assert (code, details) == (grpc.StatusCode.NOT_FOUND, "version 6 is not served here; v7 is")


def test_no_model_yet_is_unavailable() -> None:
    code, _ = status_of(FakeBackend(version=None), "ModelInfer", raw_request())
    assert code == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("fault", [ZeroDivisionError("boom"), KeyError("boom")])
def test_a_failing_model_is_internal_and_the_server_keeps_serving(fault: Exception) -> None:
    backend = FakeBackend(fail=fault)  # a KeyError is a LookupError, yet no "not found"

    async def twice() -> tuple[Any, Any]:
        async with serving(backend) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await call(channel, "ModelInfer", raw_request())
            backend.fail = None
            return raised.value, await call(channel, "ModelInfer", raw_request())

    error, response = asyncio.run(twice())
    assert error.code() == grpc.StatusCode.INTERNAL and "boom" not in error.details()
    assert scores_of(response) == [13.0, 14.0]


def test_a_score_that_is_not_finite_is_refused() -> None:
    class NaNBackend(FakeBackend):
        async def infer(self, request: InferenceRequest) -> Scored:
            return Scored(np.array([1.0, np.nan], dtype=np.float32), VERSION)

    code, details = status_of(NaNBackend(), "ModelInfer", raw_request())
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "row 1" in details


# ---------------------------------------------------------------------------- health, metadata
def test_health_and_readiness() -> None:
    assert run(FakeBackend(), "ServerLive", messages["ServerLiveRequest"]()).live
    assert run(FakeBackend(), "ServerReady", messages["ServerReadyRequest"]()).ready
    assert not run(FakeBackend(None), "ServerReady", messages["ServerReadyRequest"]()).ready
    ready = messages["ModelReadyRequest"]
    assert run(FakeBackend(), "ModelReady", ready(name=PIPELINE)).ready
    assert run(FakeBackend(), "ModelReady", ready(name=PIPELINE, version="7")).ready
    assert not run(FakeBackend(), "ModelReady", ready(name=PIPELINE, version="6")).ready
    assert not run(FakeBackend(None), "ModelReady", ready(name=PIPELINE)).ready
    assert status_of(FakeBackend(), "ModelReady", ready(name="x"))[0] == grpc.StatusCode.NOT_FOUND


def test_metadata() -> None:
    server = run(FakeBackend(), "ServerMetadata", messages["ServerMetadataRequest"]())
    assert server.name == "loopline" and server.version and list(server.extensions) == []
    model = run(FakeBackend(), "ModelMetadata", messages["ModelMetadataRequest"](name=PIPELINE))
    assert (model.name, list(model.versions)) == (PIPELINE, ["7"])
    assert [(t.name, t.datatype, list(t.shape)) for t in model.inputs] == [
        ("amount", "FP32", [-1, 1]),
        ("age", "FP32", [-1, 1]),
        ("country", "BYTES", [-1, 1]),
    ]
    assert [(t.name, t.datatype, list(t.shape)) for t in model.outputs] == [("score", "FP32", [-1])]
    other = messages["ModelMetadataRequest"](name=PIPELINE, version="6")
    assert status_of(FakeBackend(), "ModelMetadata", other)[0] == grpc.StatusCode.NOT_FOUND


def test_other_calls_are_unimplemented() -> None:
    statistics = messages["ServerLiveRequest"]()  # Triton's ModelStatistics: not served
    code, _ = status_of(FakeBackend(), "ModelStatistics", statistics)
    assert code == grpc.StatusCode.UNIMPLEMENTED


def test_the_messages_live_in_a_private_pool() -> None:
    """Generated stubs (tritonclient, kserve, mlserver) register the same names in protobuf's
    default pool; ours must leave it alone, or importing one of them would fail."""
    from google.protobuf import descriptor_pool

    with pytest.raises(KeyError):
        descriptor_pool.Default().FindMessageTypeByName("inference.ModelInferRequest")
    descriptor = ModelInferRequest.DESCRIPTOR
    assert descriptor.full_name == "inference.ModelInferRequest"
    assert [(f.name, f.number) for f in descriptor.fields] == [
        ("model_name", 1), ("model_version", 2), ("id", 3), ("parameters", 4),
        ("inputs", 5), ("outputs", 6), ("raw_input_contents", 7),
    ]  # fmt: skip

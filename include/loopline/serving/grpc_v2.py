"""The Open Inference Protocol v2 over gRPC: ``inference.GRPCInferenceService`` on a
``grpc.aio`` server, in front of the same `InferenceBackend` the REST front end serves.

The protocol's messages are built here from the table below, into a descriptor pool of this
module's own: the generated stubs of tritonclient, kserve and mlserver all register the same
``inference.*`` names in protobuf's default pool and cannot be imported together ("duplicate
symbol 'inference.ServerLiveRequest'"); a private pool coexists with any of them. The package
name and field numbers are the wire format (the method path is
``/inference.GRPCInferenceService/ModelInfer``): they follow the ``.proto`` of kserve/kserve
(``docs/predict-api/v2/grpc_predict_v2.proto``) and triton-inference-server/common
(``protobuf/grpc_service.proto``; Triton adds ``double_param`` and ``uint64_param``).

Only the six calls of the core protocol are served; grpc answers UNIMPLEMENTED for the rest
(Triton's repository, statistics, shared-memory and trace calls).
"""

from __future__ import annotations

import importlib.metadata
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc  # type: ignore[import-untyped]
import numpy as np
from google.protobuf import (  # type: ignore[import-untyped]
    descriptor_pb2,
    descriptor_pool,
    message_factory,
)

from loopline.serving import protocol
from loopline.serving.protocol import (
    BadRequest,
    InferenceBackend,
    InferenceRequest,
    Limits,
    NotReady,
    Tensor,
)

log = logging.getLogger(__name__)

PACKAGE = "inference"
SERVICE = f"{PACKAGE}.GRPCInferenceService"
SERVER_NAME = "loopline"
MAX_DIMS = 8  # as REST: a feature tensor has 1 or 2; more is refused before it is formatted
MAX_STATUS_CHARS = 1_000  # a status message travels in a trailer (8 KiB of metadata at most)

# ---------------------------------------------------------------------------- the messages
# Each field: (name, number, type). A type is a scalar ("string", "int64", ...), a message of
# this file ("InferTensorContents"), "repeated T", "map<string,T>", or "oneof:GROUP T".
_Field = tuple[str, int, str]
_PARAMETERS = "map<string,InferParameter>"
_TENSOR_HEAD: list[_Field] = [
    ("name", 1, "string"),
    ("datatype", 2, "string"),
    ("shape", 3, "repeated int64"),
]
MESSAGES: dict[str, list[_Field]] = {
    "ServerLiveRequest": [],
    "ServerLiveResponse": [("live", 1, "bool")],
    "ServerReadyRequest": [],
    "ServerReadyResponse": [("ready", 1, "bool")],
    "ModelReadyRequest": [("name", 1, "string"), ("version", 2, "string")],
    "ModelReadyResponse": [("ready", 1, "bool")],
    "ServerMetadataRequest": [],
    "ServerMetadataResponse": [
        ("name", 1, "string"),
        ("version", 2, "string"),
        ("extensions", 3, "repeated string"),
    ],
    "ModelMetadataRequest": [("name", 1, "string"), ("version", 2, "string")],
    "ModelMetadataResponse.TensorMetadata": _TENSOR_HEAD,
    "ModelMetadataResponse": [
        ("name", 1, "string"),
        ("versions", 2, "repeated string"),
        ("platform", 3, "string"),
        ("inputs", 4, "repeated ModelMetadataResponse.TensorMetadata"),
        ("outputs", 5, "repeated ModelMetadataResponse.TensorMetadata"),
    ],
    "ModelInferRequest.InferInputTensor": [
        *_TENSOR_HEAD,
        ("parameters", 4, _PARAMETERS),
        ("contents", 5, "InferTensorContents"),
    ],
    "ModelInferRequest.InferRequestedOutputTensor": [
        ("name", 1, "string"),
        ("parameters", 2, _PARAMETERS),
    ],
    "ModelInferRequest": [
        ("model_name", 1, "string"),
        ("model_version", 2, "string"),
        ("id", 3, "string"),
        ("parameters", 4, _PARAMETERS),
        ("inputs", 5, "repeated ModelInferRequest.InferInputTensor"),
        ("outputs", 6, "repeated ModelInferRequest.InferRequestedOutputTensor"),
        ("raw_input_contents", 7, "repeated bytes"),
    ],
    "ModelInferResponse.InferOutputTensor": [
        *_TENSOR_HEAD,
        ("parameters", 4, _PARAMETERS),
        ("contents", 5, "InferTensorContents"),
    ],
    "ModelInferResponse": [
        ("model_name", 1, "string"),
        ("model_version", 2, "string"),
        ("id", 3, "string"),
        ("parameters", 4, _PARAMETERS),
        ("outputs", 5, "repeated ModelInferResponse.InferOutputTensor"),
        ("raw_output_contents", 6, "repeated bytes"),
    ],
    "InferParameter": [
        ("bool_param", 1, "oneof:parameter_choice bool"),
        ("int64_param", 2, "oneof:parameter_choice int64"),
        ("string_param", 3, "oneof:parameter_choice string"),
        ("double_param", 4, "oneof:parameter_choice double"),
        ("uint64_param", 5, "oneof:parameter_choice uint64"),
    ],
    "InferTensorContents": [
        ("bool_contents", 1, "repeated bool"),
        ("int_contents", 2, "repeated int32"),
        ("int64_contents", 3, "repeated int64"),
        ("uint_contents", 4, "repeated uint32"),
        ("uint64_contents", 5, "repeated uint64"),
        ("fp32_contents", 6, "repeated float"),
        ("fp64_contents", 7, "repeated double"),
        ("bytes_contents", 8, "repeated bytes"),
    ],
}
# The calls served; each takes <Method>Request and answers <Method>Response.
METHODS = (
    "ServerLive",
    "ServerReady",
    "ModelReady",
    "ServerMetadata",
    "ModelMetadata",
    "ModelInfer",
)

_FDP = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    "bool": _FDP.TYPE_BOOL, "string": _FDP.TYPE_STRING, "bytes": _FDP.TYPE_BYTES,
    "int32": _FDP.TYPE_INT32, "int64": _FDP.TYPE_INT64, "uint32": _FDP.TYPE_UINT32,
    "uint64": _FDP.TYPE_UINT64, "float": _FDP.TYPE_FLOAT, "double": _FDP.TYPE_DOUBLE,
}  # fmt: skip


def _file_proto() -> descriptor_pb2.FileDescriptorProto:
    """The protocol's file descriptor, as protoc would build it from the `.proto`."""
    file = descriptor_pb2.FileDescriptorProto(
        name="loopline/oip_v2.proto", package=PACKAGE, syntax="proto3"
    )
    declared: dict[str, descriptor_pb2.DescriptorProto] = {}
    for path, fields in MESSAGES.items():  # an outer message comes after its nested ones
        message = descriptor_pb2.DescriptorProto(name=path.rpartition(".")[2])
        for name, number, kind in fields:
            _add_field(message, path, name, number, kind)
        declared[path] = message
    for path, message in declared.items():
        outer, _, _ = path.rpartition(".")
        parent = declared[outer].nested_type if outer else file.message_type
        parent.append(message)  # appends a copy: every nested one is complete by now
    service = file.service.add(name=SERVICE.rpartition(".")[2])
    for method in METHODS:
        service.method.add(
            name=method,
            input_type=f".{PACKAGE}.{method}Request",
            output_type=f".{PACKAGE}.{method}Response",
        )
    return file


def _add_field(
    message: descriptor_pb2.DescriptorProto, path: str, name: str, number: int, kind: str
) -> None:
    """One field of `message` (`path` is its dotted name in the package)."""
    field = message.field.add(name=name, number=number, label=_FDP.LABEL_OPTIONAL)
    if kind.startswith("oneof:"):
        group, kind = kind.removeprefix("oneof:").split(" ")
        names = [oneof.name for oneof in message.oneof_decl]
        if group not in names:
            message.oneof_decl.add(name=group)
            names.append(group)
        field.oneof_index = names.index(group)
    elif kind.startswith("map<string,"):
        # protoc's form of a map: a repeated nested "<Name>Entry" message marked map_entry
        entry = message.nested_type.add(name=f"{name.title().replace('_', '')}Entry")
        entry.options.map_entry = True
        entry_path = f"{path}.{entry.name}"
        _add_field(entry, entry_path, "key", 1, "string")
        _add_field(
            entry, entry_path, "value", 2, kind.removeprefix("map<string,").removesuffix(">")
        )
        field.label = _FDP.LABEL_REPEATED
        field.type = _FDP.TYPE_MESSAGE
        field.type_name = f".{PACKAGE}.{entry_path}"
        return
    elif kind.startswith("repeated "):
        field.label = _FDP.LABEL_REPEATED
        kind = kind.removeprefix("repeated ")
    if kind in _SCALARS:
        field.type = _SCALARS[kind]
    else:
        field.type = _FDP.TYPE_MESSAGE
        field.type_name = f".{PACKAGE}.{kind}"


def _message_classes() -> dict[str, Any]:
    pool = descriptor_pool.DescriptorPool()  # private: see the module's docstring
    pool.Add(_file_proto())
    return {
        path: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{path}"))
        for path in MESSAGES
        if "." not in path  # nested classes hang off their outer class, as in generated code
    }


# The classes are built at run time, so to a type checker each is Any.
messages: dict[str, Any] = _message_classes()
ModelInferRequest: Any = messages["ModelInferRequest"]
ModelInferResponse: Any = messages["ModelInferResponse"]

# ---------------------------------------------------------------------------- the server
# How long a connection lives before the server sends GOAWAY (with gRPC's own +-10% jitter),
# so that clients reconnect and an L4 balancer (kube-proxy, SO_REUSEPORT) spreads them again:
# a replica added by the scaler gets its share within about this long. Calls in flight get the
# grace to finish (an infer is milliseconds; a batch waits for the batcher's window at most).
MAX_CONNECTION_AGE_MS = 120_000
MAX_CONNECTION_AGE_GRACE_MS = 10_000
# The server pings a connection quiet this long, and drops it when no answer comes within the
# timeout: a client gone without a FIN (a node lost) frees its slot in minutes, not hours.
KEEPALIVE_TIME_MS = 60_000
KEEPALIVE_TIMEOUT_MS = 20_000
# A client that turns keepalive on (tritonclient's KeepAliveOptions, a channel option) may ping
# this often, even between calls, without being sent GOAWAY "too_many_pings" (gRPC's default
# minimum is 5 minutes: a client pinging every 10 s would lose its connection).
MIN_CLIENT_PING_INTERVAL_MS = 10_000


def server_options(limits: Limits) -> list[tuple[str, int]]:
    """Options for `grpc.aio.server(options=...)`: the message size limit, a port shared by
    the replica processes, and connections that end so clients spread over replicas."""
    return [
        # gRPC refuses a larger message itself (RESOURCE_EXHAUSTED), before it is parsed
        ("grpc.max_receive_message_length", limits.max_bytes),
        # several replica processes bind one port; the kernel spreads connections over them
        # (gRPC's default on Linux, stated since the replicas depend on it)
        ("grpc.so_reuseport", 1),
        ("grpc.max_connection_age_ms", MAX_CONNECTION_AGE_MS),
        ("grpc.max_connection_age_grace_ms", MAX_CONNECTION_AGE_GRACE_MS),
        ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
        ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", MIN_CLIENT_PING_INTERVAL_MS),
    ]


def add_inference_service(server: Any, backend: InferenceBackend) -> None:
    """Serve `backend` as ``inference.GRPCInferenceService`` on a `grpc.aio.Server`."""
    service = _Service(backend)
    handlers = {
        method: grpc.unary_unary_rpc_method_handler(
            _answered(getattr(service, _snake(method))),
            request_deserializer=messages[f"{method}Request"].FromString,
            response_serializer=messages[f"{method}Response"].SerializeToString,
        )
        for method in METHODS
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    # As generated stubs do (grpcio >= 1.63): a registered method skips the per-call lookup.
    server.add_registered_method_handlers(SERVICE, handlers)


def _snake(method: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in method).lstrip("_")


_Handler = Callable[[Any, Any], Awaitable[Any]]


def _answered(handler: _Handler) -> _Handler:
    """The handler with each failure as its gRPC status: a caller's fault is never UNKNOWN,
    and a model that fails is INTERNAL for this call only; the server keeps serving."""

    async def answer(request: Any, context: Any) -> Any:
        try:
            return await handler(request, context)
        except BadRequest as exc:
            code, message = grpc.StatusCode.INVALID_ARGUMENT, str(exc)
        except NotReady as exc:
            code, message = grpc.StatusCode.UNAVAILABLE, str(exc) or "no model is loaded yet"
        except Exception as exc:
            if protocol.not_served_here(exc):
                code, message = grpc.StatusCode.NOT_FOUND, str(exc)
            else:
                code, message = _internal(handler)
        await context.abort(code, message[:MAX_STATUS_CHARS])  # raises: ends the call

    return answer


def _internal(handler: _Handler) -> tuple[Any, str]:
    """INTERNAL, the traceback logged here: the caller learns nothing of the model's insides."""
    return grpc.StatusCode.INTERNAL, protocol.internal_error(handler.__name__)


class _Service:
    """The six calls, each a coroutine from a request message to a response message."""

    def __init__(self, backend: InferenceBackend) -> None:
        self.backend = backend

    async def server_live(self, request: Any, context: Any) -> Any:
        return messages["ServerLiveResponse"](live=True)

    async def server_ready(self, request: Any, context: Any) -> Any:
        return messages["ServerReadyResponse"](ready=self.backend.version() is not None)

    async def server_metadata(self, request: Any, context: Any) -> Any:
        return messages["ServerMetadataResponse"](
            name=SERVER_NAME, version=_loopline_version(), extensions=[]
        )

    async def model_ready(self, request: Any, context: Any) -> Any:
        self._check_model(request.name)
        serving = self.backend.version()
        ready = serving is not None and request.version in ("", str(serving))
        return messages["ModelReadyResponse"](ready=ready)

    async def model_metadata(self, request: Any, context: Any) -> Any:
        self._check_model(request.name)
        serving = self.backend.version()
        if request.version and serving is not None:
            protocol.version_matches(request.version, serving)
        elif request.version:
            raise LookupError(f"version {request.version} is not served here: none is yet")
        metadata = protocol.model_metadata(self.backend.pipeline, serving, self.backend.model)
        return messages["ModelMetadataResponse"](**metadata)

    async def model_infer(self, request: Any, context: Any) -> Any:
        return await self.backend.counted(lambda: self._infer(request))

    async def _infer(self, request: Any) -> Any:
        self._check_model(request.model_name)
        asked = request.model_version or None
        serving = self.backend.version()
        if serving is None:
            raise NotReady("no model is loaded yet")
        protocol.version_matches(asked, serving)  # before scoring: a wrong version costs nothing
        _check_outputs(request.outputs)
        limits = self.backend.limits
        rows = protocol.rows_of(tensors_of(request), self.backend.model, limits.max_rows)
        request_id = _request_id(request.id)
        scored = await self.backend.infer(InferenceRequest(request_id, rows, "grpc"))
        protocol.version_matches(asked, scored.version)  # a roll may land while it waited
        scores = np.asarray(scored.scores, dtype="<f4")
        protocol.check_finite(scores)
        return _response(self.backend.pipeline, request_id, scored.version, scores)

    def _check_model(self, name: str) -> None:
        if name != self.backend.pipeline:
            raise LookupError(
                f"model {name[:200]!r} is not served here; {self.backend.pipeline!r} is"
            )


def _loopline_version() -> str:
    try:
        return importlib.metadata.version("loopline")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        return "unknown"


def _check_outputs(outputs: Sequence[Any]) -> None:
    for output in outputs:
        if output.name != protocol.SCORE_OUTPUT:
            raise BadRequest(
                f"unknown output {output.name[:80]!r}; the model's output is "
                f"{protocol.SCORE_OUTPUT!r}"
            )


def _request_id(value: str) -> str:
    if not value:
        return uuid.uuid4().hex
    if len(value) > protocol.MAX_ID_CHARS:
        raise BadRequest(f"'id' must be at most {protocol.MAX_ID_CHARS} characters")
    return value


def _response(pipeline: str, request_id: str, version: int, scores: np.ndarray) -> Any:
    """The scores as raw little-endian float32: tritonclient's `as_numpy` reads only
    `raw_output_contents` for numbers, and kserve's `InferResponse.from_grpc` reads both."""
    response = ModelInferResponse(model_name=pipeline, model_version=str(version), id=request_id)
    response.outputs.add(name=protocol.SCORE_OUTPUT, datatype="FP32", shape=[len(scores)])
    response.raw_output_contents.append(scores.tobytes())
    return response


# ---------------------------------------------------------------------------- inputs
# The repeated field of InferTensorContents that holds each datatype; FP16 and BF16 have none
# (raw only), as the `.proto` says.
CONTENTS_FIELD: dict[str, str] = {
    "BOOL": "bool_contents",
    "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents", "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}  # fmt: skip


def tensors_of(request: Any) -> list[Tensor]:
    """A ModelInferRequest's inputs as `Tensor`s: raw bytes when `raw_input_contents` is used
    (tritonclient's gRPC client always uses it; then it holds every input, in order), else
    each input's typed `contents`."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise BadRequest(
            f"raw_input_contents holds {len(raw)} tensors for {len(request.inputs)} inputs: "
            "raw contents are given for every input or for none"
        )
    tensors = []
    for index, item in enumerate(request.inputs):
        name, datatype, shape = _head(item, index)
        if raw:
            if item.HasField("contents"):
                raise BadRequest(f"input {name!r} has contents as well as raw_input_contents")
            data: Sequence[Any] | bytes = bytes(raw[index])
        else:
            data = _contents(item, name, datatype)
        tensors.append(Tensor(name, datatype, shape, data))
    return tensors


def _head(item: Any, index: int) -> tuple[str, str, tuple[int, ...]]:
    name, datatype = item.name, item.datatype
    if not name:
        raise BadRequest(f"inputs[{index}] has no name")
    if datatype not in protocol.KNOWN_DTYPES:
        raise BadRequest(f"input {name[:80]!r}: datatype {datatype[:40]!r} is not a v2 datatype")
    if not 1 <= len(item.shape) <= MAX_DIMS or any(size < 0 for size in item.shape):
        shown = str(list(item.shape[: MAX_DIMS + 1]))[:80]
        raise BadRequest(f"input {name[:80]!r}: shape {shown} is not 1 to {MAX_DIMS} sizes")
    return name, datatype, tuple(item.shape)


def _contents(item: Any, name: str, datatype: str) -> list[Any]:
    field = CONTENTS_FIELD.get(datatype)
    if field is None:
        raise BadRequest(f"input {name!r}: {datatype} data comes only in raw_input_contents")
    given = [descriptor.name for descriptor, _ in item.contents.ListFields()]
    stray = [other for other in given if other != field]
    if stray:
        raise BadRequest(f"input {name!r}: a {datatype} tensor's data is in {field}, not {stray}")
    return list(getattr(item.contents, field))

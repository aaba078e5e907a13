"""The Open Inference Protocol v2 (KServe's "V2", Triton's and MLServer's protocol), read
strictly: a request becomes the model's input table or a `BadRequest` naming the reason.

Inputs are the spec's features by name, one tensor each, all with the same number of rows:
numbers as FP32/FP64 or an integer type (coerced to float32 as batch scoring and the Kafka
replicas coerce them), categories as BYTES (UTF-8). A tensor's shape is ``[rows]`` or
``[rows, 1]``; its data is row-major, flat or nested (JSON), or raw little-endian bytes (the
binary-data extension of REST, and gRPC's ``raw_input_contents``). The one output is
``score`` (FP32, ``[rows]``), and every response names the model version that scored it.

Pure: no server, no model. The REST and gRPC front ends turn their wire format into `Tensor`s
and hand them to `rows_of`; whatever a caller sends, the worst it gets is a `BadRequest`.
"""

from __future__ import annotations

import json
import logging
import struct
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from loopline.spec.sections import ModelSpec

log = logging.getLogger(__name__)

SCORE_OUTPUT = "score"
FLOAT32_MAX = float(np.finfo(np.float32).max)
MAX_ID_CHARS = 256
MAX_NESTING = 8  # nested JSON data: a feature tensor is at most [rows, 1]; deeper is hostile

# Fixed-size datatypes: their little-endian numpy type (raw data) and whether they hold numbers
# a feature may take. FP16 has no JSON form, BF16 is Triton's own; both arrive only raw.
NUMERIC_DTYPES: dict[str, str] = {
    "FP64": "<f8", "FP32": "<f4", "FP16": "<f2",
    "INT64": "<i8", "INT32": "<i4", "INT16": "<i2", "INT8": "<i1",
    "UINT64": "<u8", "UINT32": "<u4", "UINT16": "<u2", "UINT8": "<u1",
}  # fmt: skip
KNOWN_DTYPES = {*NUMERIC_DTYPES, "BOOL", "BYTES", "BF16"}


class BadRequest(ValueError):
    """What is wrong with a request, for its sender: REST 400, gRPC INVALID_ARGUMENT."""


@dataclass(frozen=True)
class Tensor:
    """One input as it came: `data` is a flat list (JSON, gRPC contents) or raw bytes."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: Sequence[Any] | bytes


@dataclass(frozen=True)
class InferenceRequest:
    id: str
    rows: pa.Table  # the model's input table: float32 numbers, strings
    source: str = "online"  # the front end it came by (rest, grpc): for the prediction log


@dataclass(frozen=True)
class Limits:
    max_rows: int  # rows in one request
    max_bytes: int  # bytes of one request body or message


class TooLarge(BadRequest):
    """Over the request-size limit: REST 413."""


class NotReady(RuntimeError):
    """No model loaded yet, or the server is stopping: REST 503, gRPC UNAVAILABLE."""


@dataclass(frozen=True)
class Scored:
    scores: np.ndarray  # float32, one per row
    version: int  # the model version that scored them


class InferenceBackend(Protocol):
    """What a front end (REST, gRPC) serves: one pipeline's model, batched behind it."""

    pipeline: str
    model: ModelSpec
    limits: Limits

    def version(self) -> int | None: ...  # the version serving now; None: not ready

    async def infer(self, request: InferenceRequest) -> Scored: ...

    # One infer call of a front end, from reading its request to its answer: counted and
    # timed (latency, concurrency, refusals) whichever protocol it came by.
    async def counted(self, call: Callable[[], Awaitable[Any]]) -> Any: ...


# ---------------------------------------------------------------------------- reading
def rows_of(tensors: Sequence[Tensor], model: ModelSpec, max_rows: int) -> pa.Table:
    """The input table of a request's tensors, or a `BadRequest` naming the first fault."""
    by_name: dict[str, Tensor] = {}
    for tensor in tensors:
        if tensor.name in by_name:
            raise BadRequest(f"input {tensor.name!r} is given twice")
        by_name[tensor.name] = tensor
    expected = [*model.features.numeric, *model.features.categorical]
    unknown = sorted(set(by_name) - set(expected))
    if unknown:
        raise BadRequest(f"unknown input(s) {unknown}; the model's inputs are {expected}")
    missing = [name for name in expected if name not in by_name]
    if missing:
        raise BadRequest(f"missing input(s) {missing}")
    rows = {name: _rows_in(by_name[name], max_rows) for name in expected}
    if len(set(rows.values())) > 1:
        raise BadRequest(f"inputs disagree on the number of rows: {rows}")
    count, numeric = rows[expected[0]], model.features.numeric
    # One Arrow array of every number, a slice per input: one pa.array call, not one per input
    # (30 calls of about 4.6 us each went through pyarrow's pandas layer).
    numbers = pa.array(_number_matrix([by_name[name] for name in numeric], count).ravel())
    columns = [numbers.slice(i * count, count) for i in range(len(numeric))]
    for name in model.features.categorical:
        columns.append(pa.array(_texts(by_name[name]), pa.string()))
    return pa.Table.from_arrays(columns, names=expected)


def _rows_in(tensor: Tensor, max_rows: int) -> int:
    shape = tensor.shape
    if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
        raise BadRequest(
            f"input {tensor.name!r}: shape {list(shape)}; expected [rows] or [rows, 1]"
        )
    rows = shape[0]
    if rows < 1:
        raise BadRequest(f"input {tensor.name!r}: shape {list(shape)} holds no row")
    if rows > max_rows:
        raise BadRequest(f"input {tensor.name!r}: {rows:,} rows > the limit of {max_rows:,}")
    return rows


def _number_matrix(tensors: Sequence[Tensor], rows: int) -> np.ndarray:
    """The numeric inputs as one float32 matrix, a row per input (each row contiguous).

    Checked as one array, not input by input: a request is mostly numbers, one row each, and
    numpy's per-call cost on 32 tiny arrays was a third of reading it (212 of 620 us)."""
    matrix = np.empty((len(tensors), rows), np.float64)
    for i, tensor in enumerate(tensors):
        if tensor.datatype not in NUMERIC_DTYPES:
            raise BadRequest(
                f"input {tensor.name!r} is a number: datatype {tensor.datatype!r}; expected one "
                f"of {sorted(NUMERIC_DTYPES)}"
            )
        if isinstance(tensor.data, bytes | bytearray | memoryview):
            matrix[i] = _raw_numbers(tensor, rows)
        else:
            matrix[i] = _json_numbers(tensor, rows)
    faults = (
        (~np.isfinite(matrix), "a value that is not finite"),
        (np.abs(matrix) > FLOAT32_MAX, "a value beyond float32's range"),
    )
    for faulty, why in faults:
        if faulty.any():
            first = int(np.flatnonzero(faulty.any(axis=1))[0])
            raise BadRequest(f"input {tensors[first].name!r} holds {why}")
    return matrix.astype(np.float32)


def _raw_numbers(tensor: Tensor, rows: int) -> np.ndarray:
    dtype = np.dtype(NUMERIC_DTYPES[tensor.datatype])
    raw = bytes(tensor.data)
    if len(raw) != rows * dtype.itemsize:
        raise BadRequest(
            f"input {tensor.name!r}: {len(raw):,} raw bytes for {rows} {tensor.datatype} "
            f"values ({rows * dtype.itemsize:,} expected)"
        )
    return np.frombuffer(raw, dtype=dtype).astype(np.float64)


def _json_numbers(tensor: Tensor, rows: int) -> list[Any]:
    data = _flat(tensor)
    if len(data) != rows:
        raise BadRequest(
            f"input {tensor.name!r}: {len(data)} values for shape {list(tensor.shape)}"
        )
    for value in data:
        if isinstance(value, bool) or not isinstance(value, int | float):
            shown = str(value)[:40]
            raise BadRequest(
                f"input {tensor.name!r} holds {type(value).__name__} {shown!r}, not a number"
            )
        if isinstance(value, int) and abs(value) > 2**64:  # float() of a huge int overflows
            raise BadRequest(f"input {tensor.name!r} holds a value beyond float32's range")
    return data


def _texts(tensor: Tensor) -> list[str]:
    name = tensor.name
    if tensor.datatype != "BYTES":
        raise BadRequest(
            f"input {name!r} is a category: datatype {tensor.datatype!r}; expected BYTES"
        )
    rows = tensor.shape[0]
    if isinstance(tensor.data, bytes | bytearray | memoryview):
        values: list[Any] = raw_bytes_elements(bytes(tensor.data), rows, name)
    else:
        values = _flat(tensor)
    if len(values) != rows:
        raise BadRequest(f"input {name!r}: {len(values)} values for shape {list(tensor.shape)}")
    texts = []
    for value in values:
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise BadRequest(
                    f"input {name!r} holds bytes that are not UTF-8: {exc.reason}"
                ) from exc
        if not isinstance(value, str):
            raise BadRequest(f"input {name!r} holds {type(value).__name__}, not text")
        try:
            value.encode("utf-8")  # a JSON "\ud800" decodes to a lone surrogate Arrow cannot hold
        except UnicodeEncodeError as exc:
            raise BadRequest(f"input {name!r} holds a lone surrogate, not text") from exc
        texts.append(value)
    return texts


def _flat(tensor: Tensor) -> list[Any]:
    """Row-major data, nested or flat, as one flat list (nesting bounded)."""
    if not isinstance(tensor.data, list | tuple):
        raise BadRequest(f"input {tensor.name!r}: data is {type(tensor.data).__name__}, not a list")
    flat: list[Any] = []
    _extend_flat(flat, tensor.data, 0, tensor.name)
    return flat


def _extend_flat(flat: list[Any], items: Sequence[Any], depth: int, name: str) -> None:
    if depth > MAX_NESTING:
        raise BadRequest(f"input {name!r}: data nested deeper than {MAX_NESTING} levels")
    for item in items:
        if isinstance(item, list | tuple):
            _extend_flat(flat, item, depth + 1, name)
        else:
            flat.append(item)


def raw_bytes_elements(raw: bytes, count: int, name: str) -> list[bytes]:
    """BYTES elements in the raw form: each a 4-byte little-endian length, then its bytes."""
    elements: list[bytes] = []
    offset = 0
    for _ in range(count):
        if offset + 4 > len(raw):
            raise BadRequest(f"input {name!r}: raw BYTES data ends before element {len(elements)}")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise BadRequest(f"input {name!r}: raw BYTES element {len(elements)} overruns the data")
        elements.append(raw[offset : offset + length])
        offset += length
    if offset != len(raw):
        raise BadRequest(f"input {name!r}: {len(raw) - offset} raw bytes after {count} elements")
    return elements


# ---------------------------------------------------------------------------- REST
@dataclass(frozen=True)
class RestRequest:
    request: InferenceRequest
    binary_output: bool  # the caller asked for the score as raw bytes (binary extension)


def read_rest_request(
    body: bytes, json_length: int | None, model: ModelSpec, limits: Limits
) -> RestRequest:
    """A REST infer body: JSON, or (binary-data extension) `json_length` bytes of JSON
    followed by each input's raw bytes in order, as ``parameters.binary_data_size`` says."""
    if len(body) > limits.max_bytes:
        raise TooLarge(f"the request is {len(body):,} bytes > the limit of {limits.max_bytes:,}")
    if json_length is not None and not 0 < json_length <= len(body):
        raise BadRequest(f"Inference-Header-Content-Length {json_length} does not fit the body")
    header = body if json_length is None else body[:json_length]
    payload = _json_object(header)
    raw = memoryview(body)[len(header) :]
    described = [_rest_tensor(item, index) for index, item in enumerate(_list(payload, "inputs"))]
    tensors, used = _attach_raw(described, raw)
    if used != len(raw):
        raise BadRequest(f"{len(raw) - used:,} bytes after the last binary input")
    request_id = _request_id(payload.get("id"))
    binary = _requested_binary(payload.get("outputs"))
    rows = rows_of(tensors, model, limits.max_rows)
    return RestRequest(InferenceRequest(request_id, rows, "rest"), binary)


def _json_object(text: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"the request is not JSON: {exc}") from exc
    except (RecursionError, ValueError) as exc:  # nesting too deep; an int of > 4,300 digits
        raise BadRequest(f"the request is not JSON we can read: {str(exc)[:200]}") from exc
    if not isinstance(payload, dict):
        raise BadRequest(f"the request is a JSON {type(payload).__name__}, not an object")
    return payload


def _list(payload: dict[str, Any], key: str) -> list[Any]:
    value = payload.get(key)
    if not isinstance(value, list) or not value:
        raise BadRequest(f"{key!r} must be a non-empty list")
    return value


def _rest_tensor(item: Any, index: int) -> Tensor | tuple[Tensor, int]:
    """A JSON input; one whose data follows as raw bytes comes with its byte count."""
    if not isinstance(item, dict):
        raise BadRequest(f"inputs[{index}] is not an object")
    name, datatype, shape = item.get("name"), item.get("datatype"), item.get("shape")
    if not isinstance(name, str) or not name:
        raise BadRequest(f"inputs[{index}] has no name")
    if datatype not in KNOWN_DTYPES:
        raise BadRequest(f"input {name!r}: datatype {datatype!r} is not a v2 datatype")
    if (
        not isinstance(shape, list)
        or not 1 <= len(shape) <= 8
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise BadRequest(f"input {name!r}: shape {str(shape)[:80]} is not a list of sizes")
    tensor = Tensor(name, datatype, tuple(shape), item.get("data", []))
    parameters = item.get("parameters") or {}
    size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
    if size is None:
        if "data" not in item:
            raise BadRequest(f"input {name!r} has no data")
        return tensor
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise BadRequest(f"input {name!r}: binary_data_size {size!r} is not a size")
    return tensor, size


def _attach_raw(
    tensors: list[Tensor | tuple[Tensor, int]], raw: memoryview
) -> tuple[list[Tensor], int]:
    attached, offset = [], 0
    for item in tensors:
        if isinstance(item, Tensor):
            attached.append(item)
            continue
        tensor, size = item
        if offset + size > len(raw):
            raise BadRequest(f"input {tensor.name!r}: its {size:,} binary bytes are not all there")
        data = bytes(raw[offset : offset + size])
        attached.append(Tensor(tensor.name, tensor.datatype, tensor.shape, data))
        offset += size
    return attached, offset


def _request_id(value: Any) -> str:
    if value is None or value == "":
        return uuid.uuid4().hex
    if not isinstance(value, str) or len(value) > MAX_ID_CHARS:
        raise BadRequest(f"'id' must be a string of at most {MAX_ID_CHARS} characters")
    return value


def _requested_binary(outputs: Any) -> bool:
    if outputs is None:
        return False
    if not isinstance(outputs, list):
        raise BadRequest("'outputs' must be a list")
    binary = False
    for item in outputs:
        name = item.get("name") if isinstance(item, dict) else None
        if name != SCORE_OUTPUT:
            raise BadRequest(
                f"unknown output {str(name)[:80]!r}; the model's output is {SCORE_OUTPUT!r}"
            )
        parameters = item.get("parameters") or {}
        binary = binary or (isinstance(parameters, dict) and parameters.get("binary_data") is True)
    return binary


def rest_response(
    pipeline: str, request_id: str, scored: Scored, binary: bool
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of an infer response; with `binary`, the scores follow the JSON
    as raw little-endian float32 (the header says where the JSON ends)."""
    output: dict[str, Any] = {
        "name": SCORE_OUTPUT,
        "datatype": "FP32",
        "shape": [len(scored.scores)],
    }
    scores = np.asarray(scored.scores, dtype="<f4")
    if binary:
        output["parameters"] = {"binary_data_size": scores.nbytes}
    else:
        output["data"] = [float(s) for s in scores]
    body = json.dumps(
        {"model_name": pipeline, "model_version": str(scored.version), "id": request_id,
         "outputs": [output]}, allow_nan=False,
    ).encode()  # fmt: skip
    if not binary:
        return body, {"content-type": "application/json"}
    headers = {
        "content-type": "application/octet-stream",
        "inference-header-content-length": str(len(body)),
    }
    return body + scores.tobytes(), headers


def model_metadata(pipeline: str, version: int | None, model: ModelSpec) -> dict[str, Any]:
    inputs = [{"name": n, "datatype": "FP32", "shape": [-1, 1]} for n in model.features.numeric]
    inputs += [
        {"name": n, "datatype": "BYTES", "shape": [-1, 1]} for n in model.features.categorical
    ]
    return {
        "name": pipeline,
        "versions": [] if version is None else [str(version)],
        "platform": "loopline_tensorflow",
        "inputs": inputs,
        "outputs": [{"name": SCORE_OUTPUT, "datatype": "FP32", "shape": [-1]}],
    }


def check_finite(scores: np.ndarray) -> None:
    """A score JSON cannot carry (NaN, infinity) is the model's answer to that row: refused
    with the row named, never sent as a number it is not."""
    bad = np.flatnonzero(~np.isfinite(scores))
    if bad.size:
        raise BadRequest(f"the model scored row {int(bad[0])} {scores[bad[0]]}: not a score")


def internal_error(what: str) -> str:
    """Log the exception being handled under a new error id; the caller's message, which
    names only the id: an exception's text may hold paths, data or the model's insides."""
    error_id = uuid.uuid4().hex[:12]
    log.exception("%s failed (error %s)", what, error_id)
    return f"internal error {error_id}: the server's log has the details"


def not_served_here(exc: BaseException) -> bool:
    """Another model or version asked for (REST 404, gRPC NOT_FOUND). KeyError and IndexError
    are LookupErrors too, but raised by a bug of ours, never by a caller's choice of model."""
    return isinstance(exc, LookupError) and not isinstance(exc, KeyError | IndexError)


def version_matches(asked: str | None, serving: int) -> None:
    """``/versions/{v}/infer``: only the version this replica serves answers it."""
    if asked is not None and asked != str(serving):
        raise LookupError(f"version {asked} is not served here; v{serving} is")

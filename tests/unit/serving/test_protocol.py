"""The Open Inference Protocol v2 read strictly: tensors to the model's input table, or the
reason a request is refused. Pure; tests/component/serving runs it behind REST and gRPC."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from loopline.serving.protocol import (
    BadRequest,
    Limits,
    Scored,
    Tensor,
    read_rest_request,
    rest_response,
    rows_of,
)
from loopline.spec.sections import Features, ModelSpec

MODEL = ModelSpec(features=Features(numeric=["amount"], categorical=["merchant"]), label="y")


def raw_texts(*texts: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(t)) + t for t in texts)


def test_raw_and_json_tensors_give_the_same_table() -> None:
    as_json = rows_of(
        [Tensor("amount", "FP64", (2, 1), [[1.5], [-2.0]]),
         Tensor("merchant", "BYTES", (2,), ["a", "b\u00e9"])], MODEL, 10,
    )  # fmt: skip
    as_raw = rows_of(
        [Tensor("amount", "FP32", (2,), np.array([1.5, -2.0], "<f4").tobytes()),
         Tensor("merchant", "BYTES", (2,), raw_texts(b"a", "b\u00e9".encode()))], MODEL, 10,
    )  # fmt: skip
    assert as_json.equals(as_raw)
    assert as_json.column("amount").type == "float" and as_json.num_rows == 2


THREE = ModelSpec(features=Features(numeric=["a", "b", "c"], categorical=["m"]), label="y")


def three(c: object, datatype: str = "FP64") -> list[Tensor]:
    """Three numeric inputs of two rows, `b` raw and the others JSON, and a category."""
    return [
        Tensor("c", datatype, (2, 1), c),
        Tensor("a", "FP32", (2,), [1.0, 2.0]),
        Tensor("b", "INT32", (2,), np.array([3, 4], "<i4").tobytes()),
        Tensor("m", "BYTES", (2,), ["x", "y"]),
    ]


def test_each_numeric_input_keeps_its_own_values_in_row_order() -> None:
    """The numbers are read as one matrix: no value may land in another input's column."""
    table = rows_of(three([[5.0], [6.0]]), THREE, 10)
    assert table.column_names == ["a", "b", "c", "m"]
    assert {name: table.column(name).to_pylist() for name in table.column_names} == {
        "a": [1.0, 2.0], "b": [3.0, 4.0], "c": [5.0, 6.0], "m": ["x", "y"],
    }  # fmt: skip
    assert all(table.column(name).type == "float" for name in "abc")


@pytest.mark.parametrize(
    ("c", "datatype", "reason"),
    [
        ([[5.0], [float("inf")]], "FP64", "input 'c' holds a value that is not finite"),
        ([[5.0], [1e39]], "FP64", "input 'c' holds a value beyond float32's range"),
        (np.array([5.0, np.nan], "<f8").tobytes(), "FP64", "input 'c' holds a value that is not"),
        ([[5.0], [True]], "FP64", "input 'c' holds bool"),
        ([[5.0], ["6"]], "FP64", "input 'c' holds str"),
        ([[5.0], [6.0]], "BYTES", "input 'c' is a number: datatype 'BYTES'"),
    ],
)
def test_the_numeric_input_at_fault_is_named(c: object, datatype: str, reason: str) -> None:
    with pytest.raises(BadRequest) as refused:
        rows_of(three(c, datatype), THREE, 10)
    assert reason in str(refused.value)


def inputs(amount: object, merchant: object, rows: int = 1) -> list[Tensor]:
    return [
        Tensor("amount", "FP32", (rows,), amount),
        Tensor("merchant", "BYTES", (rows,), merchant),
    ]


@pytest.mark.parametrize(
    ("tensors", "reason"),
    [
        (inputs(b"\x00" * 7, ["a", "b"], rows=2), "7 raw bytes for 2 FP32 values"),
        (inputs([1.0], raw_texts(b"ab")[:-1]), "overruns the data"),
        (inputs([1.0], raw_texts(b"a") + b"x"), "1 raw bytes after 1 elements"),
        (inputs([1.0], raw_texts(b"\xff")), "not UTF-8"),
        (inputs([1.0], ["\ud800"]), "lone surrogate"),
        (inputs([float("nan")], ["a"]), "not finite"),
        (inputs([1.0], [3]), "holds int, not text"),
        (inputs([], [], rows=0), "holds no row"),
        (inputs([1.0] * 11, ["a"] * 11, rows=11), "11 rows > the limit of 10"),
        ([Tensor("merchant", "BYTES", (1,), ["a"])], "missing input(s) ['amount']"),
    ],
)
def test_what_is_refused(tensors: list[Tensor], reason: str) -> None:
    with pytest.raises(BadRequest) as refused:
        rows_of(tensors, MODEL, 10)
    assert reason in str(refused.value)


def test_rest_binary_response_puts_the_scores_after_the_json() -> None:
    scores = Scored(np.array([0.25, 0.5], dtype=np.float32), version=7)
    body, headers = rest_response("fraud", "r1", scores, binary=True)
    length = int(headers["inference-header-content-length"])
    assert b'"model_version": "7"' in body[:length]
    assert np.frombuffer(body[length:], "<f4").tolist() == [0.25, 0.5]


def test_rest_request_size_is_checked_before_it_is_parsed() -> None:
    with pytest.raises(BadRequest, match="limit of 100"):
        read_rest_request(b"{" * 101, None, MODEL, Limits(max_rows=10, max_bytes=100))
    with pytest.raises(BadRequest, match="does not fit the body"):
        read_rest_request(b"{}", 5, MODEL, Limits(max_rows=10, max_bytes=100))

"""What a failed task leaves behind: a bounded debug bundle on S3, and the spec its run used.

A bundle (``debug/<pipeline>/<run>/<task>.try<N>.json``) holds what a person debugging the
failure asks first: the spec as the run planned it, the model version, the error with its
traceback, the task's arguments and a small sample of the input that failed (secrets
redacted, long values cut), and where the task's log is. A ``failure`` record points to it,
so ``loopline records`` and ``loopline debug`` find it from the run id the UI shows.

The spec pin (``runs/<pipeline>/<dag>/<run>/spec.json``) is written create-only by the
first task of a run: Airflow's workers parse the DAG file again for every task, so the
version a task was "planned" from is only the one its own parse saw. The pin holds the run
to the version its first task used: a later task that finds another version refuses to run.
"""

from __future__ import annotations

import json
import re
import time
import traceback
from collections.abc import Mapping, Sequence, Set
from datetime import UTC, date, datetime
from datetime import time as time_of_day
from itertools import islice
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from loopline.storage.keys import safe_segment
from loopline.storage.objects import ObjectConflictError, ObjectStore

DEBUG_PREFIX = "debug/"
RUNS_PREFIX = "runs/"
MAX_TEXT = 2_000  # characters of one value kept in a bundle
MAX_TRACEBACK = 20_000  # characters of a traceback, its end (where the error is)
MAX_ITEMS = 20  # items of one list, keys of one mapping
MAX_DEPTH = 6
MAX_BUNDLE_BYTES = 512 * 1024  # past this, the sample and arguments are dropped, not the error
REDACTED = "[redacted]"
SAMPLE_ROWS = 3  # rows of an offending file
SAMPLE_BYTES = 2_048  # or its first bytes, when it does not decode
SAMPLE_READ_BYTES = 16 * 1024 * 1024  # larger files are not read whole for a sample
# A key naming one of these holds a secret whatever its value looks like.
SECRET_KEY = re.compile(
    r"secret|passw|token|credential|api[_-]?key|access[_-]?key|private[_-]?key|auth|"
    r"sasl|session[_-]?key|signature",
    re.IGNORECASE,
)
# Values that are secrets wherever they appear: AWS key ids, bearer tokens, URLs with a
# password, PEM private keys, and "key=value" pairs whose key names a secret.
SECRET_VALUES = (
    re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b"),
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+"),
    re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+(?=@)"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
    re.compile(
        r"(?i)\b([A-Za-z_.-]*(secret|passw|token|api[_-]?key|access[_-]?key)[A-Za-z_.-]*)"
        r"([\"']?\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&\"'}]+)"
    ),
)


class SpecVersion(BaseModel):
    """A pipeline's spec as a run used it: the file's sha256 and the validated spec."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sha256: str
    spec: dict[str, Any]


class SpecPinConflict(Exception):
    """A task of a run found another version of the spec than the run's first task used."""


class ErrorInfo(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str
    message: str
    traceback: str
    chain: list[str] = Field(default_factory=list)  # the causes, outermost first


class LogLocation(BaseModel):
    """Where the task's log is: the UI page, the REST path, the file on the worker."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ui_url: str | None = None
    api_path: str | None = None
    file: str | None = None


class DebugBundle(BaseModel):
    """One failed try of one task, bounded and with secrets redacted."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bundle_version: int = 1
    pipeline: str
    run_id: str
    dag_id: str | None = None
    task_id: str
    try_number: int | None = None
    map_index: int | None = None
    state: str = "failed"  # failed, or up_for_retry (a retry follows)
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    code_version: str | None = None
    spec_path: str | None = None
    spec: SpecVersion | None = None  # as the run pinned it (or as the file is, if unpinned)
    spec_note: str = ""
    model_version: str | None = None
    error: ErrorInfo
    arguments: dict[str, Any] = Field(default_factory=dict)  # the task's, as rendered
    sample: dict[str, Any] = Field(default_factory=dict)  # the input that failed, a sample
    log: LogLocation = Field(default_factory=LogLocation)
    cut: list[str] = Field(default_factory=list)  # what was dropped to stay within bounds


def error_info(error: BaseException) -> ErrorInfo:
    """The error, its traceback's end and its chain of causes, secrets redacted."""
    text = "".join(traceback.format_exception(error))
    chain: list[str] = []
    seen, cause = {id(error)}, _cause(error)
    while cause is not None and id(cause) not in seen and len(chain) < MAX_ITEMS:
        chain.append(redact_text(f"{type(cause).__name__}: {cause}")[:MAX_TEXT])
        seen.add(id(cause))
        cause = _cause(cause)
    return ErrorInfo(
        type=type(error).__name__,
        message=redact_text(str(error))[:MAX_TEXT],
        traceback=redact_text(text)[-MAX_TRACEBACK:],
        chain=chain,
    )


def evidence(error: BaseException) -> dict[str, Any]:
    """The input an error says it failed on (``debug_evidence`` on it or on a cause), merged
    outermost first: what a stage knows about the offending input, e.g. the landed file's key
    and first lines, the event that killed a replica."""
    found: dict[str, Any] = {}
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        attached = getattr(current, "debug_evidence", None)
        if isinstance(attached, dict):
            found = {**attached, **found}
        current = _cause(current)
    return found


def _cause(error: BaseException) -> BaseException | None:
    return error.__cause__ or (None if error.__suppress_context__ else error.__context__)


def bounded(value: Any, depth: int = 0) -> Any:
    """`value` made safe to keep: JSON types only, secrets redacted (by key and by shape),
    long strings and bytes cut, lists and mappings cut to MAX_ITEMS, nesting to MAX_DEPTH."""
    if depth >= MAX_DEPTH:
        return "[too deep]"
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, date | time_of_day):  # a datetime too
        return value.isoformat()
    if isinstance(value, bytes | bytearray):
        return _cut_text(redact_text(bytes(value[: MAX_TEXT * 4]).decode("utf-8", "replace")))
    if isinstance(value, str):
        return _cut_text(redact_text(value))
    if isinstance(value, Mapping):
        items = list(value.items())
        kept = {
            str(key): REDACTED if SECRET_KEY.search(str(key)) else bounded(item, depth + 1)
            for key, item in items[:MAX_ITEMS]
        }
        if len(items) > MAX_ITEMS:
            kept["…"] = f"{len(items) - MAX_ITEMS} more key(s) cut"
        return kept
    if isinstance(value, Sequence | Set):  # lazy XCom sequences too: only the first are read
        listed = list(islice(value, MAX_ITEMS + 1))
        more = len(value) - MAX_ITEMS
        kept_items = [bounded(item, depth + 1) for item in listed[:MAX_ITEMS]]
        if more > 0:
            kept_items.append(f"… {more} more item(s) cut")
        return kept_items
    return _cut_text(redact_text(repr(value)))


def redact_text(text: str) -> str:
    for pattern in SECRET_VALUES:
        text = pattern.sub(_redacted_match, text)
    return text


def _redacted_match(match: re.Match[str]) -> str:
    if match.re is SECRET_VALUES[-1]:  # key=value: keep the key, hide the value
        return f"{match.group(1)}{match.group(3)}{REDACTED}"
    return REDACTED


def _cut_text(text: str) -> str:
    if len(text) <= MAX_TEXT:
        return text
    return f"{text[:MAX_TEXT]}… ({len(text) - MAX_TEXT} more characters cut)"


def sample_of_object(store: ObjectStore, bucket: str, key: str) -> Any:
    """The first rows of a data object (any format Loopline reads), for a bundle: decoded
    when it decodes, else its first bytes as text (a file too broken to read is the usual
    offender). Objects over SAMPLE_READ_BYTES show their first bytes only."""
    from loopline.storage.formats import decode, format_for_key

    head = store.head(bucket, key)
    if head is None:
        return f"s3://{bucket}/{key} is gone"
    size = int(head.get("ContentLength", 0))
    if size <= SAMPLE_READ_BYTES:
        data = store.get(bucket, key)
        try:
            table = decode(data, format_for_key(key))
            return bounded(table.slice(0, SAMPLE_ROWS).to_pylist())
        except Exception as exc:  # undecodable is what a sample of a bad file often shows
            first = data[:SAMPLE_BYTES].decode("utf-8", "replace")
            return {"undecodable": f"{type(exc).__name__}: {exc}"[:MAX_TEXT], "first_bytes": first}
    response = store.client.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{SAMPLE_BYTES - 1}")
    first = response["Body"].read().decode("utf-8", "replace")
    return {"size": size, "first_bytes": bounded(first)}


def bundle_prefix(pipeline: str, run_id: str) -> str:
    return f"{DEBUG_PREFIX}{safe_segment(pipeline)}/{safe_segment(run_id)}/"


def bundle_key(bundle: DebugBundle) -> str:
    task = (
        bundle.task_id
        if bundle.map_index in (None, -1)
        else f"{bundle.task_id}[{bundle.map_index}]"
    )
    name = f"{safe_segment(task)}.try{bundle.try_number or 0}.json"
    return bundle_prefix(bundle.pipeline, bundle.run_id) + name


def write_bundle(store: ObjectStore, bucket: str, bundle: DebugBundle) -> str:
    """Write `bundle` (within MAX_BUNDLE_BYTES: the sample, then the arguments, then the
    spec are dropped first, each noted in ``cut``); returns its s3:// URI."""
    for drop in ("sample", "arguments", "spec"):
        body = bundle.model_dump_json(indent=2).encode()
        if len(body) <= MAX_BUNDLE_BYTES:
            break
        bundle = bundle.model_copy(
            update={drop: None if drop == "spec" else {}, "cut": [*bundle.cut, drop]}
        )
    else:
        body = bundle.model_dump_json(indent=2).encode()
    key = bundle_key(bundle)
    store.put(bucket, key, body, "application/json")
    return f"s3://{bucket}/{key}"


def record_failure(store: ObjectStore, bucket: str, bundle: DebugBundle) -> str:
    """Write `bundle` and the ``failure`` record pointing to it; returns the bundle's URI.
    The record carries the spec version the run used (the pinned one where there is one)."""
    from loopline.records.envelope import RecordStage, RunContext
    from loopline.records.store import RecordStore

    uri = write_bundle(store, bucket, bundle)
    run = RunContext(
        pipeline=bundle.pipeline,
        run_id=bundle.run_id,
        dag_id=bundle.dag_id,
        task_id=bundle.task_id,
        try_number=bundle.try_number,
        spec_sha256=bundle.spec.sha256 if bundle.spec else None,
    )
    task = bundle.task_id if bundle.map_index is None else f"{bundle.task_id}[{bundle.map_index}]"
    record = run.record(
        RecordStage.FAILURE,
        bundle.state,
        subject=f"{task}.try{bundle.try_number or 0}",
        reasons=[f"{bundle.error.type}: {bundle.error.message}"],
        payload={"bundle": uri, "error": bundle.error.type, "log": bundle.log.ui_url},
    )
    RecordStore(store, bucket).write(record)
    return uri


def read_bundles(store: ObjectStore, bucket: str, pipeline: str, run_id: str) -> list[DebugBundle]:
    """Every bundle of one run, oldest first."""
    prefix = bundle_prefix(pipeline, run_id)
    keys = [key for key in store.list_keys(bucket, prefix) if key.endswith(".json")]
    bundles = [DebugBundle.model_validate_json(store.get(bucket, key)) for key in keys]
    return sorted(bundles, key=lambda bundle: bundle.created_at)


def spec_pin_key(pipeline: str, dag_id: str, run_id: str) -> str:
    run = f"{safe_segment(dag_id)}/{safe_segment(run_id)}"
    return f"{RUNS_PREFIX}{safe_segment(pipeline)}/{run}/spec.json"


def pin_spec(
    store: ObjectStore, bucket: str, pipeline: str, dag_id: str, run_id: str, version: SpecVersion
) -> SpecVersion:
    """Hold the run to `version`: the first task's call writes it (create-only), a later
    one with the same sha256 passes; another version raises SpecPinConflict naming both."""
    key = spec_pin_key(pipeline, dag_id, run_id)
    body = version.model_dump_json().encode()
    try:
        store.put_new(bucket, key, body, content_type="application/json")
        return version
    except ObjectConflictError:  # another version, or a racing first write (mapped tasks)
        pinned = _read_pin(store, bucket, key)
    if pinned.sha256 != version.sha256:  # the same file parsed by newer code is the same spec
        raise SpecPinConflict(
            f"{pipeline}: this run started on spec version {pinned.sha256[:12]} (pinned by its "
            f"first task in s3://{bucket}/{key}); the file is now {version.sha256[:12]}. A run "
            "never mixes two versions of its pipeline: trigger a new run for the edited spec"
        )
    return pinned


def _read_pin(store: ObjectStore, bucket: str, key: str, wait: float = 10.0) -> SpecVersion:
    """The pin, once a racing create-only write has landed."""
    deadline = time.monotonic() + wait
    while (data := store.get_if_exists(bucket, key)) is None:
        if time.monotonic() > deadline:
            raise SpecPinConflict(f"s3://{bucket}/{key}: the run's spec pin never landed")
        time.sleep(0.2)
    return SpecVersion.model_validate_json(data)


def pinned_spec(
    store: ObjectStore, bucket: str, pipeline: str, dag_id: str, run_id: str
) -> SpecVersion | None:
    data = store.get_if_exists(bucket, spec_pin_key(pipeline, dag_id, run_id))
    return None if data is None else SpecVersion.model_validate_json(data)


def spec_version(sha256: str, spec: BaseModel) -> SpecVersion:
    return SpecVersion(sha256=sha256, spec=json.loads(spec.model_dump_json()))


__all__ = [
    "DebugBundle",
    "ErrorInfo",
    "LogLocation",
    "SpecPinConflict",
    "SpecVersion",
    "bounded",
    "error_info",
    "evidence",
    "pin_spec",
    "pinned_spec",
    "read_bundles",
    "record_failure",
    "redact_text",
    "spec_version",
    "write_bundle",
]

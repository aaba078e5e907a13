"""The gate: validate one landed object, then route it to validated/ or quarantine/.

The validated zone is canonical: whatever format a batch landed in (Parquet, CSV, JSON Lines),
what passed is written there as Parquet in the spec's column types, from the table the gate
already read and cast, so no later stage parses CSV or meets a float64 the spec calls float32.
The landed bytes are kept unchanged (sha256 checked after the copy) under the archive prefix,
and the result names both. A failed batch goes to quarantine byte-identical, with its report
beside it, written before the move, so a quarantined file is never without its reason.

With a row-level split (spec: validation.row_split), a file whose only failures are row-level
keeps moving: its accepted rows are written to validated/ (Parquet, like every validated
object), the original goes to quarantine byte-identical, beside its report and its rejected
rows (``.rejected.parquet``, with the expectations each row broke); the report's counts add
up: accepted + rejected = rows.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq
from botocore.exceptions import BotoCoreError, ClientError

from loopline.data.profile_store import ProfileStore
from loopline.data.reading import (
    ReadLimits,
    UnreadableFile,
    canonical_schema,
    conform,
    file_size_problem,
    read_batch,
)
from loopline.records import ObjectRef, RecordStage, RecordStore, RunContext, StageRecord
from loopline.spec.sections import Column, DataSpec, DuplicateKeys, FileFormat, ValidationSpec
from loopline.storage.formats import CONTENT_TYPES, encode
from loopline.storage.objects import ObjectChangedError, ObjectStore, sha256_hex
from loopline.validation.attempts import MAX_CRASHES, Attempts
from loopline.validation.replays import KeyCache, replayed_rows
from loopline.validation.report import ValidationReport, unreadable_report, validate_table
from loopline.validation.split import RowSplit, split_rows, why_not_splittable

if TYPE_CHECKING:
    from great_expectations.core.expectation_suite import ExpectationSuite

log = logging.getLogger(__name__)

REPORT_SUFFIX = ".report.json"
DATA_DOCS_SUFFIX = ".report.html"
REJECTED_ROWS_SUFFIX = ".rejected.parquet"
DEFAULT_LIMITS = ReadLimits.of(ValidationSpec())
# Errors that say nothing about the file: its attempt is not counted as a crash.
NOT_THE_FILE = (ClientError, BotoCoreError, ObjectChangedError)


@dataclass(frozen=True)
class GateResult:
    source: str
    destination: str  # where the landed object, or with a split its accepted rows, went
    passed: bool  # True when the file, or with a split its accepted rows, moved on
    rows: int | None
    sha256: str | None
    reasons: list[str]
    report_key: str | None = None
    already_routed: bool = False
    accepted_rows: int | None = None
    rejected_rows: int = 0
    quarantine_key: str | None = None  # with a split: the original file, byte-identical
    archive_key: str | None = None  # passed whole: the landed bytes, unchanged

    @property
    def split(self) -> bool:
        return self.passed and self.quarantine_key is not None

    @property
    def disposition(self) -> str:
        """Where the file went: validated (whole), split (good rows on), or quarantined."""
        return "split" if self.split else "validated" if self.passed else "quarantined"

    def to_dict(self) -> dict[str, Any]:
        """As XCom and records carry it; ``GateResult(**d)`` reads it back."""
        return asdict(self)

    def record(self, run: RunContext, bucket: str, landing_prefix: str) -> StageRecord:
        """This file's outcome as a record of the run."""
        outputs = [self.destination, self.archive_key, self.quarantine_key, self.report_key]
        return run.record(
            RecordStage.VALIDATION,
            self.disposition,
            subject=self.source.removeprefix(landing_prefix),
            inputs=[
                ObjectRef(uri=f"s3://{bucket}/{self.source}", sha256=self.sha256, rows=self.rows)
            ],
            outputs=[
                ObjectRef(uri=f"s3://{bucket}/{key}") for key in dict.fromkeys(outputs) if key
            ],
            reasons=self.reasons,
            numbers={
                "rows": self.rows or 0,
                "accepted_rows": self.accepted_rows or 0,
                "rejected_rows": self.rejected_rows,
            },
            payload=self.to_dict(),
        )

    def summary(self) -> str:
        if self.split:
            return (
                f"{self.source} SPLIT: {self.accepted_rows} rows -> {self.destination}, "
                f"{self.rejected_rows} rows and the original -> {self.quarantine_key}: "
                + "; ".join(self.reasons)
            )
        verdict = "passed" if self.passed else "QUARANTINED"
        why = f": {'; '.join(self.reasons)}" if self.reasons else ""
        kept = f" (landed bytes kept at {self.archive_key})" if self.archive_key else ""
        return f"{self.source} {verdict} -> {self.destination}{kept}{why}"


@dataclass(frozen=True)
class RowSplitPolicy:
    """Split off bad rows, unless more than `max_rejected_share` of the rows are bad."""

    max_rejected_share: float


def routed_key(key: str, from_prefix: str, to_prefix: str) -> str:
    if not key.startswith(from_prefix):
        raise ValueError(f"{key!r} is not under {from_prefix!r}")
    return to_prefix + key[len(from_prefix) :]


def validated_key(key: str, data_spec: DataSpec) -> str:
    """Where a landed file's rows go: its own name under the validated prefix, as Parquet
    (``b.csv`` -> ``b.csv.parquet``, so a ``b.parquet`` beside it never collides)."""
    routed = routed_key(key, data_spec.landing_prefix, data_spec.validated_prefix)
    return routed if routed.endswith(".parquet") else routed + ".parquet"


def validate_and_route(
    store: ObjectStore,
    data_spec: DataSpec,
    suite: ExpectationSuite,
    key: str,
    *,
    row_split: RowSplitPolicy | None = None,
    duplicate_keys: DuplicateKeys = "reject",
    run: RunContext | None = None,
    known_keys: KeyCache | None = None,
    limits: ReadLimits = DEFAULT_LIMITS,
) -> GateResult:
    """Validate s3://bucket/`key` (under the landing prefix) and move it where it belongs;
    with a `run`, its outcome is recorded. `known_keys`: validated keys already read by this
    process (a task validating many files), for the replay check. `limits`: what reading it
    may cost (spec: validation.max_*); past them, or after its validation crashed its task
    MAX_CRASHES times, the file is quarantined unread, as "too large" or "crashed"."""
    bucket = data_spec.bucket
    route = _Route(
        store,
        bucket,
        key,
        valid_key=validated_key(key, data_spec),
        quarantine_key=routed_key(key, data_spec.landing_prefix, data_spec.quarantine_prefix),
        archive_key=routed_key(key, data_spec.landing_prefix, data_spec.archive_root),
        data=data_spec,
    )
    head = store.head(bucket, key)
    if head is None:
        result = route.already_routed()
    else:
        policy = _Policy(limits, row_split, duplicate_keys, known_keys)
        route = replace(route, etag=head["ETag"])
        result = _attempt(route, suite, int(head["ContentLength"]), policy)
        log.info("%s", result.summary())
    if run is not None:
        _record(store, data_spec, result, run)
    return result


@dataclass(frozen=True)
class _Policy:
    """How the gate judges a file: validate_and_route's options."""

    limits: ReadLimits
    row_split: RowSplitPolicy | None
    duplicate_keys: DuplicateKeys
    known_keys: KeyCache | None


def _attempt(route: _Route, suite: ExpectationSuite, size: int, policy: _Policy) -> GateResult:
    """Refuse the file unread, or judge it under a marker that outlives a killed task."""
    attempts = Attempts.of(route.store, route.data, route.key, route.etag)
    crashed = attempts.crashed()
    if refusal := _refusal(size, policy.limits, crashed):
        result = route.quarantined(unreadable_report(route.key, suite, refusal), None)
    else:
        attempts.begin(crashed)  # before the risky work: a task killed in it leaves it
        try:
            result = _judge(route, suite, policy)
        except NOT_THE_FILE:
            attempts.end()
            raise
    attempts.end()
    return result


def _refusal(size: int, limits: ReadLimits, crashed: int) -> UnreadableFile | None:
    """Why the file is quarantined without reading a byte of it, if it is."""
    if problem := file_size_problem(size, limits):
        return problem
    if crashed < MAX_CRASHES:
        return None
    return UnreadableFile(
        "crashed",
        f"validating it ended its task {crashed} times without a result (killed, most "
        "likely for memory); quarantined unread instead of retried by every sweep",
        {"crashed_attempts": crashed, "object_bytes": size},
    )


def _judge(route: _Route, suite: ExpectationSuite, policy: _Policy) -> GateResult:
    """Read the version that was HEADed (its size checked), validate it and route it; every
    move is of that version only (its ETag, from the GET), so bytes landed since stay."""
    store, data_spec, key = route.store, route.data, route.key
    data, etag = store.get_version(route.bucket, key, route.etag)
    route, checksum, row_split = replace(route, etag=etag), sha256_hex(data), policy.row_split
    try:
        table = read_batch(data, key, data_spec.columns, data_spec.format, policy.limits)
    except UnreadableFile as exc:
        table, report = None, unreadable_report(key, suite, exc)
    else:
        report = validate_table(table, key, suite, row_positions=row_split is not None)
    if report.success:
        result = _new_rows_or_quarantine(
            store, data_spec, route, report, checksum, table, data,
            policy.duplicate_keys, policy.known_keys,
        )  # fmt: skip
    elif row_split is None or table is None:
        result = route.quarantined(report, checksum)
    else:
        result = _split_or_quarantine(route, table, report, checksum, row_split)
    for warning in report.warnings:
        log.warning("%s: warning: %s", key, warning.describe())
    return result


def _new_rows_or_quarantine(
    store: ObjectStore,
    data_spec: DataSpec,
    route: _Route,
    report: ValidationReport,
    checksum: str,
    table: pa.Table,
    data: bytes,
    duplicate_keys: DuplicateKeys,
    known_keys: KeyCache | None,
) -> GateResult:
    """A passing batch moves on, unless its keys are already validated (spec:
    validation.duplicate_keys): then it is quarantined whole, or moves on without them."""
    replayed = replayed_rows(
        store, data_spec, route.key, table, own_key=route.valid_key, cache=known_keys
    )
    if not replayed.count:
        return route.validated(report, checksum, table, canonical=is_canonical(data, route))
    if duplicate_keys == "reject":
        return route.quarantined(report, checksum, replayed.reason("quarantined whole"))
    if not replayed.fresh.num_rows:
        return route.quarantined(report, checksum, replayed.reason("nothing new: quarantined"))
    note = replayed.reason(f"dropped; {replayed.fresh.num_rows} new row(s) moved on")
    return route.validated(
        report, checksum, replayed.fresh, canonical=False, dropped=replayed.count, note=note
    )


def is_canonical(data: bytes, route: _Route) -> bool:
    """True for Parquet bytes whose columns and types are the validated zone's, in order."""
    if data[:4] != b"PAR1" or not route.key.endswith(".parquet"):
        return False
    expected = canonical_schema(route.columns)
    actual = pq.read_schema(pa.BufferReader(data))
    return [(f.name, f.type) for f in actual] == [(f.name, f.type) for f in expected]


def _record(store: ObjectStore, data_spec: DataSpec, result: GateResult, run: RunContext) -> None:
    record = result.record(run, data_spec.bucket, data_spec.landing_prefix)
    RecordStore(store, data_spec.bucket).write(record)


def _split_or_quarantine(
    route: _Route, table: pa.Table, report: ValidationReport, checksum: str, policy: RowSplitPolicy
) -> GateResult:
    if problem := why_not_splittable(report):
        return route.quarantined(report, checksum, f"row split not possible: {problem}")
    split = split_rows(table, report)
    if split.rejected_share > policy.max_rejected_share:
        return route.quarantined(
            report,
            checksum,
            f"row split refused: {split.rejected.num_rows} of {table.num_rows} rows "
            f"({split.rejected_share:.1%}) break row-level expectations, more than "
            f"validation.max_rejected_row_share ({policy.max_rejected_share:.1%})",
        )
    return route.split(report, checksum, split)


@dataclass(frozen=True)
class _Route:
    """Where one landed object can go, and the writes that send it there."""

    store: ObjectStore
    bucket: str
    key: str
    valid_key: str
    quarantine_key: str
    archive_key: str
    data: DataSpec
    etag: str = ""  # the landed version read and judged: the only one ever moved

    @property
    def columns(self) -> tuple[Column, ...]:
        """The spec's: the validated zone's schema."""
        return tuple(self.data.columns)

    @property
    def report_key(self) -> str:
        return self.quarantine_key + REPORT_SUFFIX

    def validated(
        self,
        report: ValidationReport,
        checksum: str,
        table: pa.Table,
        *,
        canonical: bool,
        dropped: int = 0,
        note: str | None = None,
    ) -> GateResult:
        """Landed bytes that are already canonical (Parquet in the spec's columns and types, in
        order) are moved to the validated zone as they are: they are their own archive. Other
        files: the rows as Parquet in the spec's types first (create-only: a retry writes the
        same bytes), then the landed bytes into the archive; a crash between leaves the landed
        file for the retry."""
        self._profile(table)
        if canonical:
            self._move(self.valid_key, checksum)
            archived = self.valid_key
        else:
            written = self._write_canonical(table)
            self._move(self.archive_key, checksum, written)
            archived = self.archive_key
        return GateResult(
            self.key,
            self.valid_key,
            True,
            report.rows,
            checksum,
            [note] if note else [],
            accepted_rows=table.num_rows,
            rejected_rows=dropped,
            archive_key=archived,
        )

    def _profile(self, table: pa.Table) -> None:
        """The batch's profile for drift audits, from the rows in hand, stored before the
        rows enter the validated zone (a retry writes it again)."""
        profiles = ProfileStore(self.store, self.data)
        profile = profiles.profile(conform(table, self.columns), self.valid_key)
        profiles.write(self.valid_key, profile)

    def _write_canonical(self, table: pa.Table) -> list[str]:
        """The validated rows; returns the key when this call created it."""
        body = encode(conform(table, self.columns), FileFormat.PARQUET)
        parquet = CONTENT_TYPES[FileFormat.PARQUET]
        stored = self.store.put_new(self.bucket, self.valid_key, body, content_type=parquet)
        return [self.valid_key] if stored.created else []

    def _move(self, destination: str, checksum: str | None, written: Sequence[str] = ()) -> None:
        """Move the landed version that was judged. When the key was rewritten meanwhile
        (ObjectChangedError), what this attempt wrote for the judged bytes is deleted again:
        the new bytes get the next sweep with nothing of the old ones in their way."""
        try:
            self.store.move_verified(self.bucket, self.key, destination, checksum, etag=self.etag)
        except ObjectChangedError:
            if written:
                self.store.delete_keys(self.bucket, list(written))
            raise

    def quarantined(
        self, report: ValidationReport, checksum: str | None, note: str | None = None
    ) -> GateResult:
        """`checksum` None: the file was refused unread (too large, crashed)."""
        reasons = [*report.reasons(), *([note] if note else [])]
        written = self._write_reports(report, disposition="quarantined", reasons=reasons)
        self._move(self.quarantine_key, checksum, written)
        return GateResult(
            self.key,
            self.quarantine_key,
            False,
            report.rows,
            checksum,
            reasons,
            report_key=self.report_key,
            accepted_rows=0,
            rejected_rows=report.rows or 0,
        )

    def split(self, report: ValidationReport, checksum: str, split: RowSplit) -> GateResult:
        """Rejected rows and reports first, then the accepted rows, then the original into
        quarantine: a crash anywhere leaves the landed file in place for the retry, and the
        retry writes the same bytes again (create-only, identical is a no-op)."""
        rejected_key = self.quarantine_key + REJECTED_ROWS_SUFFIX
        rejected = encode(split.rejected, FileFormat.PARQUET)
        self.store.put(self.bucket, rejected_key, rejected, CONTENT_TYPES[FileFormat.PARQUET])
        written = self._write_reports(
            report,
            disposition="split",
            reasons=report.reasons(),
            accepted_rows=split.accepted.num_rows,
            rejected_rows=split.rejected.num_rows,
            validated_key=self.valid_key,
            rejected_rows_key=rejected_key,
        )
        written.append(rejected_key)
        self._profile(split.accepted)
        written += self._write_canonical(split.accepted)
        self._move(self.quarantine_key, checksum, written)
        return GateResult(
            self.key,
            self.valid_key,
            True,
            report.rows,
            checksum,
            report.reasons(),
            report_key=self.report_key,
            accepted_rows=split.accepted.num_rows,
            rejected_rows=split.rejected.num_rows,
            quarantine_key=self.quarantine_key,
        )

    def _write_reports(self, report: ValidationReport, **extra: Any) -> list[str]:
        """The report (and Data Docs) beside the quarantined file; returns their keys."""
        # Written before the move, so a quarantined file is never without its reason.
        body = report.to_json(**extra).encode()
        self.store.put(self.bucket, self.report_key, body, "application/json")
        if not report.data_docs_html:  # none when the file could not even be read
            return [self.report_key]
        docs_key = self.quarantine_key + DATA_DOCS_SUFFIX
        self.store.put(
            self.bucket, docs_key, report.data_docs_html.encode(), "text/html; charset=utf-8"
        )
        return [self.report_key, docs_key]

    def already_routed(self) -> GateResult:
        """A retry after the move completed: report where the file went, from what is on S3."""
        store, bucket = self.store, self.bucket
        if store.head(bucket, self.quarantine_key) is not None:
            recorded = json.loads(store.get(bucket, self.report_key))
            common = dict(
                rows=recorded.get("rows"),
                sha256=None,
                reasons=recorded.get("reasons", []),
                report_key=self.report_key,
                already_routed=True,
            )
            if recorded.get("disposition") == "split":
                return GateResult(
                    self.key,
                    self.valid_key,
                    True,
                    accepted_rows=recorded["accepted_rows"],
                    rejected_rows=recorded["rejected_rows"],
                    quarantine_key=self.quarantine_key,
                    **common,
                )
            return GateResult(self.key, self.quarantine_key, False, **common)
        # The landed bytes are in the archive, or (already canonical) are the validated object.
        for kept in (self.archive_key, self.valid_key):
            if store.head(bucket, kept) is not None:
                checksum = store.checksum(bucket, kept)
                return GateResult(
                    self.key, self.valid_key, True, None, checksum, [],
                    already_routed=True, archive_key=kept,
                )  # fmt: skip
        raise FileNotFoundError(
            f"s3://{bucket}/{self.key} is in none of landing, archive, validated, quarantine"
        )

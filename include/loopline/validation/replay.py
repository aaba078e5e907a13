"""Replay quarantined files: each moved back to its landing key, so the gate validates it again
with the suite of now (after the suite or the data was fixed).

A file goes back to the key it landed at (``quarantine/dt=2026-11-23/c.csv`` ->
``landing/dt=2026-11-23/c.csv``): its ``dt=`` folder is its batch's date, which every window
reads it by. The move is the gate's own: copy, verify (the SHA-256 the gate recorded, or the
ETag of a file it refused unread), delete only then; a landing key that holds other bytes is
never overwritten (refused before anything moves). The gate then treats it as any landed file,
its replay check included: rows whose keys are already validated are reported (quarantined
whole, or dropped, as ``validation.duplicate_keys`` says), never validated twice.

**Its reports are archived, not left beside it**: ``<file>.report.json`` and ``.report.html``
move (verified) to ``<archive>/quarantine-reports/<path>.<sha256 prefix>.report.json``. Left
in quarantine, a report would describe a file no longer there (and stay so if it passes), and a
second failure would overwrite it in place (the gate writes reports over old ones), losing why
it was quarantined the first time. Named by their content, a retry finds them already archived
and the reports of several quarantines of one file never collide. Reports go first: a crash
before the file moved leaves it in quarantine (its report safe in the archive) for the retry.

Refused, each with its reason and nothing moved: a key outside the pipeline's quarantine
prefix or bucket; a report rather than a file; a key not in quarantine; a landing key holding
other bytes; the original of a split file (its accepted rows are validated already: replaying
it would validate them twice; land its fixed rejected rows as a new file instead).
Each file's outcome is a ``replay`` record (``requeued`` or ``refused``, with the reason).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from loopline.data.reading import ReadLimits
from loopline.records import ObjectRef, RecordStage, RecordStore, RunContext, StageRecord
from loopline.spec.sections import DataSpec, PipelineSpec
from loopline.storage.objects import CHECKSUM_METADATA_KEY, ObjectConflictError, ObjectStore
from loopline.validation.gate import (
    DATA_DOCS_SUFFIX,
    REJECTED_ROWS_SUFFIX,
    REPORT_SUFFIX,
    GateResult,
    RowSplitPolicy,
    routed_key,
    validate_and_route,
)
from loopline.validation.replays import KeyCache

if TYPE_CHECKING:
    from great_expectations.core.expectation_suite import ExpectationSuite

log = logging.getLogger(__name__)

REPORTS_FOLDER = "quarantine-reports/"  # under the archive root
SIBLINGS = (REPORT_SUFFIX, DATA_DOCS_SUFFIX, REJECTED_ROWS_SUFFIX)  # beside a file, not files
HASH_CHARS = 12


@dataclass(frozen=True)
class Requeue:
    """One quarantined file's replay."""

    source: str  # the key asked for (or listed under the prefix asked for)
    outcome: Literal["requeued", "refused"]
    reason: str = ""
    landing_key: str | None = None
    sha256: str | None = None
    archived_reports: list[str] = field(default_factory=list)
    validation: dict[str, Any] | None = None  # the gate's result, when validated at once

    def summary(self) -> str:
        if self.outcome == "refused":
            return f"{self.source} REFUSED: {self.reason}"
        verdict = f"; validated now: {self.validation['disposition']}" if self.validation else ""
        return f"{self.source} requeued -> {self.landing_key}{verdict}"

    def record(self, run: RunContext, data: DataSpec) -> StageRecord:
        """Subject: the file's path under the quarantine prefix (its landing path too)."""
        bucket = data.bucket
        outputs = [self.landing_key, *self.archived_reports]
        return run.record(
            RecordStage.REPLAY,
            self.outcome,
            subject=f"quarantine/{self.source.removeprefix(data.quarantine_prefix) or 'none'}",
            inputs=[ObjectRef(uri=f"s3://{bucket}/{self.source}", sha256=self.sha256)],
            outputs=[ObjectRef(uri=f"s3://{bucket}/{key}") for key in outputs if key],
            reasons=[self.reason] if self.reason else [],
            payload=asdict(self),
        )


@dataclass(frozen=True)
class QuarantineReplay:
    files: list[Requeue]

    @property
    def requeued(self) -> list[Requeue]:
        return [f for f in self.files if f.outcome == "requeued"]

    @property
    def refused(self) -> list[Requeue]:
        return [f for f in self.files if f.outcome == "refused"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "requeued": [f.landing_key for f in self.requeued],
            "refused": {f.source: f.reason for f in self.refused},
            "validated_now": {
                f.landing_key: f.validation["disposition"] for f in self.requeued if f.validation
            },
        }


def replay_quarantined(
    store: ObjectStore,
    spec: PipelineSpec,
    targets: Iterable[str],
    run: RunContext,
    *,
    validate_with: ExpectationSuite | None = None,
) -> QuarantineReplay:
    """Requeue each quarantined file `targets` name (keys, ``s3://`` URIs or prefixes under
    the quarantine prefix) to its landing key, recording each outcome. With `validate_with`
    (the spec's suite) each requeued file is validated at once, as the gate's task would."""
    data, records = spec.data, RecordStore(store, spec.data.bucket)
    files = []
    for target in targets:
        for found in _resolve(store, data, target):
            replayed = found if isinstance(found, Requeue) else _requeue(store, data, found)
            records.write(replayed.record(run, data))  # at once: a crash after keeps it
            (log.info if replayed.outcome == "requeued" else log.warning)("%s", replayed.summary())
            files.append(replayed)
    if validate_with is not None:
        cache = KeyCache()  # validated objects' keys, read once for all the files
        files = [_validate(store, spec, validate_with, f, run, cache) for f in files]
    return QuarantineReplay(files)


def _resolve(store: ObjectStore, data: DataSpec, target: str) -> list[str | Requeue]:
    """The quarantined files a target names, or its refusal."""
    key = target.strip()
    if key.startswith("s3://"):
        bucket, _, key = key.removeprefix("s3://").partition("/")
        if bucket != data.bucket:
            return [Requeue(target, "refused", f"in bucket {bucket!r}, not {data.bucket!r}")]
    if not key.startswith(data.quarantine_prefix):
        why = f"outside the pipeline's quarantine prefix {data.quarantine_prefix!r}"
        return [Requeue(target, "refused", why)]
    if key.endswith(SIBLINGS):
        why = "a report beside a quarantined file, not a file: name the file it is beside"
        return [Requeue(key, "refused", why)]
    if store.head(data.bucket, key) is not None:
        return [key]
    listed: list[str | Requeue] = [
        k for k in store.list_keys(data.bucket, key) if not k.endswith(SIBLINGS)
    ]
    if not listed:
        why = f"not in quarantine: no object s3://{data.bucket}/{key}, nor any under it"
        return [Requeue(key, "refused", why)]
    return listed


def _requeue(store: ObjectStore, data: DataSpec, key: str) -> Requeue:
    """Move one quarantined file back to its landing key, its reports to the archive."""
    bucket = data.bucket
    landing = routed_key(key, data.quarantine_prefix, data.landing_prefix)
    head = store.head(bucket, key)
    if head is None:  # listed a moment ago: another replay took it
        return Requeue(key, "refused", "not in quarantine any more (replayed meanwhile?)")
    sha256 = head.get("Metadata", {}).get(CHECKSUM_METADATA_KEY)  # None: refused unread
    if why := _why_not(store, data, key, landing, head, sha256):
        return Requeue(key, "refused", why, landing_key=None, sha256=sha256)
    archived = _archive_reports(store, data, key)
    try:
        store.move_verified(bucket, key, landing, sha256, etag=head["ETag"])
    except ObjectConflictError as exc:  # a file landed there between the check and the move
        return Requeue(key, "refused", str(exc), sha256=sha256, archived_reports=archived)
    return Requeue(key, "requeued", "", landing, sha256, archived)


def _why_not(
    store: ObjectStore,
    data: DataSpec,
    key: str,
    landing: str,
    head: dict[str, Any],
    sha256: str | None,
) -> str | None:
    """Why this file must not go back to landing, if it must not."""
    report = _report(store, data, key)
    if report.get("disposition") == "split":
        validated = report.get("validated_key", "the validated zone")
        return (
            f"the original of a split file: its accepted rows are validated already "
            f"({validated}); replaying it would validate them twice. Fix its rejected rows "
            f"({key}{REJECTED_ROWS_SUFFIX}) and land them as a new file"
        )
    landed = store.head(data.bucket, landing)
    if landed is None or _same_bytes(landed, head, sha256):
        return None  # free, or holding these very bytes (a retry after the copy)
    return (
        f"would overwrite s3://{data.bucket}/{landing}: a file landed there since "
        "(other bytes); validate or move it first"
    )


def _report(store: ObjectStore, data: DataSpec, key: str) -> dict[str, Any]:
    """The gate's JSON report beside a quarantined file; empty when none (or unreadable)."""
    raw = store.get_if_exists(data.bucket, key + REPORT_SUFFIX)
    try:
        report = json.loads(raw) if raw is not None else {}
    except ValueError:
        return {}
    return report if isinstance(report, dict) else {}


def _same_bytes(landed: dict[str, Any], head: dict[str, Any], sha256: str | None) -> bool:
    recorded = landed.get("Metadata", {}).get(CHECKSUM_METADATA_KEY)
    if sha256 and recorded:
        return bool(recorded == sha256)
    return bool(landed["ETag"] == head["ETag"] and "-" not in head["ETag"])


def _archive_reports(store: ObjectStore, data: DataSpec, key: str) -> list[str]:
    """Move the file's reports to the archive, named by their content; their new keys."""
    archived = []
    for suffix in (REPORT_SUFFIX, DATA_DOCS_SUFFIX):
        report = key + suffix
        if (head := store.head(data.bucket, report)) is None:
            continue  # none written (an unreadable file has no Data Docs), or moved already
        sha256 = head.get("Metadata", {}).get(CHECKSUM_METADATA_KEY) or store.checksum(
            data.bucket, report
        )
        target = report_archive_key(data, key, suffix, sha256)
        store.move_verified(data.bucket, report, target, sha256, etag=head["ETag"])
        archived.append(target)
    return archived


def report_archive_key(data: DataSpec, key: str, suffix: str, sha256: str) -> str:
    """``<archive>/quarantine-reports/<path under quarantine>.<sha256[:12]><suffix>``."""
    relative = key.removeprefix(data.quarantine_prefix)
    return f"{data.archive_root}{REPORTS_FOLDER}{relative}.{sha256[:HASH_CHARS]}{suffix}"


def _validate(
    store: ObjectStore,
    spec: PipelineSpec,
    suite: ExpectationSuite,
    replayed: Requeue,
    run: RunContext,
    cache: KeyCache,
) -> Requeue:
    """A requeued file through the gate now, as the validate DAG's task would (the gate
    records it as a ``validation`` record of this run); its replay record gets the verdict."""
    if replayed.outcome != "requeued" or replayed.landing_key is None:
        return replayed
    gate = spec.validation
    result: GateResult = validate_and_route(
        store,
        spec.data,
        suite,
        replayed.landing_key,
        row_split=RowSplitPolicy(gate.max_rejected_row_share) if gate.row_split else None,
        duplicate_keys=gate.duplicate_keys,
        run=run,
        known_keys=cache,
        limits=ReadLimits.of(gate),
    )
    validated = replace(
        replayed, validation={**result.to_dict(), "disposition": result.disposition}
    )
    RecordStore(store, spec.data.bucket).write(validated.record(run, spec.data))
    log.info("%s", validated.summary())
    return validated

"""The gate: validate one landed object, then route it to validated/ or quarantine/.

Every landed object ends in exactly one of the two, byte-identical (sha256 checked after the
copy). A failed batch gets its report beside it in quarantine, written before the move, so a
quarantined file is never without its reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from loopline.spec.model import DataSpec
from loopline.storage.objects import ObjectStore, sha256_hex
from loopline.validation.report import validate_object

log = logging.getLogger(__name__)

REPORT_SUFFIX = ".report.json"
DATA_DOCS_SUFFIX = ".report.html"


@dataclass(frozen=True)
class GateResult:
    source: str
    destination: str
    passed: bool
    rows: int | None
    sha256: str | None
    reasons: list[str]
    report_key: str | None = None
    already_routed: bool = False

    def summary(self) -> str:
        verdict = "passed" if self.passed else "QUARANTINED"
        why = f": {'; '.join(self.reasons)}" if self.reasons else ""
        return f"{self.source} {verdict} -> {self.destination}{why}"


def routed_key(key: str, from_prefix: str, to_prefix: str) -> str:
    if not key.startswith(from_prefix):
        raise ValueError(f"{key!r} is not under {from_prefix!r}")
    return to_prefix + key[len(from_prefix) :]


def validate_and_route(store: ObjectStore, data_spec: DataSpec, suite: Any, key: str) -> GateResult:
    """Validate s3://bucket/`key` (under the landing prefix) and move it where it belongs."""
    bucket = data_spec.bucket
    valid_key = routed_key(key, data_spec.landing_prefix, data_spec.validated_prefix)
    quarantine_key = routed_key(key, data_spec.landing_prefix, data_spec.quarantine_prefix)
    if store.head(bucket, key) is None:
        return _already_routed(store, bucket, key, valid_key, quarantine_key)
    data = store.get(bucket, key)
    checksum = sha256_hex(data)
    report = validate_object(data, key, data_spec.columns, suite)
    if report.success:
        store.move_verified(bucket, key, valid_key, checksum)
        result = GateResult(key, valid_key, True, report.rows, checksum, [])
    else:
        report_key = quarantine_key + REPORT_SUFFIX
        store.put(bucket, report_key, report.to_json().encode(), "application/json")
        if report.data_docs_html:  # none when the file could not even be read
            store.put(
                bucket,
                quarantine_key + DATA_DOCS_SUFFIX,
                report.data_docs_html.encode(),
                "text/html; charset=utf-8",
            )
        store.move_verified(bucket, key, quarantine_key, checksum)
        result = GateResult(
            key,
            quarantine_key,
            False,
            report.rows,
            checksum,
            report.reasons(),
            report_key=report_key,
        )
    log.info("%s", result.summary())
    for warning in report.warnings:
        log.warning("%s: warning: %s", key, warning.describe())
    return result


def _already_routed(
    store: ObjectStore, bucket: str, key: str, valid_key: str, quarantine_key: str
) -> GateResult:
    """A retry after the move completed: report where the file went, from what is on S3."""
    if store.head(bucket, valid_key) is not None:
        return GateResult(key, valid_key, True, None, None, [], already_routed=True)
    if store.head(bucket, quarantine_key) is not None:
        return GateResult(
            key,
            quarantine_key,
            False,
            None,
            None,
            ["quarantined by an earlier try"],
            report_key=quarantine_key + REPORT_SUFFIX,
            already_routed=True,
        )
    raise FileNotFoundError(f"s3://{bucket}/{key} is in none of landing, validated, quarantine")

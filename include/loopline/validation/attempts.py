"""A durable count of the attempts to validate one landed file that ended without a word.

A file whose validation kills its task (the kernel's OOM killer: no exception, so no except
clause and no quarantine) would stay first in landing and be retried by every sweep, in front
of the files behind it. So before the risky work (reading, decompressing, decoding, the suite)
the gate writes a marker, ``<pipeline>/attempts/<path under landing>.json``, with the landed
version's ETag and the attempt's number, and deletes it once the file is routed, or when the
attempt failed for a reason that says nothing about the file (S3 unreachable, the file
rewritten meanwhile). A marker found at the start is an attempt that died: after MAX_CRASHES
of them the file is quarantined unread.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from loopline.spec.sections import DataSpec
from loopline.storage.objects import ObjectStore

MAX_CRASHES = 2


def attempts_root(data: DataSpec) -> str:
    """Beside the pipeline's zones (like its archive), outside landing: a marker must never
    be listed as a landed file."""
    parent = data.landing_prefix.rstrip("/").rpartition("/")[0]
    return f"{parent}/attempts/" if parent else "attempts/"


@dataclass(frozen=True)
class Attempts:
    """The marker of one landed version (`etag`) of `key`."""

    store: ObjectStore
    bucket: str
    marker_key: str
    etag: str

    @classmethod
    def of(cls, store: ObjectStore, data: DataSpec, key: str, etag: str) -> Attempts:
        relative = key.removeprefix(data.landing_prefix)
        return cls(store, data.bucket, f"{attempts_root(data)}{relative}.json", etag)

    def crashed(self) -> int:
        """How many earlier attempts on this version ended without a result; a marker of
        another version (the file was landed again) counts for nothing."""
        raw = self.store.get_if_exists(self.bucket, self.marker_key)
        if raw is None:
            return 0
        try:
            marker = json.loads(raw)
            return int(marker["attempts"]) if marker.get("etag") == self.etag else 0
        except (ValueError, KeyError, TypeError):
            return 1  # a marker that is there but unreadable still says an attempt began

    def begin(self, crashed: int) -> None:
        """Written, and acknowledged by S3, before any byte of the file is read."""
        marker = {
            "etag": self.etag,
            "attempts": crashed + 1,
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self.store.put(
            self.bucket, self.marker_key, json.dumps(marker).encode(), "application/json"
        )

    def end(self) -> None:
        self.store.delete_keys(self.bucket, [self.marker_key])

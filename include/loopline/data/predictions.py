"""Batch scoring's committed output, as readers see it.

Each date partition of the output holds a ``_SUCCESS.json`` written last, in one PUT: the
files of the partition, their rows, the model version and the run that scored them. Readers
follow it and never list the partition (it may hold files a later commit is replacing).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date

from loopline.data.window import date_partition, partition_date
from loopline.storage.objects import ObjectStore

SUCCESS = "_SUCCESS.json"


@dataclass(frozen=True)
class Partition:
    day: str
    files: list[str]
    rows: int
    model_version: int
    run_id: str


def partition_prefix(output_prefix: str, day: date | str) -> str:
    return f"{output_prefix}{date_partition(day)}/"


def committed_partitions(
    store: ObjectStore, bucket: str, output_prefix: str, first: date, last: date
) -> list[Partition]:
    """The committed partitions dated within [first, last], oldest first."""
    found = []
    for key in sorted(store.list_keys(bucket, output_prefix)):
        if not key.endswith("/" + SUCCESS):
            continue
        try:
            day = partition_date(key)
        except ValueError:  # dt=2026-13-45
            continue
        if day is None or not first <= day <= last:
            continue
        manifest = json.loads(store.get(bucket, key))
        found.append(
            Partition(
                day.isoformat(),
                manifest["files"],
                manifest["rows"],
                manifest["model_version"],
                manifest["run_id"],
            )
        )
    return found

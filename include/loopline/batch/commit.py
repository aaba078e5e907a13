"""Make a scoring run's staged output the output, one date partition at a time.

Tasks write under a staging prefix that readers never look at. Only after every task
succeeded does the driver copy each date's files into ``<output>/dt=<date>/`` under names
unique to the run, then write that partition's ``_SUCCESS.json`` (one PUT: the switch readers
follow: which files, how many rows, which model and run), then delete the files an earlier
run left there, then the whole staging prefix. A re-run of the same window replaces each partition;
a crash before the switch leaves the previous output in force; nothing is ever duplicated in
a manifest.
"""

from __future__ import annotations

import json
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from loopline.data.predictions import SUCCESS, partition_prefix
from loopline.storage.keys import safe_segment
from loopline.storage.objects import ObjectStore

COPY_THREADS = 10  # botocore's connection pool holds 10: more threads would wait for one


def commit_output(
    store: ObjectStore,
    bucket: str,
    output_prefix: str,
    manifest: list[dict[str, Any]],
    *,
    run_id: str,
    model_version: int,
    staging_prefix: str,
) -> dict[str, int]:
    """Commit each date of `manifest`, then clear `staging_prefix` (including the files of
    task attempts that failed and were retried); returns rows per date."""
    run = safe_segment(run_id)
    by_day: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in manifest:
        by_day[row["dt"]].append(row)
    finals = {row["key"]: _final_key(output_prefix, run, row) for row in manifest}
    _copy_all(store, bucket, finals)
    committed = {}
    for day, rows in sorted(by_day.items()):
        partition = partition_prefix(output_prefix, day)
        files = [finals[row["key"]] for row in rows]
        total = sum(row["rows"] for row in rows)
        record = {
            "run_id": run_id,
            "model_version": model_version,
            "rows": total,
            "files": files,
            "sources": sorted({row["source"] for row in rows}),
            "committed_at": datetime.now(UTC).isoformat(),
        }
        body = json.dumps(record, indent=2).encode()
        store.put(bucket, partition + SUCCESS, body, "application/json")  # the switch
        stale = [
            k
            for k in store.list_keys(bucket, partition)
            if k not in files and k != partition + SUCCESS
        ]
        store.delete_keys(bucket, stale)
        committed[day] = total
    store.delete_prefix(bucket, staging_prefix)
    return committed


def _final_key(output_prefix: str, run: str, row: dict[str, Any]) -> str:
    return f"{partition_prefix(output_prefix, row['dt'])}{run}-{row['key'].rsplit('/', 1)[-1]}"


def _copy_all(store: ObjectStore, bucket: str, finals: dict[str, str]) -> None:
    """Server-side copies, many at once: each is one request S3 serves on its own."""

    def copy(staged: str) -> None:
        store.copy(bucket, staged, finals[staged])

    with ThreadPoolExecutor(max_workers=COPY_THREADS) as pool:
        list(pool.map(copy, finals))  # list(): re-raises the first failure

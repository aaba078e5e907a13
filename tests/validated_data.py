"""Validated demo data on S3, as the gate would have left it."""

from __future__ import annotations

from datetime import datetime

from loopline.demo.card_transactions import generate
from loopline.spec import PipelineSpec
from loopline.storage.formats import encode
from loopline.storage.objects import ObjectStore


def land_validated(
    store: ObjectStore, spec: PipelineSpec, day: datetime, rows: int, seed: int
) -> str:
    """One validated Parquet file of `rows` demo rows starting at `day`; returns its key."""
    key = f"{spec.data.validated_prefix}dt={day:%Y-%m-%d}/batch-{seed}.parquet"
    table = generate(rows, seed=seed, start=day, batch_id=f"b{seed}")
    store.put_new(spec.data.bucket, key, encode(table, "parquet"))
    return key

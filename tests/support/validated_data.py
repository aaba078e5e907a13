"""Validated demo data on S3, as the gate would have left it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from loopline.demo.card_transactions import generate
from loopline.spec import PipelineSpec, load_spec
from loopline.storage.formats import encode
from loopline.storage.objects import ObjectStore

from support.paths import PIPELINES

DEMO = load_spec(PIPELINES / "card_fraud.yaml")


def demo_bucket(s3: Any) -> ObjectStore:
    """The demo spec's bucket on the test S3 server, created."""
    store = ObjectStore(s3.client())
    store.ensure_bucket(DEMO.data.bucket)
    return store


def land_validated(
    store: ObjectStore, day: datetime, rows: int, seed: int, spec: PipelineSpec = DEMO
) -> str:
    """One validated Parquet file of `rows` demo rows starting at `day`; returns its key."""
    key = f"{spec.data.validated_prefix}dt={day:%Y-%m-%d}/batch-{seed}.parquet"
    table = generate(rows, seed=seed, start=day, batch_id=f"b{seed}")
    store.put_new(spec.data.bucket, key, encode(table, "parquet"))
    return key


def everything(store: ObjectStore) -> list[str]:
    """Every object of the demo bucket but the batch profiles the gate keeps for drift audits."""
    return sorted(k for k in store.list_keys(DEMO.data.bucket) if not k.startswith("profiles/"))

"""Land synthetic batches in a pipeline's landing prefix, exactly once per batch id."""

from __future__ import annotations

import logging
import zlib
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from loopline.data.window import date_partition
from loopline.demo.card_transactions import DriftKnobs, generate, start_of_batch
from loopline.demo.params import FeedParams
from loopline.spec.sections import FileFormat
from loopline.storage.formats import CONTENT_TYPES, EXTENSIONS, encode
from loopline.storage.keys import safe_segment
from loopline.storage.objects import ObjectStore, StoredObject

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeedTarget:
    """Where a pipeline's batches land."""

    pipeline: str
    bucket: str
    landing_prefix: str


@dataclass(frozen=True)
class BatchRequest:
    """One batch to land. Without a seed, the seed derives from the batch id, so a retried
    task lands byte-identical data and the create-only write makes it a no-op."""

    batch_id: str
    rows: int
    file_format: FileFormat = FileFormat.PARQUET
    seed: int | None = None
    base_seed: int = 7
    fraud_rate: float = 0.05
    drift: DriftKnobs = field(default_factory=DriftKnobs)
    logical_date: datetime | None = None

    @property
    def effective_seed(self) -> int:
        if self.seed is not None:
            return self.seed
        return self.base_seed * 1_000_003 + zlib.crc32(self.batch_id.encode())


@dataclass(frozen=True)
class LandedBatch:
    uri: str
    key: str
    rows: int
    bytes: int
    sha256: str
    seed: int
    file_format: str
    created: bool
    fraud_rate_observed: float


def safe_batch_id(raw: str) -> str:
    """Turn a run id such as ``manual__2026-11-23T20:00:00+00:00`` into a key-safe id."""
    return safe_segment(raw)


def batch_key(target: FeedTarget, request: BatchRequest) -> str:
    """``<landing_prefix>dt=YYYY-MM-DD/<batch_id>.<ext>``: dated, so windows are prefix scans."""
    day = date_partition(start_of_batch(request.logical_date).date())
    extension = EXTENSIONS[request.file_format]
    return f"{target.landing_prefix}{day}/{request.batch_id}{extension}"


def land_batch(store: ObjectStore, target: FeedTarget, request: BatchRequest) -> LandedBatch:
    """Generate the batch, encode it and write it create-only to the landing prefix."""
    seed = request.effective_seed
    table = generate(
        request.rows,
        seed=seed,
        fraud_rate=request.fraud_rate,
        drift=request.drift,
        batch_id=request.batch_id,
        start=start_of_batch(request.logical_date),
    )
    data = encode(table, request.file_format)
    key = batch_key(target, request)
    metadata = {
        "loopline-pipeline": target.pipeline,
        "loopline-rows": str(table.num_rows),
        "loopline-seed": str(seed),
        "loopline-drift": ",".join(f"{k}={v}" for k, v in asdict(request.drift).items()),
    }
    stored: StoredObject = store.put_new(
        target.bucket, key, data, content_type=CONTENT_TYPES[request.file_format], metadata=metadata
    )
    fraud_rate = float(table.column("is_fraud").to_numpy().mean())
    log.info(
        "%s %s: %d rows, %.1f KiB, fraud rate %.3f, seed %d",
        "landed" if stored.created else "already landed",
        stored.uri,
        table.num_rows,
        len(data) / 1024,
        fraud_rate,
        seed,
    )
    return LandedBatch(
        uri=stored.uri,
        key=key,
        rows=table.num_rows,
        bytes=stored.size,
        sha256=stored.sha256,
        seed=seed,
        file_format=str(request.file_format),
        created=stored.created,
        fraud_rate_observed=round(fraud_rate, 6),
    )


def request_from_params(
    params: dict[str, Any],
    *,
    batch_id: str,
    base_seed: int,
    fraud_rate: float,
    logical_date: datetime | None,
) -> BatchRequest:
    """Build a request from a run's parameters (see FeedParams), naming what is wrong."""
    known = sorted(FeedParams.model_fields)
    if unknown := sorted(set(params) - set(known)):
        raise ValueError(f"unknown batch parameters {unknown}; expected some of {known}")
    try:
        knobs = FeedParams.model_validate(params)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))} {e['msg'].lower()}" for e in exc.errors()
        )
        raise ValueError(f"invalid batch parameters {params}: {problems}") from exc
    return BatchRequest(
        batch_id=batch_id,
        rows=knobs.rows,
        file_format=knobs.file_format,
        seed=knobs.seed,
        base_seed=base_seed,
        fraud_rate=fraud_rate,
        drift=DriftKnobs(
            mean_shift=knobs.mean_shift,
            drifted_features=knobs.drifted_features,
            new_category_share=knobs.new_category_share,
            label_shift=knobs.label_shift,
        ),
        logical_date=logical_date,
    )

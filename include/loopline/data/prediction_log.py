"""The prediction log: every prediction a replica made online or from Kafka, in the pipeline's
bucket, where the drift audit reads predictions beside batch scoring's committed output.

Layout: ``<prefix>dt=YYYY-MM-DD/v=<model version>/source=<source>/<replica>-<first ms>-<seq>
.parquet``, one file per flush, source and model version; created once and never rewritten (a
create-only PUT: S3 makes it visible whole or not at all). Columns: ``id`` (request or event
id), ``source``, ``model_version``, ``score``, ``latency_ms``, ``at`` (UTC timestamp of the
answer), then the model's features as they were scored.

Sources: what was served (``kafka``, ``rest``, ``grpc``: the predictions callers got, which
the drift audit reads), and a shadow's (``shadow``: a challenger's scores of a share of the
same events, never served; ``shadow-champion``: the champion's scores of those events, timed
the same way, what the shadow verdict compares them with).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

import pyarrow as pa

from loopline.data.window import date_partition
from loopline.spec.sections import PipelineSpec
from loopline.storage.objects import ObjectStore

SCORE = "score"
FILE_PATTERN = re.compile(r"/v=(\d+)/source=([a-z-]+)/[^/]+\.parquet$")
SERVED = ("kafka", "rest", "grpc")
SHADOW, SHADOW_CHAMPION = "shadow", "shadow-champion"
LOG_COLUMNS = pa.schema(
    [
        ("id", pa.string()),
        ("source", pa.string()),
        ("model_version", pa.int64()),
        (SCORE, pa.float32()),
        ("latency_ms", pa.float32()),
        ("at", pa.timestamp("ms", tz="UTC")),
    ]
)


def log_prefix(spec: PipelineSpec) -> str | None:
    """Where `spec`'s replicas log their predictions; None: they do not."""
    streaming = spec.streaming
    if streaming is None or not streaming.log_predictions:
        return None
    return streaming.prediction_log_prefix or f"{spec.name}/prediction-log/"


@dataclass(frozen=True)
class LogFile:
    day: date
    model_version: int
    source: str
    key: str


def log_key(prefix: str, day: date, version: int, source: str, name: str) -> str:
    return f"{prefix}{date_partition(day)}/v={version}/source={source}/{name}.parquet"


def logged_files(
    store: ObjectStore,
    bucket: str,
    prefix: str,
    days: list[date],
    version: int | None = None,
    sources: tuple[str, ...] = SERVED,
) -> list[LogFile]:
    """The log files of `days` from `sources` (of one model `version` when given), oldest day
    first."""
    found = []
    for day in sorted(days):
        for key in sorted(store.list_keys(bucket, f"{prefix}{date_partition(day)}/")):
            match = FILE_PATTERN.search(key)
            if match is None:  # not a log file (a profile beside it, a stray object)
                continue
            logged = LogFile(day, int(match.group(1)), match.group(2), key)
            if logged.source in sources and version in (None, logged.model_version):
                found.append(logged)
    return found

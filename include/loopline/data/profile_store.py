"""Where batch profiles live, and the profile of any set of validated objects.

The gate profiles each batch from the table it already holds and stores it before the batch
enters the validated zone; a validated object without a profile (validated before profiles
existed, or by another writer) is profiled from its rows the first time it is asked for, and
stored. A profile's key is its object's key under ``profiles/``, in the same bucket.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa

from loopline.data.profiles import BatchProfile, merge_all, profile_table
from loopline.data.reading import UnreadableFile, conform, read_batch
from loopline.spec.sections import ColumnType, DataSpec, FileFormat
from loopline.storage.formats import CONTENT_TYPES
from loopline.storage.objects import ObjectStore

log = logging.getLogger(__name__)

PROFILES_PREFIX = "profiles/"
STATISTICS_SUFFIX = ".profile.parquet"
SAMPLE_SUFFIX = ".sample.parquet"
NUMERIC_TYPES = (ColumnType.INT64, ColumnType.FLOAT32, ColumnType.FLOAT64)
CATEGORY_TYPES = (ColumnType.STRING, ColumnType.BOOL)
PARQUET = CONTENT_TYPES[FileFormat.PARQUET]
READERS = 8  # profiles read at once by `merged`


def profiled_columns(data: DataSpec) -> tuple[list[str], list[str]]:
    """(numeric, categorical) columns of a profile: all of the spec's but key and timestamp."""
    columns = [c for c in data.columns if c.name not in (data.key, data.timestamp)]
    numeric = [c.name for c in columns if c.type in NUMERIC_TYPES]
    categorical = [c.name for c in columns if c.type in CATEGORY_TYPES]
    return numeric, categorical


def sample_key(object_key: str) -> str:
    """Where the sample of a validated object's profile lives (drift reports read it)."""
    return PROFILES_PREFIX + object_key + SAMPLE_SUFFIX


class ProfileStore:
    """Profiles of one pipeline's validated objects."""

    def __init__(self, store: ObjectStore, data: DataSpec) -> None:
        self.store, self.data = store, data

    def profile(self, table: pa.Table, object_key: str) -> BatchProfile:
        """The profile of `table`, the rows of `object_key` (which seeds its sample)."""
        numeric, categorical = profiled_columns(self.data)
        seed = zlib.crc32(object_key.encode())
        return profile_table(table, numeric, categorical, sample_seed=seed)

    def write(self, object_key: str, profile: BatchProfile) -> None:
        bucket, base = self.data.bucket, PROFILES_PREFIX + object_key
        self.store.put(bucket, base + STATISTICS_SUFFIX, profile.to_parquet(), PARQUET)
        if (sample := profile.sample_parquet()) is not None:
            self.store.put(bucket, sample_key(object_key), sample, PARQUET)

    def read(self, object_key: str) -> BatchProfile | None:
        bucket, base = self.data.bucket, PROFILES_PREFIX + object_key
        statistics = self.store.get_if_exists(bucket, base + STATISTICS_SUFFIX)
        if statistics is None:
            return None
        sample = self.store.get_if_exists(bucket, sample_key(object_key))
        return BatchProfile.from_parquet(statistics, sample)

    def profile_of(self, object_key: str) -> BatchProfile:
        """The stored profile of a validated object; computed from its rows and stored when
        it has none."""
        if (stored := self.read(object_key)) is not None:
            return stored
        raw = self.store.get(self.data.bucket, object_key)
        try:
            table = read_batch(raw, object_key, self.data.columns, self.data.format)
        except UnreadableFile as exc:
            raise ValueError(f"s3://{self.data.bucket}/{object_key} cannot be read: {exc}") from exc
        profile = self.profile(conform(table, self.data.columns), object_key)
        self.write(object_key, profile)
        log.info("profiled %s (%d rows): it had no profile", object_key, profile.rows)
        return profile

    def merged(self, object_keys: Iterable[str]) -> BatchProfile:
        """The profile of all of `object_keys` together. Read a few at a time: each is two
        GETs, and a window's audit waits on them more than it computes (merged in order)."""
        keys = list(object_keys)
        if len(keys) <= 1:
            return merge_all(self.profile_of(key) for key in keys)
        with ThreadPoolExecutor(max_workers=min(READERS, len(keys))) as pool:
            return merge_all(pool.map(self.profile_of, keys))

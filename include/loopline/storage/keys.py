"""Object key parts derived from outside names (Airflow run ids, batch ids)."""

from __future__ import annotations

import hashlib
import re

MAX_SEGMENT = 200
HASH_CHARS = 16  # 64 bits: finding a second id with the same suffix is out of reach
_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]+")
_HASHED = re.compile(rf"-[0-9a-f]{{{HASH_CHARS}}}\Z")
# Airflow's own run ids, "<type>__<UTC time>": their ':' and '+' sit at fixed places, so
# replacing each by '_' stays one-to-one and their keys stay what they always were. A raw id
# that looks like such a key is hashed instead, so it cannot take a real run's key.
_AIRFLOW_RUN_ID = re.compile(r"[a-z][a-z_]*__\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?\+00:00")
_AIRFLOW_RUN_KEY = re.compile(r"[a-z][a-z_]*__\d{4}-\d\d-\d\dT\d\d_\d\d_\d\d(\.\d{1,6})?_00_00")


def safe_segment(raw: str) -> str:
    """A key segment from any name, one per name (a different name, a different segment).

    An id already made of ``A-Za-z0-9._=-`` (200 characters at most) is kept as it is, and an
    Airflow run id keeps its usual key (``manual__2026-11-23T20:00:00+00:00`` ->
    ``manual__2026-11-23T20_00_00_00_00``). Any other id gets its runs of other characters
    replaced by one ``_``, is cut to fit, and ends in ``-`` and a hash of the original, so
    that ``a:b``, ``a+b`` and ``a_b`` never share a key: ``a:b`` -> ``a_b-<16 hex>``.
    """
    if _AIRFLOW_RUN_ID.fullmatch(raw):
        return raw.replace(":", "_").replace("+", "_")
    cleaned = _UNSAFE.sub("_", raw).strip("_.")
    if not cleaned:
        raise ValueError(f"{raw!r} has no character usable in an object key")
    if cleaned == raw and len(raw) <= MAX_SEGMENT and not _looks_derived(raw):
        return raw
    digest = hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_CHARS]
    return f"{cleaned[: MAX_SEGMENT - HASH_CHARS - 1]}-{digest}"


def _looks_derived(segment: str) -> bool:
    """A safe id shaped like a hashed segment or an Airflow run id's key: kept as it is, it
    could take the key of the id it imitates."""
    return bool(_HASHED.search(segment) or _AIRFLOW_RUN_KEY.fullmatch(segment))

"""Object key parts derived from outside names (Airflow run ids, batch ids)."""

from __future__ import annotations

import re


def safe_segment(raw: str) -> str:
    """A key segment from any name: runs of characters outside ``A-Za-z0-9._=-`` become one
    ``_``; ``manual__2026-11-23T20:00:00+00:00`` -> ``manual__2026-11-23T20_00_00_00_00``."""
    cleaned = re.sub(r"[^A-Za-z0-9._=-]+", "_", raw).strip("_.")
    if not cleaned:
        raise ValueError(f"{raw!r} has no character usable in an object key")
    return cleaned[:200]

"""Landed files packed into validation tasks.

A task costs seconds before it validates anything (a process, imports, Great Expectations'
start-up), so one task per small file spends most of its time starting. The gate packs landed
files, in name order, into groups balanced by bytes: at most `max_files` files and about
`max_bytes` bytes each (a file larger than that gets a task of its own). Each file still gets
its own report, routing and record; the group only shares the task. Name order keeps a
group's files together in a listing, so a task's label (first … last) says which files it has.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Landed:
    key: str
    size: int  # bytes


def group_files(files: list[Landed], max_files: int, max_bytes: int) -> list[list[str]]:
    """`files` (in the order given) cut into as few consecutive groups as `max_files` and
    `max_bytes` allow, about equal in load; each group is a list of keys."""
    if max_files < 1 or max_bytes < 1:
        raise ValueError(f"max_files ({max_files}) and max_bytes ({max_bytes}) must be >= 1")
    # A file's load: its share of a full task, by its count or by its bytes, whichever is more.
    loads = [max(1 / max_files, f.size / max_bytes) for f in files]
    count = math.ceil(sum(loads) - 1e-9)
    by_load: dict[int, list[str]] = {}
    before = 0.0
    for landed, load in zip(files, loads, strict=True):
        # The group whose equal share of the total load holds this file's middle.
        group = min(int((before + load / 2) * count / sum(loads)), count - 1)
        by_load.setdefault(group, []).append(landed.key)
        before += load
    groups = []
    for keys in by_load.values():  # shares round to whole files: keep the file cap exact
        groups += [keys[start : start + max_files] for start in range(0, len(keys), max_files)]
    return groups


def group_label(keys: list[str], prefix: str) -> str:
    """How the UI names a group's task: its file, or its first and last file and count."""
    names = [key.removeprefix(prefix) for key in keys]
    if len(names) == 1:
        return names[0]
    return f"{names[0]} … {names[-1]} ({len(names)} files)"

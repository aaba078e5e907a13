"""What `loopline stack` prints: one line per step, with how long it took."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


def echo(message: str) -> None:
    print(message, flush=True)


@contextmanager
def step(title: str) -> Iterator[None]:
    """Print a step, then how long it took (or that it failed)."""
    echo(f"==> {title}")
    started = time.monotonic()
    try:
        yield
    except BaseException:
        echo(f"    FAILED after {time.monotonic() - started:.1f}s")
        raise
    echo(f"    done in {time.monotonic() - started:.1f}s")

"""The records a replica died on: a record two deaths cover is dead-lettered, not read again.

Reading and scoring one event cannot raise out of the loop (``events.parse_event`` turns any
fault into a dead letter, the consumer bisects a batch whose scoring raises), but a process
can still die under one record: the OOM killer, a segfault in a native library. Kafka then
hands the same records to the restarted replica, or to the next one, which dies too: one
record stops the whole group. So, before a batch is read and scored, the replica names the
offsets it holds in its *in-flight* file; the file goes once the batch is scored. A replica
that finds the file when it starts knows that its previous process died on one of those
records, and adds the death to its slot's crash history. Records one death covers are then
read and scored one at a time, each named alone in the in-flight file first, so a second
death names the one record; a record two deaths cover is dead-lettered unread (kind
``crash``) instead of killing a third replica. Deaths while producing or committing are not
counted: those are the broker's faults, not a record's; nor are exceptions the replica
raised itself (it clears the file on its way out).

Every slot of a pipeline writes only its own history, and reads every slot's in the same
folder, since a partition a replica died on moves to another replica while it restarts.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from loopline.runtime.files import write_atomically

log = logging.getLogger(__name__)

KEEP = 100  # crashes kept per slot: old ones are far behind the committed offsets
RECENT_SECONDS = 600.0  # a replica that died this recently is reported as crash-looping
RELOAD_SECONDS = 2.0  # other slots' histories are read again at most this often


@dataclass(frozen=True)
class Crash:
    """A process died while it held these offsets of one partition."""

    topic: str
    partition: int
    first: int
    last: int
    at: float  # when the next process found it (epoch seconds)

    def covers(self, topic: str, partition: int, offset: int) -> bool:
        return (self.topic, self.partition) == (topic, partition) and (
            self.first <= offset <= self.last
        )

    def describe(self) -> str:
        where = f"offset {self.first}" if self.first == self.last else (
            f"offsets {self.first}-{self.last}"
        )  # fmt: skip
        return f"{self.topic} partition {self.partition} {where}"


class CrashGuard:
    def __init__(self, folder: Path, slot: int) -> None:
        self.folder = folder
        self.inflight = folder / f"replica-{slot}.inflight.json"
        self.history = folder / f"replica-{slot}.crashes.json"
        self.found = self._collect()  # the death this process found when it started, if any
        self._everyone: list[Crash] = []
        self._loaded_at = float("-inf")

    # ------------------------------------------------------------------ while scoring
    def hold(self, records: Iterable[Any]) -> None:
        """Name the records about to be read and scored (Kafka records: topic, partition,
        offset): if the process dies before `release`, the next one counts the death."""
        spans: dict[tuple[str, int], list[int]] = {}
        for record in records:
            span = spans.setdefault((record.topic, record.partition), [record.offset] * 2)
            span[0], span[1] = min(span[0], record.offset), max(span[1], record.offset)
        held = [[topic, partition, first, last] for (topic, partition), (first, last) in
                spans.items()]  # fmt: skip
        write_atomically(self.inflight, json.dumps(held).encode(), durable=False)

    def release(self) -> None:
        self.inflight.unlink(missing_ok=True)

    def deaths(self, record: Any) -> int:
        """How many deaths (of any slot of the pipeline) covered this record."""
        crashes = self._all()
        if not crashes:
            return 0
        return sum(c.covers(record.topic, record.partition, record.offset) for c in crashes)

    def recent(self, now: float | None = None) -> list[dict[str, Any]]:
        """This slot's deaths of the last `RECENT_SECONDS`, for its heartbeat."""
        since = (now or time.time()) - RECENT_SECONDS
        return [asdict(crash) for crash in _read(self.history) if crash.at >= since]

    # ------------------------------------------------------------------ start-up
    def _collect(self) -> list[Crash]:
        """The death of the previous process, if it died holding records."""
        if not self.inflight.exists():
            return []
        try:
            held = json.loads(self.inflight.read_text())
            now = time.time()
            found = [Crash(str(t), int(p), int(first), int(last), now) for t, p, first, last in
                     held]  # fmt: skip
        except (ValueError, TypeError, OSError) as exc:  # cut short by the death itself
            log.warning("unreadable in-flight file %s (%s): no death counted", self.inflight, exc)
            found = []
        for crash in found:
            log.error("the previous process of this slot died holding %s", crash.describe())
        history = [*_read(self.history), *found][-KEEP:]
        write_atomically(self.history, json.dumps([asdict(c) for c in history]).encode())
        self.release()
        return found

    def _all(self) -> list[Crash]:
        now = time.monotonic()
        if now - self._loaded_at >= RELOAD_SECONDS:
            self._everyone = [c for path in self.folder.glob("replica-*.crashes.json")
                              for c in _read(path)]  # fmt: skip
            self._loaded_at = now
        return self._everyone


def _read(path: Path) -> list[Crash]:
    try:
        return [Crash(**entry) for entry in json.loads(path.read_text())]
    except FileNotFoundError:
        return []
    except (ValueError, TypeError) as exc:  # a history we cannot read protects nothing
        log.warning("unreadable crash history %s: %s", path, exc)
        return []

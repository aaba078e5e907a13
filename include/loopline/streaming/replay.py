"""Replay dead letters: the events a pipeline's replicas dead-lettered, produced again to its
input topic (after the model, the replicas or the producer were fixed), each once.

The dead-letter topic is read without joining a consumer group (from the start, or from given
offsets per partition), up to `max_events` letters. Each letter's original record is recovered
(``loopline.streaming.dead_letters``: its key, and its exact value when the replica kept it).
A letter is then one of:

- **replayed**: produced again to the input topic with its original key and value (so the same
  partition), and headers naming the letter it came from and the replay's run;
- **already scored**: the output topic holds a prediction for its event id (a replay before
  this one, or a duplicate that passed): reported, not replayed, unless `force`;
- **unreplayable**: its value was not kept (empty, oversized, or only a preview in a letter
  written before the replicas kept values), or it has no event id: reported with the reason;
- **duplicate**: another letter of this read holds the same event id: only the latest goes.

Letters settled by an earlier replay (any of the above) are passed over without counting
against `max_events` unless `force`: each replay's record lists the letters it settled, so a
second run continues where the first stopped instead of sending the same events again while
the replicas still work through them. The whole output topic is read to find scored ids, up to
`max_scan` predictions; a topic longer than that is refused unless `force` (an id scored past
the scan would be scored twice). The replay is recorded (stage ``replay``, subject
``dead-letters``) with its counts, refusals included.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loopline.records import RecordStage, RecordStore, RunContext, StageRecord
from loopline.streaming.dead_letters import Recovered, recover
from loopline.streaming.kafka_settings import client_settings
from loopline.streaming.lag import true_ends

if TYPE_CHECKING:
    from loopline.spec.sections import PipelineSpec, StreamingSpec

log = logging.getLogger(__name__)

SUBJECT = "dead-letters"
REPLAY_OF_HEADER = "loopline-replay-of"  # <dead-letter topic>/<partition>/<offset>
REPLAY_RUN_HEADER = "loopline-replay-run"
IDLE_SECONDS = 10.0  # no record for this long before a partition's end: the read stops
MAX_SCAN = 1_000_000
SHOWN = 20  # event ids listed per outcome in the record and the summary

Place = tuple[int, int]  # (partition, offset) on the dead-letter topic


class ReplayRefused(Exception):
    """The replay cannot be done as asked; nothing was produced."""


@dataclass(frozen=True)
class Letter:
    partition: int
    offset: int
    original: Recovered

    @property
    def place(self) -> Place:
        return (self.partition, self.offset)


@dataclass
class DeadLetterReplay:
    """What one replay did with each letter it read."""

    topic: str  # the dead-letter topic
    input_topic: str
    read: int = 0
    replayed: list[Letter] = field(default_factory=list)
    already_scored: list[Letter] = field(default_factory=list)
    unreplayable: list[Letter] = field(default_factory=list)
    duplicates: list[Letter] = field(default_factory=list)
    settled_before: int = 0  # passed over: an earlier replay settled them
    next_offsets: dict[int, int] = field(default_factory=dict)  # where this read stopped
    read_complete: bool = True  # every partition read to its end
    scanned: int = 0  # predictions read from the output topic
    refused: str | None = None

    @property
    def verdict(self) -> str:
        if self.refused:
            return "refused"
        return "replayed" if self.replayed else "nothing_replayed"

    @property
    def numbers(self) -> dict[str, float]:
        return {
            "read": self.read,
            "replayed": len(self.replayed),
            "already_scored": len(self.already_scored),
            "unreplayable": len(self.unreplayable),
            "duplicates": len(self.duplicates),
            "settled_before": self.settled_before,
            "predictions_scanned": self.scanned,
        }

    @property
    def settled(self) -> list[Place]:
        """Every letter this replay decided on: a later one passes them over."""
        letters = (*self.replayed, *self.already_scored, *self.unreplayable, *self.duplicates)
        return sorted(letter.place for letter in letters)

    def reasons(self) -> list[str]:
        found = [self.refused] if self.refused else []
        found += [
            f"partition {letter.partition} offset {letter.offset} "
            f"({letter.original.event_id or 'no id'}): "
            f"{letter.original.unreplayable}"
            for letter in self.unreplayable[:SHOWN]
        ]
        if self.already_scored:
            found.append(
                f"{len(self.already_scored)} already scored, not replayed (force replays them): "
                + _ids(self.already_scored)
            )
        if not self.read_complete:
            found.append(f"stopped after {self.read} letter(s) (max_events); more are left")
        return found

    def summary(self) -> str:
        if self.refused:
            return f"replay of {self.topic} refused: {self.refused}"
        counts = ", ".join(f"{int(v)} {k.replace('_', ' ')}" for k, v in self.numbers.items())
        more = "" if self.read_complete else f"; more left from offsets {self.next_offsets}"
        return f"{self.topic} -> {self.input_topic}: {counts}{more}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "input_topic": self.input_topic,
            "verdict": self.verdict,
            **self.numbers,
            "replayed_ids": [letter.original.event_id for letter in self.replayed],
            "already_scored_ids": [letter.original.event_id for letter in self.already_scored],
            "unreplayable": [
                {"place": list(letter.place), "why": letter.original.unreplayable}
                for letter in self.unreplayable
            ],
            "settled": [list(place) for place in self.settled],
            "next_offsets": {str(p): o for p, o in self.next_offsets.items()},
            "read_complete": self.read_complete,
            "refused": self.refused,
        }

    def record(self, run: RunContext) -> StageRecord:
        return run.record(
            RecordStage.REPLAY,
            self.verdict,
            subject=SUBJECT,
            reasons=self.reasons(),
            numbers=self.numbers,
            payload=self.to_dict(),
        )


def replay_dead_letters(
    bootstrap: str,
    spec: PipelineSpec,
    run: RunContext,
    records: RecordStore,
    *,
    max_events: int = 1000,
    start_offsets: Mapping[int, int] | None = None,
    force: bool = False,
    max_scan: int = MAX_SCAN,
) -> DeadLetterReplay:
    """Replay up to `max_events` dead letters of `spec`'s replicas (see the module); recorded,
    a refusal too. `start_offsets`: partition -> first offset to read (others: the start)."""
    streaming = _streaming(spec)
    outcome = DeadLetterReplay(streaming.dead_letters, streaming.input_topic)
    try:
        _replay(bootstrap, streaming, run, records, outcome, max_events, start_offsets or {},
                force, max_scan)  # fmt: skip
    except ReplayRefused as refused:
        outcome.refused = str(refused)
    records.write(outcome.record(run))
    log.info("%s", outcome.summary())
    return outcome


def _replay(
    bootstrap: str,
    streaming: StreamingSpec,
    run: RunContext,
    records: RecordStore,
    outcome: DeadLetterReplay,
    max_events: int,
    start_offsets: Mapping[int, int],
    force: bool,
    max_scan: int,
) -> None:
    if max_events < 1:
        raise ReplayRefused(f"max_events must be 1 or more, not {max_events}")
    if not _partitions(bootstrap, streaming.input_topic):
        raise ReplayRefused(
            f"no input topic {streaming.input_topic} on {bootstrap}: deploy the consumers first"
        )
    settled = set() if force else settled_before(records, run.pipeline)
    letters = _read_letters(bootstrap, outcome, settled, start_offsets, max_events)
    latest = _latest_per_event(letters, outcome)
    wanted = {letter.original.event_id for letter in latest if letter.original.event_id}
    scored = (
        set() if force or not wanted else _scored(bootstrap, streaming, wanted, max_scan, outcome)
    )
    for letter in latest:
        if letter.original.event_id in scored:
            outcome.already_scored.append(letter)
        else:
            outcome.replayed.append(letter)
    _produce(bootstrap, streaming, run, outcome.replayed)


def settled_before(records: RecordStore, pipeline: str) -> set[Place]:
    """The letters earlier replays decided on (replayed, scored, unreplayable, duplicate)."""
    places: set[Place] = set()
    for record in records.records(pipeline, RecordStage.REPLAY):
        if record.subject == SUBJECT:
            places |= {(int(p), int(o)) for p, o in record.payload.get("settled", [])}
    return places


def _latest_per_event(letters: list[Letter], outcome: DeadLetterReplay) -> list[Letter]:
    """Unreplayable letters out; of several letters of one event id, the latest only."""
    latest: dict[str, Letter] = {}
    for letter in letters:
        original = letter.original
        if original.unreplayable or original.event_id is None:
            outcome.unreplayable.append(letter)
            continue
        if (earlier := latest.get(original.event_id)) is not None:
            outcome.duplicates.append(earlier)
        latest[original.event_id] = letter
    return list(latest.values())


def _read_letters(
    bootstrap: str,
    outcome: DeadLetterReplay,
    settled: set[Place],
    start_offsets: Mapping[int, int],
    max_events: int,
) -> list[Letter]:
    letters: list[Letter] = []

    def take(record: Any) -> bool:
        if (record.partition, record.offset) in settled:
            outcome.settled_before += 1
            return False
        original = recover(record.key, record.value)
        letters.append(Letter(record.partition, record.offset, original))
        return True

    scan = scan_topic(bootstrap, outcome.topic, take, max_events, start_offsets)
    outcome.read, outcome.next_offsets = len(letters), scan.next_offsets
    outcome.read_complete = scan.complete
    return letters


def _scored(
    bootstrap: str,
    streaming: StreamingSpec,
    wanted: set[str],
    max_scan: int,
    outcome: DeadLetterReplay,
) -> set[str]:
    """The event ids of `wanted` that the output topic holds a prediction for."""
    found: set[str] = set()

    def take(record: Any) -> bool:
        event_id = record.key.decode("utf-8", errors="replace") if record.key else None
        if event_id in wanted:
            found.add(event_id)
        return True

    scan = scan_topic(bootstrap, streaming.output_topic, take, max_scan)
    outcome.scanned = scan.taken
    if not scan.complete:
        raise ReplayRefused(
            f"{streaming.output_topic} holds more than {max_scan:,} predictions (max_scan): "
            "an event scored past them would be scored twice; raise max_scan, or force"
        )
    return found


def _produce(
    bootstrap: str, streaming: StreamingSpec, run: RunContext, letters: list[Letter]
) -> None:
    """Each letter's original record to the input topic, every send acknowledged."""
    if not letters:
        return
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        **client_settings(),
    )
    try:
        futures = [
            producer.send(
                streaming.input_topic,
                key=letter.original.key,
                value=letter.original.value,
                headers=_replay_headers(streaming.dead_letters, letter, run),
            )
            for letter in letters
        ]
        producer.flush()
        for future in futures:
            future.get(timeout=30)  # raises when the broker refused one
    finally:
        producer.close()


def _replay_headers(topic: str, letter: Letter, run: RunContext) -> list[tuple[str, bytes]]:
    """Which letter a replayed event came from, and which replay sent it."""
    return [
        (REPLAY_OF_HEADER, f"{topic}/{letter.partition}/{letter.offset}".encode()),
        (REPLAY_RUN_HEADER, run.run_id.encode()),
    ]


@dataclass(frozen=True)
class Scan:
    taken: int
    next_offsets: dict[int, int]  # per partition: the first offset not handed to `take`
    complete: bool  # every partition was read to the end it had when the scan began


def scan_topic(
    bootstrap: str,
    topic: str,
    take: Callable[[Any], bool],
    limit: int,
    start_offsets: Mapping[int, int] | None = None,
) -> Scan:
    """Hand every record of `topic` (from `start_offsets`, else the start, to the end it has
    now) to `take`, outside any consumer group, until `take` accepted `limit` of them. A
    missing topic is an empty one."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        **client_settings(),
        group_id=None,  # reads without joining (or committing for) any group
        enable_auto_commit=False,
        allow_auto_create_topics=False,
        fetch_max_wait_ms=100,
    )
    try:
        partitions = sorted(consumer.partitions_for_topic(topic))
        if not partitions:
            return Scan(0, {}, True)
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        first = consumer.beginning_offsets(tps)
        ends = true_ends(bootstrap, consumer.end_offsets(tps))
        position = {tp: max(first[tp], (start_offsets or {}).get(tp.partition, 0)) for tp in tps}
        for tp, offset in position.items():
            consumer.seek(tp, offset)
        taken = _drain(consumer, position, ends, take, limit)
        complete = all(position[tp] >= ends[tp] for tp in tps)
        return Scan(taken, {tp.partition: position[tp] for tp in tps}, complete)
    finally:
        consumer.close()


def _drain(
    consumer: Any,
    position: dict[Any, int],
    ends: Mapping[Any, int],
    take: Callable[[Any], bool],
    limit: int,
) -> int:
    """Poll until every partition reached its end, `limit` were taken, or nothing came for
    IDLE_SECONDS; `position` follows what was handed over."""
    taken, idle_since = 0, time.monotonic()
    while taken < limit and any(position[tp] < end for tp, end in ends.items()):
        polled = consumer.poll(timeout_ms=200)
        if not polled:
            if time.monotonic() - idle_since > IDLE_SECONDS:
                break
            continue
        idle_since = time.monotonic()
        for tp, batch in polled.items():
            for record in batch:
                if taken >= limit:
                    return taken
                if record.offset >= ends[tp]:  # arrived after the scan began: done here
                    position[tp] = ends[tp]
                    break
                position[tp] = record.offset + 1
                taken += take(record)
            else:  # a transaction's marker takes an offset no record returns
                position[tp] = max(position[tp], min(consumer.position(tp), ends[tp]))
    return taken


def _partitions(bootstrap: str, topic: str) -> set[int]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        **client_settings(),
        group_id=None,
        enable_auto_commit=False,
        allow_auto_create_topics=False,
    )
    try:
        return set(consumer.partitions_for_topic(topic))
    finally:
        consumer.close()


def _streaming(spec: PipelineSpec) -> StreamingSpec:
    if spec.streaming is None:
        raise ValueError(f"{spec.name} has no streaming section: it has no dead letters")
    return spec.streaming


def _ids(letters: list[Letter]) -> str:
    ids = [str(letter.original.event_id) for letter in letters[:SHOWN]]
    return ", ".join(ids) + (", ..." if len(letters) > SHOWN else "")

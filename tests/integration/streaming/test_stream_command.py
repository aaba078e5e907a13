"""`loopline stream produce|tail` against the real local broker (kcat cannot connect to it)."""

from __future__ import annotations

import json

import pytest
from loopline.cli import main
from support.paths import PROJECT_ROOT
from support.servers import KafkaBroker


# A broker of its own, not the session's kafka_broker: this module streams on the demo spec's
# own topics and consumer group, which other modules use too; its offsets must start empty.
@pytest.fixture(scope="module")
def broker():
    with KafkaBroker.start() as broker:
        yield broker


def loopline(*args: str) -> int:
    return main(["--project", str(PROJECT_ROOT), *args])


def test_produce_demo_events_and_lines_then_tail_them(broker, tmp_path, capsys) -> None:
    lines = tmp_path / "events.jsonl"
    lines.write_text('{"event_id": "mine-1", "amount": 3.5}\nnot json\n')
    boot = ("--bootstrap", broker.bootstrap)
    assert loopline("stream", "produce", "card_fraud", "--count", "5", *boot) == 0
    assert loopline("stream", "produce", "card_fraud", "--file", str(lines), *boot) == 0
    capsys.readouterr()

    assert loopline("stream", "tail", "card_fraud", "--topic", "input", "--from-beginning",
                    "-n", "7", *boot) == 0  # fmt: skip

    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(records) == 7
    demo = [r for r in records if r["key"] not in ("mine-1", "line-2")]
    assert len(demo) == 5 and all("amount" in r["value"] for r in demo)
    by_key = {r["key"]: r["value"] for r in records}
    assert by_key["mine-1"] == {"event_id": "mine-1", "amount": 3.5}
    assert by_key["line-2"] == "not json"  # sent as it is: the consumer dead-letters it

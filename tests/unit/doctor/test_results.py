"""How findings print: one line per check, a fix under each problem, and the exit code."""

from __future__ import annotations

import json

from loopline.doctor.results import (
    exit_code,
    format_json,
    format_text,
    ok,
    problem,
    skipped,
)

RESULTS = [
    ok("java", "Java 17 at /usr/bin/java (PATH)"),
    problem("kafka", "broker 127.0.0.1:9 unreachable", "make run"),
    skipped("spark", "master local[*] runs in the task's process"),
]


def test_each_check_is_one_line_and_each_problem_is_followed_by_its_fix() -> None:
    assert format_text(RESULTS).splitlines() == [
        "ok       java   Java 17 at /usr/bin/java (PATH)",
        "PROBLEM  kafka  broker 127.0.0.1:9 unreachable",
        "                fix: make run",
        "skipped  spark  master local[*] runs in the task's process",
        "1 problem (1 ok, 1 skipped)",
    ]


def test_json_carries_every_field_and_the_problem_count() -> None:
    document = json.loads(format_json(RESULTS))
    assert document["problems"] == 1
    assert document["checks"][1] == {
        "name": "kafka",
        "status": "PROBLEM",
        "detail": "broker 127.0.0.1:9 unreachable",
        "fix": "make run",
    }


def test_any_problem_exits_1_and_skips_alone_exit_0() -> None:
    assert exit_code(RESULTS) == 1
    assert exit_code([RESULTS[0], RESULTS[2]]) == 0
    assert format_text([RESULTS[0]]).endswith("no problems (1 ok, 0 skipped)")

"""The one sizing rule: what a deploy or scale runs, within the limits the monitor scales in
(``Limits.clamp``), so the monitor never undoes a deploy at once."""

from __future__ import annotations

import pytest
from loopline.streaming.scaling import Limits, Observation, decide_scale, replicas_to_run

LIMITS = Limits(minimum=2, maximum=4, partitions=3, lag_per_replica=100, p99_target_ms=250)


@pytest.mark.parametrize(
    ("asked", "running", "runs"),
    [
        (None, 0, 2),  # a first deploy starts the minimum
        (None, 3, 3),  # as many as run now
        (1, 3, 2),  # never below the minimum
        (9, 0, 3),  # never beyond the partitions (a fourth replica would idle)
    ],
    ids=["first-deploy", "as-many-as-run", "at-least-min", "at-most-partitions"],
)
def test_a_deploy_runs_what_was_asked_within_the_limits(asked, running, runs) -> None:
    assert replicas_to_run(asked, running, LIMITS) == runs


def test_the_cap_is_max_where_the_topic_has_more_partitions() -> None:
    assert replicas_to_run(9, 0, Limits(1, 4, 12, 100, 250)) == 4


def test_the_monitor_scales_within_the_same_limits_a_deploy_is_sized_in() -> None:
    surge = decide_scale(Observation(0, 2, total_lag=100_000), LIMITS, [])
    assert surge.desired == replicas_to_run(100_000, 2, LIMITS) == 3
    idle = decide_scale(Observation(0, 3, total_lag=0), LIMITS, [])
    assert idle.desired == replicas_to_run(0, 3, LIMITS) == 2

"""The consumers' actions as the library takes them, for any caller (an operator, the CLI, a
benchmark): sized by the rule the monitor scales with, a refusal before anything is touched,
and a streaming record of every action, refusals included. The deployment is a fake; the
registry and the records are on the real S3 server."""

from __future__ import annotations

import time
from typing import Any

import pytest
from loopline.records import RecordStage, RecordStore, RunContext
from loopline.spec.sections import Replicas, ServeSpec
from loopline.streaming import actions, monitor
from loopline.streaming.actions import (
    Consumers,
    deploy_consumers,
    monitor_consumers,
    roll_consumers,
    scale_consumers,
    stop_consumers,
)
from loopline.streaming.deployment import Outcome
from loopline.streaming.lag import GroupLag, PartitionLag
from loopline.streaming.monitor import scaling_window
from loopline.streaming.scaling import Observation
from support.judged_versions import SPEC, crown, empty_registry, judge_as, register


class FakeDeployment:
    """Replicas as a dict of slot -> version, every action done at once."""

    def __init__(self) -> None:
        self.running: dict[int, int] = {}
        self.calls: list[tuple[Any, ...]] = []

    def deploy(self, version: int, replicas: int) -> Outcome:
        return self._run("deploy", version, replicas)

    def scale(self, version: int, replicas: int) -> Outcome:
        return self._run("scale", version, replicas)

    def stop(self) -> Outcome:
        self.calls.append(("stop",))
        self.running = {}
        return Outcome("stop", "done", ["stopped"])

    def replace_dead(self, version: int) -> Outcome:
        return Outcome("replace_dead", "no_change")

    def replica_count(self) -> int:
        return len(self.running)

    def heartbeats(self) -> list[dict[str, Any]]:
        return []

    def problems(self) -> list[str]:
        return []

    def _run(self, action: str, version: int, replicas: int) -> Outcome:
        self.calls.append((action, version, replicas))
        keep = {} if action == "deploy" else self.running  # deploy rolls; scale keeps versions
        self.running = {slot: keep.get(slot, version) for slot in range(replicas)}
        return Outcome(action, "done", [f"v{version} x{replicas}"], dict(self.running))


@pytest.fixture
def created_topics(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Topic creation noted, not done: there is no broker in this tier."""
    calls: list[str] = []

    def ensure_topics(bootstrap: str, specs: list[Any]) -> list[str]:
        calls.append(bootstrap)
        return ["t"]

    monkeypatch.setattr(actions, "ensure_topics", ensure_topics)
    return calls


@pytest.fixture
def consumers(s3, tmp_path, created_topics) -> Consumers:
    """card_fraud's consumers on a fake deployment: v1 champion, v2 refused by the gates."""
    registry = empty_registry(s3)
    v1, v2 = register(registry, tmp_path), register(registry, tmp_path)
    judge_as(registry, v1, auc=0.90, run_id="r1")
    crown(registry, v1)
    judge_as(registry, v2, auc=0.80, run_id="r2")
    records = RecordStore(registry.store, SPEC.data.bucket)
    return Consumers(SPEC, FakeDeployment, "broker:9092", registry, records, tmp_path / "state")


def run(run_id: str = "cli-1") -> RunContext:
    return RunContext(SPEC.name, run_id)  # no DAG: as the CLI or a benchmark calls


def streaming_records(consumers: Consumers) -> list[Any]:
    return list(consumers.records.records(SPEC.name, RecordStage.STREAMING))


def test_a_deploy_is_sized_recorded_and_held_for_the_monitor(consumers) -> None:
    outcome = deploy_consumers(consumers, run(), "champion", replicas=9)

    assert consumers.deployment.calls == [("deploy", 1, 4)]  # 4 partitions in the demo spec
    assert outcome.verdict == "done" and not outcome.failed
    assert outcome.steps[:2] == [
        "created topic t",
        "9 replica(s) asked, 4 run: replicas.min 1 .. 4 (max 4, 4 partitions)",
    ]
    [record] = streaming_records(consumers)
    assert (record.subject, record.verdict, record.numbers) == ("deploy", "done", {"replicas": 4})
    assert record.dag_id is None and record.reasons == outcome.steps
    window = scaling_window(consumers.state, SPEC.name, SPEC.streaming)
    assert [count for _, count in window.recent(time.time())] == [4]


def test_a_version_the_gates_refused_is_a_refused_record_and_nothing_is_touched(
    consumers, created_topics
) -> None:
    outcome = deploy_consumers(consumers, run(), model_version=2, replicas=2)

    assert outcome.failed and outcome.verdict == "refused"
    assert consumers.deployment.calls == [] and created_topics == []
    [record] = streaming_records(consumers)
    assert (record.subject, record.verdict) == ("deploy", "refused")
    assert "v2 may not serve: its judgement in run r2 refused it" in record.reasons[0]
    assert record.payload["model_version"] == "2"
    assert not (consumers.state / "streaming").exists()  # no scaling window either


def test_a_roll_keeps_the_count_and_is_refused_when_nothing_runs(consumers) -> None:
    nothing = roll_consumers(consumers, run("roll-0"), "champion")
    assert (nothing.action, nothing.verdict) == ("roll", "refused") and nothing.failed
    assert consumers.deployment.calls == []

    deploy_consumers(consumers, run("deploy"), "champion", replicas=3)
    rolled = roll_consumers(consumers, run("roll-1"), "1")

    assert consumers.deployment.calls[-1] == ("deploy", 1, 3)
    assert (rolled.action, rolled.verdict) == ("roll", "done")
    subjects = [(r.run_id, r.subject, r.verdict) for r in streaming_records(consumers)]
    assert ("roll-0", "roll", "refused") in subjects and ("roll-1", "roll", "done") in subjects


def test_scale_and_stop_are_recorded(consumers) -> None:
    scaled = scale_consumers(consumers, run("scale"), replicas=None)  # none run: the minimum
    stopped = stop_consumers(consumers, run("stop"))

    assert consumers.deployment.calls == [("scale", 1, 1), ("stop",)]
    assert (scaled.verdict, stopped.verdict) == ("done", "done")
    verdicts = {r.subject: r.verdict for r in streaming_records(consumers)}
    assert verdicts == {"scale": "done", "stop": "done"}


def test_the_monitor_records_its_decision_and_scales_within_the_limits(
    consumers, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert monitor_consumers(consumers, run("idle")) is None  # nothing runs: nothing decided
    assert streaming_records(consumers) == []

    deploy_consumers(consumers, run("deploy"), "champion", replicas=1)
    lagging = Observation(at=0, current=1, total_lag=10**9, partitions=4)
    monkeypatch.setattr(monitor, "observe", lambda *args: lagging)
    seen = monitor_consumers(consumers, run("monitor"))

    assert seen is not None and seen.decision.desired == 4  # the cap, not 10**9 / lag
    assert consumers.deployment.calls[-1] == ("scale", 1, 4)
    [scaling] = [r for r in streaming_records(consumers) if r.subject == "scaling"]
    assert scaling.verdict == "scale_out" and scaling.numbers["desired"] == 4


class ServingDeployment(FakeDeployment):
    """Replicas that serve online: each heartbeat has its endpoint's load (20 requests in
    flight on average over the last minute, 10 over the last 6 s), as a replica writes it."""

    def heartbeats(self) -> list[dict[str, Any]]:
        endpoint = {
            "requests": 5000,
            "in_flight": 9,
            "latency_ms": {"p50": 4.0, "p99": 40.0, "p99_60s": 40.0, "p99_6s": 38.0},
            "concurrency_60s": 20.0,
            "concurrency_6s": 10.0,
            "failed": 0,
            "refused": 0,
        }
        return [{"latency_ms": {"p99_60s": 12.0}, "endpoint": endpoint} for _ in self.running]


def test_the_monitor_scales_a_serving_pipeline_on_its_endpoints_concurrency(
    s3, tmp_path, created_topics, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No lag at all, but 20 requests in flight per replica against a target of 8 (sized at
    8 x 0.7 = 5.6): ceil(20 / 5.6) = 4, and beyond the topic's 4 partitions up to replicas.max."""
    assert SPEC.streaming is not None
    streaming = SPEC.streaming.model_copy(
        update={"serve": ServeSpec(target_concurrency=8), "replicas": Replicas(min=1, max=6)}
    )
    spec = SPEC.model_copy(update={"streaming": streaming})
    registry = empty_registry(s3)
    v1 = register(registry, tmp_path)
    judge_as(registry, v1, auc=0.90, run_id="r1")
    crown(registry, v1)
    records = RecordStore(registry.store, SPEC.data.bucket)
    deployment = ServingDeployment()
    consumers = Consumers(spec, lambda: deployment, "broker:9092", registry, records, tmp_path)
    caught_up = [PartitionLag(p, 100, 100, 0) for p in range(4)]
    no_lag = GroupLag(streaming.input_topic, streaming.consumer_group, caught_up)
    monkeypatch.setattr(monitor, "group_lag", lambda *args: no_lag)

    deploy_consumers(consumers, run("deploy"), "champion", replicas=1)
    first = monitor_consumers(consumers, run("monitor-1"))
    assert first is not None and first.decision.desired == 4  # ceil(20 / 5.6)
    assert deployment.calls[-1] == ("scale", 1, 4)

    second = monitor_consumers(consumers, run("monitor-2"))  # 4 x 20 = 80 in flight now
    assert second is not None and second.decision.desired == 6  # ceil(80 / 5.6) = 15: max
    assert deployment.calls[-1] == ("scale", 1, 6)  # beyond the 4 partitions
    scaling = [r for r in streaming_records(consumers) if r.subject == "scaling"]
    assert [r.verdict for r in scaling] == ["scale_out", "scale_out"]
    assert scaling[0].numbers["concurrency_stable"] == 20.0
    assert scaling[0].numbers["concurrency_target"] == 8.0
    assert scaling[1].numbers["concurrency_stable"] == 80.0
    assert (
        scaling[0].reasons[-2] == "concurrency 20.0 over the last 60 s / (8 x 0.7) -> 4 replica(s)"
    )

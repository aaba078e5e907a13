"""What a task's cost record holds, and how ``loopline cost`` adds them up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from loopline.records import ObjectRef, RecordStage, RunContext
from loopline.records.cost import Usage, note_gpu_seconds, rows_moved, summarize
from loopline.storage.objects import TRAFFIC

T0 = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)


def test_usage_counts_cpu_bytes_and_gpu_seconds_since_the_start() -> None:
    start = Usage.now()
    sum(i * i for i in range(300_000))  # some CPU
    TRAFFIC.read(b"x" * 1000)
    TRAFFIC.written(b"y" * 10)
    note_gpu_seconds(2.5)
    used = Usage.now().since(start)
    assert used["cpu_seconds"] > 0 and used["wall_seconds"] >= used["cpu_seconds"] * 0.5
    assert (used["bytes_read"], used["bytes_written"], used["gpu_seconds"]) == (1000, 10, 2.5)
    assert used["peak_rss_mib"] > 10  # a Python process holds more than 10 MiB


def record(stage, run_id, task_id, verdict="done", *, at=T0, seconds=10.0, **fields):
    context = RunContext("card_fraud", run_id, f"card_fraud.{task_id}", task_id, 1, None, at)
    made = context.record(stage, verdict, **fields)
    return made.model_copy(update={"ended_at": at + timedelta(seconds=seconds)})


def cost(run_id, dag_stage, task_id, cpu, wall, *, at=T0, **numbers):
    made = record(RecordStage.COST, run_id, task_id, "success", at=at, seconds=wall,
                  numbers={"cpu_seconds": cpu, "wall_seconds": wall, **numbers})  # fmt: skip
    return made.model_copy(update={"dag_id": f"card_fraud.{dag_stage}"})


def test_rows_come_from_listed_inputs_and_outputs_else_from_the_numbers() -> None:
    listed = record(RecordStage.SNAPSHOT, "r", "snapshot",
                    inputs=[ObjectRef(uri="s3://b/a", rows=70), ObjectRef(uri="s3://b/b", rows=30)],
                    outputs=[ObjectRef(uri="s3://b/t", rows=80)])  # fmt: skip
    assert rows_moved(listed) == (100, 80)
    gate = record(RecordStage.VALIDATION, "r", "validate",
                  numbers={"rows": 500, "accepted_rows": 450})  # fmt: skip
    assert rows_moved(gate) == (500, 450)
    assert rows_moved(record(RecordStage.PROMOTION, "r", "promote")) == (0, 0)


def test_costs_add_up_per_stage_version_and_run_with_rows_per_second() -> None:
    costs = [
        cost("v1", "validate", "validate", cpu=4.0, wall=5.0, bytes_read=2**20),
        cost("b1", "batch_score", "batch_score", cpu=30.0, wall=20.0, at=T0 + timedelta(hours=1)),
        cost("b2", "batch_score", "batch_score", cpu=50.0, wall=30.0, at=T0 + timedelta(days=2)),
    ]
    stages = [
        record(RecordStage.VALIDATION, "v1", "validate", numbers={"rows": 500, "accepted_rows": 5}),
        record(RecordStage.BATCH_SCORING, "b1", "batch_score", numbers={"rows": 10_000},
               outputs=[ObjectRef(uri="s3://b/p", rows=10_000)], payload={"model_version": 3}),
        record(RecordStage.BATCH_SCORING, "b2", "batch_score", numbers={"rows": 30_000},
               outputs=[ObjectRef(uri="s3://b/p", rows=30_000)], payload={"model_version": 4}),
    ]  # fmt: skip
    summary = summarize(costs, stages)

    batch = summary.by_stage["batch_score"]
    assert (batch.tasks, len(batch.runs), batch.cpu_seconds, batch.rows_out) == (2, 2, 80.0, 40_000)
    assert batch.rows_per_second == pytest.approx(40_000 / 50)
    assert summary.by_stage["validate"].bytes_read == 2**20
    assert summary.by_version["v3"].rows_out == 10_000 and summary.by_version["v4"].tasks == 1
    assert set(summary.by_run) == {("card_fraud.validate", "v1"), ("card_fraud.batch_score", "b1"),
                                   ("card_fraud.batch_score", "b2")}  # fmt: skip
    # 84 CPU seconds over the two days the records cover.
    days = (timedelta(days=2, seconds=30)) / timedelta(days=1)
    assert summary.core_hours_per_day() == pytest.approx(84 / 3600 / days)


def test_a_pipeline_seen_for_an_hour_is_not_extrapolated_to_a_day() -> None:
    summary = summarize([cost("r", "train", "train", cpu=360.0, wall=400.0)], [])
    assert summary.core_hours_per_day() == pytest.approx(0.1)  # 360 s over (at least) a day
    assert summary.by_stage["train"].rows_per_second is None  # no rows: no rate


def test_a_run_s_rows_are_counted_once_though_two_of_its_tasks_read_them() -> None:
    """The snapshot task and the train task of one run both name the same 7,894 rows."""
    rows = [ObjectRef(uri="s3://b/v/a.parquet", rows=7_894)]
    costs = [cost("t1", "train", "snapshot", 1.0, 2.0), cost("t1", "train", "train", 9.0, 10.0)]
    stages = [
        record(RecordStage.SNAPSHOT, "t1", "snapshot", inputs=rows),
        record(RecordStage.TRAINING, "t1", "train", inputs=rows),
    ]
    train = summarize(costs, stages).by_stage["train"]
    assert (train.tasks, train.rows_in, train.cpu_seconds) == (2, 7_894, 10.0)


def minute(n: int, cpu: float, events: int, version: int):
    made = cost("stream:replica-0", "stream", "card_fraud-0", cpu=cpu, wall=60.0,
                at=T0 + timedelta(minutes=n), rows_in=events, rows_out=events - 1)  # fmt: skip
    payload = {**made.payload, "model_version": version}
    return made.model_copy(update={"subject": f"card_fraud-0.minute{n:06d}", "payload": payload})


def test_a_replicas_minutes_add_their_own_rows_up_under_one_run() -> None:
    # A replica's minutes carry their own rows (no stage record names them), each minute's
    # new rows: summed, where a task's stage records' rows are not (the max per run).
    summary = summarize([minute(1, 3.0, 600, 7), minute(2, 4.5, 900, 7), minute(3, 1.0, 50, 8)], [])
    stream = summary.by_stage["stream"]
    assert (stream.tasks, len(stream.runs), stream.rows_in, stream.rows_out) == (3, 1, 1550, 1547)
    assert stream.cpu_seconds == pytest.approx(8.5)
    assert stream.rows_per_second == pytest.approx(1550 / 180)
    assert (summary.by_version["v7"].rows_in, summary.by_version["v8"].rows_in) == (1500, 50)

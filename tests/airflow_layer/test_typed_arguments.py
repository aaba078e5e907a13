"""Every task gets its run arguments typed, through one converter, and runs the spec version
its DAG was planned from."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowFailException
from loopline.airflow.operators import TrainingSnapshotOperator, TrainModelOperator
from loopline.airflow.operators.arguments import typed
from loopline.plan.batch import ScoreParams
from loopline.plan.training import SnapshotArguments, TrainArguments, TrainParams
from loopline.spec import spec_sha256

SPEC_FILE = Path(__file__).parents[2] / "include" / "pipelines" / "card_fraud.yaml"


def snapshot(**arguments: object) -> TrainingSnapshotOperator:
    return TrainingSnapshotOperator(task_id="snapshot", spec_path=str(SPEC_FILE), **arguments)


def test_rendered_values_become_typed_and_empty_ones_take_the_default() -> None:
    # As a DAG without native rendering renders them: strings, "None" for an empty Param.
    args = typed(snapshot(window_days="30", window_end="2024-06-30"), SnapshotArguments)
    assert args.window_days == 30 and args.window_end == datetime(2024, 6, 30)
    empty = typed(snapshot(window_days="None", window_end=""), SnapshotArguments)
    assert empty.window_days is None and empty.window_end is None
    train = TrainModelOperator(task_id="train", spec_path=str(SPEC_FILE), epochs=None, reason="")
    assert typed(train, TrainArguments) == TrainArguments(epochs=None, reason="manual")


def test_a_bad_argument_fails_the_task_naming_it() -> None:
    with pytest.raises(AirflowFailException, match=r"snapshot: invalid arguments: window_days="):
        typed(snapshot(window_days="a week"), SnapshotArguments)
    with pytest.raises(AirflowFailException, match="window_end='30/06/2024'"):
        typed(snapshot(window_end="30/06/2024"), SnapshotArguments)


def test_each_form_is_the_union_of_its_tasks_arguments() -> None:
    assert set(TrainParams.model_fields) == {
        *SnapshotArguments.model_fields,
        *TrainArguments.model_fields,
    }
    assert set(ScoreParams.model_fields) == {"window_days", "model_version", "window_end"}


def test_a_spec_edited_after_planning_is_refused_naming_both_versions(tmp_path: Path) -> None:
    spec_file = tmp_path / "card_fraud.yaml"
    shutil.copy(SPEC_FILE, spec_file)
    planned = spec_sha256(spec_file)
    operator = TrainingSnapshotOperator(
        task_id="snapshot", spec_path=str(spec_file), spec_sha256=planned
    )
    spec_file.write_text(spec_file.read_text().replace("owner:", "# edited\nowner:", 1))

    with pytest.raises(AirflowFailException, match=f"planned sha256 {planned[:12]}, now "):
        _ = operator.spec

    unchanged = TrainingSnapshotOperator(
        task_id="snapshot", spec_path=str(SPEC_FILE), spec_sha256=spec_sha256(SPEC_FILE)
    )
    assert unchanged.spec.name == "card_fraud"


def test_a_run_holds_to_the_spec_version_its_first_task_pinned(s3, monkeypatch, tmp_path) -> None:
    """Airflow parses the DAG file again for each task: the run's first task pins its spec
    version on S3, and a later task of the run that parsed an edited file fails before it
    runs, naming both versions; a task of another run is free to use the new version."""
    from types import SimpleNamespace

    from loopline.storage.objects import ObjectStore

    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3.connection_uri())
    ObjectStore(s3.client()).ensure_bucket("loopline")
    spec_file = tmp_path / "card_fraud.yaml"
    shutil.copy(SPEC_FILE, spec_file)

    def context(run_id: str) -> dict:
        return {"dag": SimpleNamespace(dag_id="card_fraud.train"), "run_id": run_id}

    def task() -> TrainingSnapshotOperator:  # as the worker builds it: this parse's version
        sha = spec_sha256(spec_file)
        return TrainingSnapshotOperator(
            task_id="snapshot", spec_path=str(spec_file), spec_sha256=sha
        )

    first = task()
    first.pre_execute(context("manual__1"))
    task().pre_execute(context("manual__1"))  # the same version: the run goes on
    spec_file.write_text(spec_file.read_text().replace("owner:", "# edited\nowner:", 1))
    with pytest.raises(AirflowFailException, match=r"started on spec version .* the file is now"):
        task().pre_execute(context("manual__1"))
    task().pre_execute(context("manual__2"))  # a new run starts on the edited spec

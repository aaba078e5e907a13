"""Every DAG file imports cleanly, cheaply, and with the metadata operators rely on."""

from __future__ import annotations

import dataclasses
import inspect
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from airflow.dag_processing.dagbag import DagBag
from loopline.plan.tasks import SpecFile
from support.paths import DAGS_FOLDER, PIPELINES

HEAVY_MODULES = ("tensorflow", "keras", "pyspark", "great_expectations", "evidently", "torch")


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(DAGS_FOLDER))


def test_no_import_errors(dagbag: DagBag) -> None:
    assert dagbag.import_errors == {}


def test_the_demo_pipeline_has_its_dags(dagbag: DagBag) -> None:
    assert "card_fraud.demo_feed" in dagbag.dag_ids


def test_every_dag_has_tags_owner_and_retries(dagbag: DagBag) -> None:
    assert dagbag.dags
    for dag_id, dag in dagbag.dags.items():
        assert "loopline" in dag.tags, dag_id
        assert dag.doc_md, f"{dag_id} has no doc_md for the UI"
        for task in dag.tasks:
            assert task.owner not in ("", "airflow"), f"{dag_id}.{task.task_id} owner"
            assert task.retries >= 1, f"{dag_id}.{task.task_id} retries"


def test_every_task_records_its_cost_and_leaves_a_debug_bundle_when_it_fails(
    dagbag: DagBag,
) -> None:
    from loopline.airflow.callbacks import DebugBundleOnFailure, RecordTaskCost

    expected = {
        "on_execute_callback": [(RecordTaskCost, "start")],
        "on_success_callback": [(RecordTaskCost, "success")],
        "on_failure_callback": [(RecordTaskCost, "failed"), (DebugBundleOnFailure, "failed")],
        "on_retry_callback": [
            (RecordTaskCost, "up_for_retry"),
            (DebugBundleOnFailure, "up_for_retry"),
        ],
    }
    for dag_id, dag in dagbag.dags.items():
        for task in dag.tasks:
            for kind, wanted in expected.items():
                ours = [
                    (type(c), getattr(c, "event", None) or c.state)
                    for c in getattr(task, kind) or ()
                    if isinstance(c, RecordTaskCost | DebugBundleOnFailure)
                ]
                assert ours == wanted, f"{dag_id}.{task.task_id} {kind}"


def test_parsing_dags_imports_no_heavy_library() -> None:
    code = (
        "import sys\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(DAGS_FOLDER)!r})\n"
        "assert bag.dags and not bag.import_errors, bag.import_errors\n"
        f"heavy = {HEAVY_MODULES!r}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A pipelines folder holding the demo spec, its suite beside it, read by the DAG files."""
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    shutil.copytree(PIPELINES.parent / "expectations", tmp_path / "expectations")
    shutil.copy(PIPELINES / "card_fraud.yaml", pipelines)
    monkeypatch.setenv("LOOPLINE_PIPELINES_DIR", str(pipelines))
    return pipelines


def _add_broken_spec(pipelines: Path, change) -> Path:
    """A second pipeline, "broken", on its own data, then broken by `change`."""
    spec = yaml.safe_load((PIPELINES / "card_fraud.yaml").read_text())
    spec["name"] = "broken"
    for zone in ("landing", "validated", "quarantine", "archive"):
        spec["data"][f"{zone}_prefix"] = f"broken/{zone}/"
    spec["batch_inference"]["output_prefix"] = "broken/predictions/"
    change(spec)
    path = pipelines / "broken.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _only_the_good_pipeline_loads(bag: DagBag) -> str:
    """The demo pipeline's DAGs are there, none of broken's; returns the one import error."""
    assert {"card_fraud.demo_feed", "card_fraud.train", "card_fraud.validate"} <= set(bag.dag_ids)
    assert not any(dag_id.startswith("broken.") for dag_id in bag.dag_ids)
    [(path, message)] = bag.import_errors.items()
    assert path.endswith("loopline_spec_check.py")
    return message


def test_a_bad_spec_is_an_import_error_and_good_specs_still_load(project: Path) -> None:
    broken = _add_broken_spec(project, lambda s: s["model"]["hyperparameters"].update(epochs="ten"))
    message = _only_the_good_pipeline_loads(DagBag(dag_folder=str(DAGS_FOLDER)))
    assert f"1 problem in {broken}" in message
    assert "model.hyperparameters.epochs (line" in message
    assert "got 'ten', expected a valid integer" in message


def test_a_bad_schedule_is_a_spec_error_with_its_line(project: Path) -> None:
    _add_broken_spec(project, lambda s: s["training"].update(schedule="every day"))
    message = _only_the_good_pipeline_loads(DagBag(dag_folder=str(DAGS_FOLDER)))
    assert "training.schedule (line" in message
    assert "'every day' is not a schedule" in message


def test_a_missing_suite_is_a_spec_error(project: Path) -> None:
    _add_broken_spec(project, lambda s: s["data"].update(expectation_suite="no_such_suite"))
    message = _only_the_good_pipeline_loads(DagBag(dag_folder=str(DAGS_FOLDER)))
    assert "data.expectation_suite (line" in message and "no_such_suite.json" in message


def test_a_planning_error_is_a_spec_error(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import loopline.plan

    def broken_planner(spec, paths):
        if spec.name == "broken":
            raise KeyError("a planner bug")

    _add_broken_spec(project, lambda s: None)
    monkeypatch.setattr(loopline.plan, "PLANNERS", (*loopline.plan.PLANNERS, broken_planner))
    message = _only_the_good_pipeline_loads(DagBag(dag_folder=str(DAGS_FOLDER)))
    assert "cannot be planned into DAGs: KeyError: 'a planner bug'" in message


def test_a_render_error_skips_only_its_pipeline(
    project: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from loopline.airflow import factory

    render = factory.render

    def failing_render(plan, spec_path=None):
        if plan.pipeline == "broken":
            raise TypeError("an operator refused its arguments")
        return render(plan, spec_path)

    broken = _add_broken_spec(project, lambda s: None)
    monkeypatch.setattr(factory, "render", failing_render)
    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    assert "card_fraud.train" in bag.dag_ids
    assert not any(dag_id.startswith("broken.") for dag_id in bag.dag_ids)
    assert f"{broken}: its DAGs cannot be built" in caplog.text


def test_a_yml_spec_builds_dags_whose_tasks_find_it(project: Path) -> None:
    (project / "card_fraud.yaml").rename(project / "card_fraud.yml")
    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    assert bag.import_errors == {}
    snapshot = bag.dags["card_fraud.train"].get_task("snapshot")
    assert snapshot.spec_path == str(project / "card_fraud.yml")


def test_params_render_as_a_trigger_form(dagbag: DagBag) -> None:
    params = dagbag.dags["card_fraud.demo_feed"].params
    schema = params.get_param("rows").schema
    assert schema["type"] == "integer" and schema["minimum"] == 1
    assert schema["section"] == "Batch"
    assert params.get_param("mean_shift").schema["section"] == "Drift knobs"
    json.dumps(params.dump())  # the form is fed JSON


def test_every_task_kind_has_an_operator_that_takes_its_arguments() -> None:
    from loopline.airflow.factory import OPERATORS
    from loopline.plan import TaskKind
    from loopline.plan.tasks import ARGUMENTS

    assert set(OPERATORS) == set(TaskKind) == set(ARGUMENTS)
    for kind, args in ARGUMENTS.items():
        accepted = _init_parameters(OPERATORS[kind])
        missing = set(_operator_argument_names(args)) - accepted
        assert not missing, f"{OPERATORS[kind].__name__} does not take {sorted(missing)}"


def _operator_argument_names(args: type) -> list[str]:
    """The keyword arguments a task kind's args become (a spec file: its path and version)."""
    names: list[str] = []
    for field in dataclasses.fields(args):
        is_spec = field.type in ("SpecFile", SpecFile)
        names += ["spec_path", "spec_sha256"] if is_spec else [field.name]
    return names


def _init_parameters(cls: type) -> set[str]:
    """The keyword arguments a class takes: its __init__'s and, through **kwargs, its bases'."""
    accepted: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        parameters = inspect.signature(klass.__init__).parameters.values()
        accepted |= {p.name for p in parameters}
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            break
    return accepted


def test_deeply_nested_and_alias_bomb_specs_do_not_drop_the_good_dags(project: Path) -> None:
    """Security review F13: a RecursionError used to escape both DAG files, so every
    pipeline's DAGs vanished; now each hostile spec is one more line of the import error."""
    deep = project / "deep.yaml"
    deep.write_text("name: deep\ndata: " + "[" * 5000 + "]" * 5000 + "\n")
    bomb = project / "bomb.yaml"
    bomb.write_text(
        "".join(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}' if i else 'x'] * 4)}]\n" for i in range(10))
    )
    message = _only_the_good_pipeline_loads(DagBag(dag_folder=str(DAGS_FOLDER)))
    assert "2 of 3 pipeline specs cannot be turned into DAGs" in message
    assert f"1 problem in {deep}\n  (top level): nesting deeper than 32 levels" in message
    assert f"1 problem in {bomb}\n  (top level): YAML aliases expand to more than" in message

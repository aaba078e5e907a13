"""Every DAG file imports cleanly, cheaply, and with the metadata operators rely on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from airflow.dag_processing.dagbag import DagBag
from conftest import DAGS_FOLDER, PIPELINES

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


def test_a_bad_spec_is_an_import_error_and_good_specs_still_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "card_fraud.yaml").write_text((PIPELINES / "card_fraud.yaml").read_text())
    broken = yaml.safe_load((PIPELINES / "card_fraud.yaml").read_text())
    broken["name"] = "broken"
    broken["model"]["hyperparameters"]["epochs"] = "ten"
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(broken))
    monkeypatch.setenv("LOOPLINE_PIPELINES_DIR", str(tmp_path))

    bag = DagBag(dag_folder=str(DAGS_FOLDER))

    assert "card_fraud.demo_feed" in bag.dag_ids
    assert not any(dag_id.startswith("broken.") for dag_id in bag.dag_ids)
    [(path, message)] = bag.import_errors.items()
    assert path.endswith("loopline_spec_check.py")
    assert f"1 problem in {tmp_path / 'broken.yaml'}" in message
    assert "model.hyperparameters.epochs (line" in message
    assert "got 'ten', expected a valid integer" in message


def test_params_render_as_a_trigger_form(dagbag: DagBag) -> None:
    params = dagbag.dags["card_fraud.demo_feed"].params
    schema = params.get_param("rows").schema
    assert schema["type"] == "integer" and schema["minimum"] == 1
    assert schema["section"] == "Batch"
    assert params.get_param("mean_shift").schema["section"] == "Drift knobs"
    json.dumps(params.dump())  # the form is fed JSON


def test_every_task_kind_has_an_operator() -> None:
    from loopline.airflow.factory import OPERATORS
    from loopline.plan import TaskKind

    assert set(OPERATORS) == set(TaskKind)

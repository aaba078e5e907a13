"""`make run`'s stack, end to end: real moto, Tansu and Airflow 3 processes on free ports.

Driven the way a user drives it: the `loopline stack` command, then Airflow's REST API.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from loopline.stack.config import DEFAULT_PORTS, PORT_ENV, free_ports, load_config
from loopline.stack.local import LocalStack
from loopline.storage.formats import decode
from loopline.storage.objects import ObjectStore
from support.paths import PROJECT_ROOT

pytestmark = pytest.mark.integration

LOOPLINE = str(Path(sys.executable).parent / "loopline")
LANDING = "card_fraud/landing/"
VALIDATED = "card_fraud/validated/"


def data_files(store: ObjectStore) -> dict[str, str]:
    """Every landed data file, wherever the gate has moved it: name -> sha256."""
    return {
        key.rsplit("/", 1)[-1]: store.checksum("loopline", key)
        for prefix in (LANDING, VALIDATED, "card_fraud/archive/", "card_fraud/quarantine/")
        for key in store.list_keys("loopline", prefix)
        if not key.endswith((".report.json", ".report.html"))
    }


def wait_for(check, timeout: float = 180.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(2)
    raise AssertionError(f"condition not met within {timeout:.0f}s")


def stack_command(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return loopline_process(state_dir, "stack", *args)


def loopline_command(state_dir: Path, *args: str) -> str:
    """A `loopline` command against the stack, as a user runs it; its output."""
    return loopline_process(state_dir, *args).stdout


def loopline_process(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [LOOPLINE, *args],
        cwd=PROJECT_ROOT,
        env=user_env(state_dir),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:]
    return result


# The spec folder of a stack whose class changes the demo spec (its `spec_changes`), by the
# stack's state folder: a user keeps LOOPLINE_PIPELINES_DIR set for every command.
PIPELINES_DIRS: dict[Path, Path] = {}


def user_env(state_dir: Path) -> dict[str, str]:
    """A user's shell: none of the test run's own Airflow or Loopline settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW", "LOOPLINE_"))
    }
    env["LOOPLINE_STATE_DIR"] = str(state_dir)
    if state_dir in PIPELINES_DIRS:
        env["LOOPLINE_PIPELINES_DIR"] = str(PIPELINES_DIRS[state_dir])
    return env


def changed_demo_spec(folder: Path, changes: dict[str, dict]) -> Path:
    """A spec folder holding the demo spec with `changes` merged into its sections."""
    import shutil

    import yaml
    from support.paths import PIPELINES

    spec = yaml.safe_load((PIPELINES / "card_fraud.yaml").read_text())
    for section, values in changes.items():
        spec[section] |= values
    (folder / "pipelines").mkdir()
    (folder / "pipelines" / "card_fraud.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    shutil.copytree(PROJECT_ROOT / "include" / "expectations", folder / "expectations")
    return folder / "pipelines"


@pytest.fixture(scope="class")
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LocalStack, str]]:
    """The stack on the test class's database: SQLite, the default, or PostgreSQL where a
    server answers."""
    database = request.cls.database
    with metadata_database(database) as database_url:
        state_dir = tmp_path_factory.mktemp(f"stack-{database}")
        # Every port of the stack, reserved together: not the defaults, which a stack left
        # running by `make run` holds, or another test run's stack may be about to take; and
        # the online endpoint's two where the class's spec serves online.
        ports = free_ports(len(DEFAULT_PORTS) + 2)
        settings = {PORT_ENV[name]: port for name, port in zip(DEFAULT_PORTS, ports, strict=False)}
        if changes := getattr(request.cls, "spec_changes", None):
            http_port, grpc_port = ports[-2:]
            changes = changes | {"streaming": changes.get("streaming", {}) | {"serve": {
                "http_port": http_port, "grpc_port": grpc_port}}}  # fmt: skip
            pipelines = changed_demo_spec(tmp_path_factory.mktemp("spec"), changes)
            PIPELINES_DIRS[state_dir] = pipelines
            settings["LOOPLINE_PIPELINES_DIR"] = str(pipelines)
        settings["LOOPLINE_DATABASE_URL"] = database_url
        settings["LOOPLINE_AUTH_MANAGER"] = getattr(request.cls, "auth_manager", None)
        os.environ.update({key: str(value) for key, value in settings.items() if value})
        try:
            local = LocalStack(load_config(PROJECT_ROOT, state_dir))  # pins them in stack.json
        finally:
            for key in settings:
                os.environ.pop(key, None)
        try:
            output = bring_up(local, approver=getattr(request.cls, "approver", None))
            yield local, output
        finally:
            stack_command(state_dir, "down")
            PIPELINES_DIRS.pop(state_dir, None)


def bring_up(local: LocalStack, approver: str | None) -> str:
    """`loopline stack up`'s output. With an `approver` (the spec's promotion.approvers) the
    first model waits for a person: answered over REST as each role, only the approver may."""
    state_dir = local.config.state_dir
    if approver is None:
        return stack_command(state_dir, "up").stdout
    with subprocess.Popen(
        [LOOPLINE, "stack", "up"], cwd=PROJECT_ROOT, env=user_env(state_dir), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    ) as up:  # fmt: skip
        try:
            answer_the_first_approval(local, approver, lambda: up.poll() is None)
            output, _ = up.communicate(timeout=600)
        except BaseException:
            up.kill()
            print(up.communicate()[0][-4000:])
            raise
    assert up.returncode == 0, output[-4000:]
    assert f"It waits for {approver}: the Airflow UI's Required actions" in output, output
    return output


def answer_the_first_approval(local: LocalStack, approver: str, up_running) -> None:
    """Wait for the first train run's approval request, then answer it over REST: the
    viewer, the Public-role outsider and the admin (not among the approvers) are refused;
    the approver's answer is taken, and names them."""
    from loopline.stack.airflow_api import AirflowApi, AirflowApiError
    from loopline.stack.airflow_env import fab_logins

    url = local.config.airflow_url
    logins = {user: password for user, password, _ in fab_logins(local.config)}
    apis = {user: AirflowApi(url, user, password) for user, password in logins.items()}

    def pending() -> tuple[str, dict] | None:
        assert up_running(), "stack up ended before the first model asked for approval"
        try:
            runs = apis["admin"].call("GET", "/api/v2/dags/card_fraud.train/dagRuns")
        except (AirflowApiError, httpx.HTTPError):  # the api-server or the DAG is not up yet
            return None
        for run in runs["dag_runs"]:
            if requests := apis["admin"].pending_approvals("card_fraud.train", run["dag_run_id"]):
                return run["dag_run_id"], requests[0]
        return None

    run_id, request = wait_for(pending, timeout=600)
    assert [user["name"] for user in request["assigned_users"]] == [approver]
    path = (f"/api/v2/dags/card_fraud.train/dagRuns/{run_id}/taskInstances/"
            f"{request['task_instance']['task_id']}/-1/hitlDetails")  # fmt: skip
    approve = {"chosen_options": ["Approve"]}
    refused = {user: apis[user].request("PATCH", path, json=approve).status_code
               for user in ("viewer", "outsider", "admin") if user != approver}  # fmt: skip
    assert refused == dict.fromkeys(refused, 403), refused
    answered = apis[approver].call("PATCH", path, json=approve)
    assert answered["responded_by"]["name"] == approver
    assert answered["chosen_options"] == ["Approve"]


# A FAB role that may read one DAG, and a user of it (password on stdin), made the way an
# admin would script it: through FAB's security manager in the stack's Airflow environment.
ONE_DAG_ROLE = """
import json, sys
from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder

password = json.load(sys.stdin)["password"]
with get_application_builder() as appbuilder:
    security = appbuilder.sm
    role = security.add_role("card-fraud-validation")
    read = security.create_permission("can_read", "DAG:card_fraud.validate")
    security.add_permission_to_role(role, read)
    email = "validation-team@loopline.invalid"
    assert security.add_user("validation-team", "validation", "team", email, role, password)
"""


@contextmanager
def metadata_database(kind: str) -> Iterator[str | None]:
    """None for SQLite; for PostgreSQL a fresh database, dropped afterwards."""
    if kind == "sqlite":
        yield None
        return
    psycopg2 = pytest.importorskip("psycopg2")
    server = os.environ.get("LOOPLINE_TEST_POSTGRES", "postgres@127.0.0.1:5432")
    try:
        admin = psycopg2.connect(f"postgresql://{server}/postgres", connect_timeout=3)
    except psycopg2.OperationalError as exc:
        if os.environ.get("LOOPLINE_TEST_REQUIRE_POSTGRES"):  # CI has a server: never skip
            raise
        pytest.skip(f"no PostgreSQL server at {server}: {exc}")
    admin.autocommit = True
    name = f"loopline_test_{uuid.uuid4().hex[:8]}"
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql+psycopg2://{server}/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def live_predictions(local, spec, count: int, seed: int, prefix: str) -> list[dict]:
    """`count` new events on the pipeline's input topic, and the replicas' prediction of each
    (every one of them, or the test fails naming what is missing)."""
    from support.streams import as_records, feature_events, produce, read_topic

    events = feature_events(spec, count, seed=seed, prefix=prefix)
    bootstrap = local.config.kafka_bootstrap
    produce(bootstrap, spec.streaming.input_topic, as_records(events))
    predictions = read_topic(
        bootstrap, spec.streaming.output_topic, count, timeout=120, ids=set(events)
    )
    mine = [p for p in predictions if p["event_id"] in events]
    assert {p["event_id"] for p in mine} == set(events), sorted(set(events) - {
        p["event_id"] for p in mine})[:5]  # fmt: skip
    return mine


def run_exists(api, dag_id: str, run_id: str) -> bool:
    """True once the run exists (a run another task starts appears a moment later)."""
    from loopline.stack.airflow_api import AirflowApiError

    try:
        api.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
    except AirflowApiError:
        return False
    return True


def finished_runs_naming(api, key: str) -> list[tuple[str, str, str]]:
    """(run id, state, verdict log) of each finished validation run whose log names `key`."""
    runs = api.call("GET", "/api/v2/dags/card_fraud.validate/dagRuns", params={"limit": 100})
    finished = [r for r in runs["dag_runs"] if r["state"] in ("success", "failed")]
    logs = [(r["dag_run_id"], r["state"], verdict_log(api, r["dag_run_id"])) for r in finished]
    return [(run_id, state, log) for run_id, state, log in logs if key in log]


def verdict_log(api, run_id: str) -> str:
    """The text of the verdict task's last try, as the UI shows it."""
    path = f"/api/v2/dags/card_fraud.validate/dagRuns/{run_id}/taskInstances/verdict"
    task = api.call("GET", path)
    if not task.get("try_number"):
        return ""
    logs = api.call(
        "GET", f"{path}/logs/{task['try_number']}", headers={"Accept": "application/json"}
    )
    # Structured lines: the failure's message sits in the exception details, not the event.
    return "\n".join(json.dumps(line) for line in logs.get("content") or [])


class OnEveryDatabase:
    """What depends on the metadata database: the stack comes up on it, Airflow's components
    share it, REST runs and their Params go through it. Run on each (the classes at the end):
    one class per database, so that pytest-xdist's --dist loadscope runs the two stacks on two
    workers instead of one after the other on the same one."""

    def test_up_prints_the_ui_url_and_login(self, stack) -> None:
        local, output = stack
        assert local.config.sql_alchemy_conn in (
            local.config.state.database_url,
            f"sqlite:///{local.config.airflow_home / 'airflow.db'}",
        )
        assert f"Airflow UI: {local.config.airflow_url}" in output
        assert f"log in as admin / {local.config.state.admin_password}" in output
        assert "no DAG import errors" in output

    def test_airflow_runs_every_component_with_the_settings_loaded(self, stack) -> None:
        local, _ = stack
        api = local.api()
        assert api.healthy()
        assert {"card_fraud.demo_feed", "card_fraud.validate"} <= set(api.dag_ids())
        assert api.import_errors() == []
        aws = api.call("GET", "/api/v2/connections/aws_default")
        assert local.config.s3_endpoint in aws["extra"]
        spark = api.call("GET", "/api/v2/connections/spark_default")
        assert spark["conn_type"] == "spark_connect" and spark["host"] == "localhost"
        assert spark["port"] == local.config.state.ports["spark_connect"]
        assert api.call("GET", "/api/v2/pools/gpu")["slots"] == 1

    def test_metadata_lives_in_the_configured_database(self, stack) -> None:
        local, _ = stack
        query = "SELECT dag_id FROM dag WHERE dag_id = 'card_fraud.demo_feed'"
        url = local.config.state.database_url
        if url is None:
            import sqlite3

            with sqlite3.connect(local.config.airflow_home / "airflow.db") as db:
                rows = db.execute(query).fetchall()
        else:
            import psycopg2

            with psycopg2.connect(url.replace("+psycopg2", "")) as db, db.cursor() as cursor:
                cursor.execute(query)
                rows = cursor.fetchall()
        assert rows == [("card_fraud.demo_feed",)]

    def test_buckets_topics_and_demo_data_exist(self, stack) -> None:
        local, _ = stack
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=local.config.kafka_bootstrap)
        try:
            assert {"card_fraud.transactions", "card_fraud.scores"} <= set(admin.list_topics())
        finally:
            admin.close()
        files = data_files(ObjectStore(local.s3_client()))
        assert files and all(name.endswith(".parquet") for name in files)

    def test_up_ends_with_a_champion_in_the_registry(self, stack) -> None:
        local, output = stack
        from loopline.registry import CHAMPION, ModelRegistry

        registry = ModelRegistry(ObjectStore(local.s3_client()), "loopline")
        version = registry.alias("card_fraud", CHAMPION)
        assert version == 1 and "card_fraud: champion is version 1 (" in output
        record = registry.get("card_fraud", version)
        assert record.metrics["auc"] >= 0.75  # the demo spec's absolute threshold
        assert record.lineage["dag_id"] == "card_fraud.train"
        assert {"model.keras", "saved_model/saved_model.pb"} <= set(record.artifacts)

    def test_up_leaves_lineage_events_and_json_task_logs_naming_the_model(self, stack) -> None:
        """The OpenLineage provider, on in every Airflow process of the stack, wrote each task's
        datasets for `up`'s first training; its train task's log lines carry pipeline, stage,
        run and model version."""
        from loopline.stack.airflow_env import LINEAGE_NAMESPACE, lineage_events

        local, _ = stack
        lines = lineage_events(local.config.state_dir).read_text().splitlines()
        events = [json.loads(line) for line in lines]
        assert {e["job"]["namespace"] for e in events} == {LINEAGE_NAMESPACE}

        def names(job: str, side: str) -> list[str]:
            """The S3 datasets of every COMPLETE event of `job` (a skipped run's has none)."""
            done = [e for e in events if e["job"]["name"] == job and e["eventType"] == "COMPLETE"]
            return [d["name"] for e in done for d in e[side] if d["namespace"] == "s3://loopline"]

        assert any(
            n.startswith("card_fraud/landing/")
            for n in names("card_fraud.demo_feed.land_batch", "outputs")
        )
        assert any(
            n.startswith("card_fraud/validated/")
            for n in names("card_fraud.validate.validate", "outputs")
        )
        assert any(
            n.startswith("card_fraud/validated/")
            for n in names("card_fraud.train.snapshot", "inputs")
        )
        assert names("card_fraud.train.train", "outputs") == ["models/card_fraud/versions/000001"]
        assert names("card_fraud.train.promote", "outputs") == [
            "models/card_fraud/aliases/champion"
        ]
        # The JSON task log of the try that registered version 1 (a scheduled run may have tried).
        logs = (local.config.airflow_home / "logs" / "dag_id=card_fraud.train").glob(
            "run_id=*/task_id=train/attempt=*.log"
        )
        tries = {
            path: [json.loads(line) for line in path.read_text().splitlines()] for path in logs
        }
        [(train_log, trained)] = [
            (path, line)
            for path, lines in tries.items()
            for line in lines
            if "registered card_fraud version 1:" in line["event"]
        ]
        run_id = train_log.parent.parent.name.removeprefix("run_id=")
        assert trained["pipeline"] == "card_fraud" and trained["stage"] == "train_model"
        assert trained["run_id"] == run_id and trained["model_version"] == "1"
        log_lines = tries[train_log]
        ours = [line for line in log_lines if "loopline" in str(line.get("logger"))]
        assert ours and all(line.get("pipeline") == "card_fraud" for line in ours)

    def test_batch_scoring_triggered_over_rest_without_a_logical_date(self, stack) -> None:
        """As the README shows it: POST dagRuns with "logical_date": null (no data interval)."""
        local, _ = stack
        api = local.api()
        run_id = api.trigger("card_fraud.batch_score", {"window_days": 2})
        assert api.wait_for_run("card_fraud.batch_score", run_id, timeout=600) == "success"
        from loopline.records import RecordStage, RecordStore

        records = RecordStore(ObjectStore(local.s3_client()), "loopline")
        record = records.read("card_fraud", RecordStage.BATCH_SCORING, run_id)
        assert record.verdict == "scored" and record.numbers["rows"] >= 20_000
        assert record.dag_id == "card_fraud.batch_score" and record.payload["model_version"] == 1
        # On the stack's warm Spark Connect server, not a spark-submit of its own.
        assert record.payload["engine"] == "spark-connect"
        assert record.payload["spark_master"] == "local[*,4]"
        # A scored row traces back through the gate's records to the file that landed it.
        output = record.outputs[0].uri.removeprefix("s3://loopline/")
        [first, *_] = [k for k in ObjectStore(local.s3_client()).list_keys("loopline", output)
                       if k.endswith(".parquet")]  # fmt: skip
        row = decode(ObjectStore(local.s3_client()).get("loopline", first), "parquet").to_pylist()[
            0
        ]
        traced = loopline_command(
            local.config.state_dir, "trace", "card_fraud", row["transaction_id"]
        )
        assert f"batch prediction of {row['transaction_id']}" in traced
        assert f"scored by run {run_id}" in traced and "model card_fraud v1" in traced
        assert (
            "trained by card_fraud.train run" in traced
            and "landed as s3://loopline/card_fraud/landing/" in traced
        )
        if self.database != "sqlite":
            return  # explaining reads S3 and the registry only: once is enough (TF + SHAP: ~10 s)
        # ...and is explained by the version that scored it: its attributions add up to the score
        # (the command exits 1 when they or the recomputed score do not), from the importance and
        # holdout the stack's own training stored.
        explained = loopline_command(
            local.config.state_dir, "explain", "card_fraud", row["transaction_id"]
        )
        assert f"batch prediction of {row['transaction_id']}: score " in explained
        assert "by model v1" in explained and "tolerance 1e-06: ok" in explained
        shown = loopline_command(local.config.state_dir, "models", "show", "card_fraud", "1")
        assert "feature importance (v1): shap." in shown

    def test_the_champion_scores_events_in_real_time(self, stack) -> None:
        """The champion event deployed a scoring replica: events in, predictions out."""
        from loopline.registry import CHAMPION, ModelRegistry
        from loopline.spec import load_spec
        from support.paths import PIPELINES

        local, _ = stack
        spec = load_spec(PIPELINES / "card_fraud.yaml")
        champion = ModelRegistry(ObjectStore(local.s3_client()), "loopline").alias(
            "card_fraud", CHAMPION
        )
        beat = local.config.state_dir / "streaming" / "card_fraud" / "replica-0.json"
        wait_for(lambda: beat.exists() and json.loads(beat.read_text())["state"] == "running", 300)
        mine = live_predictions(local, spec, 200, seed=11, prefix="live")
        assert {p["model_version"] for p in mine} <= {champion, champion - 1}  # a roll may be on
        # One of them, traced from its event id: where it was read, which version scored it.
        event_id = mine[0]["event_id"]
        traced = loopline_command(
            local.config.state_dir, "trace", "card_fraud", event_id, "--source", "stream"
        )
        assert f"stream prediction of {event_id}" in traced
        assert f"read from {spec.streaming.input_topic} partition" in traced
        assert f"model card_fraud v{mine[0]['model_version']}" in traced

    def test_rest_trigger_with_invalid_params_is_refused(self, stack) -> None:
        local, _ = stack
        response = local.api().request(
            "POST",
            "/api/v2/dags/card_fraud.demo_feed/dagRuns",
            json={"logical_date": None, "conf": {"rows": -1}},
        )
        assert response.status_code == 400
        assert "rows" in response.text


class WhatANewcomerDoes:
    """What a newcomer does on `make run`'s default database (SQLite, the simple auth
    manager): a bad file is quarantined and named, the UI in a browser (the trigger form, the
    Loopline view), Prometheus answers for the dashboard. These run on one database only, as
    what they test is Loopline's, not the database's (and each stack costs minutes of a
    2-core machine)."""

    def test_a_quarantined_file_fails_the_validation_run_that_names_it(self, stack) -> None:
        local, _ = stack
        store = ObjectStore(local.s3_client())
        api = local.api()
        # An upstream system (not Loopline's feed) drops a file written with the wrong delimiter.
        key = LANDING + "dt=2026-11-23/upstream-semicolons.csv"
        store.put_new("loopline", key, b"transaction_id;amount\nt1;12.5\n")
        api.trigger("card_fraud.validate")
        # One run at a time validates: ours, or one already waiting (deferred) for landed files
        # that wakes on this one. Whichever it is, it must fail naming the file and the reason.
        naming = wait_for(lambda: finished_runs_naming(api, key))
        assert [state for _, state, _ in naming] == ["failed"] * len(naming)
        assert all("did not pass" in log for _, _, log in naming)
        assert any("wrong CSV delimiter" in log for _, _, log in naming)
        assert store.head("loopline", key.replace(LANDING, "card_fraud/quarantine/")) is not None
        # The failed try left a debug bundle, which `loopline debug` prints from the run id.
        run_id = naming[0][0]
        debug = loopline_command(local.config.state_dir, "debug", "card_fraud", run_id)
        assert f"card_fraud.validate {run_id}: verdict try 1 failed" in debug
        assert "upstream-semicolons.csv" in debug and "transaction_id;amount" in debug

    def test_in_a_browser_the_trigger_form_runs_and_the_view_refuses_a_viewer(
        self, stack, tmp_path
    ) -> None:
        """Headless Chromium through the UI as people use it: the admin logs in on Airflow's
        login form, triggers the demo feed from Airflow's own trigger form with a Param
        changed (and a run id of their own), and the run succeeds with that Param; the
        Loopline view shows the champion, as a page and as a tab of the pipeline's DAGs; the
        viewer's Roll back button is refused by
        Airflow (403, shown in the view). Screenshots go to LOOPLINE_SCREENSHOTS (the docs'
        come from here) or the test's folder."""
        from loopline.stack.config import ADMIN_USER, VIEWER_USER
        from support.browser import browser, log_in

        local, _ = stack
        url, state = local.config.airflow_url, local.config.state
        shots = Path(os.environ.get("LOOPLINE_SCREENSHOTS") or tmp_path)
        shots.mkdir(parents=True, exist_ok=True)
        run_id = f"browser__{uuid.uuid4().hex[:8]}"
        with browser() as chromium:
            admin = chromium.new_page(viewport={"width": 1400, "height": 1000})
            log_in(admin, url, ADMIN_USER, state.admin_password)
            admin.goto(f"{url}/dags/card_fraud.demo_feed")
            admin.get_by_role("button", name="Trigger").first.click()
            admin.get_by_text("Batch", exact=True).click()  # the Params' section
            rows = admin.locator('[id="number-input:element_rows:inc"]').get_attribute(
                "aria-controls"
            )
            admin.locator(f'[id="{rows}"]').fill("1234")
            admin.get_by_text("Advanced Options", exact=True).click()
            admin.locator("input[name=dagRunId]").fill(run_id)
            admin.screenshot(path=shots / "trigger-form.png")
            admin.locator("[data-testid=trigger-dag-submit]").click()
            api = local.api()
            wait_for(lambda: run_exists(api, "card_fraud.demo_feed", run_id), timeout=60)
            assert api.wait_for_run("card_fraud.demo_feed", run_id, timeout=300) == "success"
            run = api.call("GET", f"/api/v2/dags/card_fraud.demo_feed/dagRuns/{run_id}")
            assert run["conf"]["rows"] == 1234

            admin.goto(f"{url}/plugin/loopline")
            models = admin.locator("[data-testid=models]")
            models.get_by_text("champion", exact=True).first.wait_for(timeout=60_000)
            assert "v" in admin.locator("[data-testid=aliases]").inner_text()
            admin.screenshot(path=shots / "loopline-view.png", full_page=True)
            # The same view as a tab of each of the pipeline's DAGs, for that pipeline only.
            admin.goto(f"{url}/dags/card_fraud.train/plugin/loopline-pipeline")
            admin.locator("[data-testid=aliases]").get_by_text("card_fraud").wait_for()
            assert admin.locator("[data-testid=pipeline]").count() == 0  # no pipeline picker

            viewer = chromium.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            log_in(viewer, url, VIEWER_USER, state.viewer_password)
            viewer.goto(f"{url}/plugin/loopline")
            viewer.on("dialog", lambda dialog: dialog.accept("a viewer tries"))
            viewer.locator("[data-testid=rollback]").click()
            said = viewer.locator("[data-testid=rollback-state]")
            said.get_by_text("refused", exact=False).wait_for(timeout=30_000)
            assert said.inner_text().startswith("refused: 403")
            viewer.screenshot(path=shots / "viewer-refused.png")

    def test_prometheus_answers_for_every_metric_of_the_dashboard(self, stack) -> None:
        """The stack's Prometheus scrapes the exporter (records as metrics, Airflow's own metrics
        sent over OTLP) and the replicas: it answers for each metric the Grafana dashboard reads.
        Last in its class, so every stage has left records, the drift audit's included."""
        import httpx
        from loopline.telemetry.dashboard import metric_names
        from loopline.telemetry.prometheus import HOW_TO_GET, prometheus_binary

        local, output = stack
        if prometheus_binary(PROJECT_ROOT) is None:
            if os.environ.get("LOOPLINE_TEST_REQUIRE_PROMETHEUS"):  # CI fetched it: never skip
                pytest.fail(f"no Prometheus binary: {HOW_TO_GET}")
            pytest.skip(f"no Prometheus binary: {HOW_TO_GET}")
        assert f"Prometheus {local.config.prometheus_url}" in output
        status = stack_command(local.config.state_dir, "status").stdout
        assert f"{local.config.prometheus_url}" in status and "telemetry" in status

        def answers(name: str) -> bool:
            url = f"{local.config.prometheus_url}/api/v1/query"
            reply = httpx.get(url, params={"query": f"last_over_time({name}[2h])"}, timeout=10)
            return bool(reply.json()["data"]["result"])

        def missing() -> list[str]:
            return [name for name in sorted(metric_names()) if not answers(name)]

        started = time.monotonic()
        deadline = started + 120
        while (absent := missing()) and time.monotonic() < deadline:
            time.sleep(5)
        assert absent == [], f"Prometheus has no samples of {absent}"
        print(f"{len(metric_names())} metrics answered after {time.monotonic() - started:.1f} s")


class RunningItForLonger:
    """What a team running the stack for longer does, on the production-shaped stack
    (PostgreSQL, what the README says to use for anything concurrent, and FAB's auth
    manager): Params given over REST, roles, the whole loop over REST with the official
    client, the Loopline view of what it left, `up` again and a restart that keeps every
    object. One database only, as above."""

    def test_rest_trigger_with_params_lands_that_batch(self, stack) -> None:
        local, _ = stack
        api = local.api()
        run_id = api.trigger(
            "card_fraud.demo_feed", {"rows": 123, "file_format": "jsonl", "new_category_share": 0.5}
        )
        assert api.wait_for_run("card_fraud.demo_feed", run_id) == "success"
        landed = time.monotonic()
        store = ObjectStore(local.s3_client())
        # The landing event starts the validation gate, which moves the file on.
        [key] = wait_for(
            lambda: [
                k for k in store.list_keys("loopline", VALIDATED) if k.endswith(".jsonl.parquet")
            ]
        )
        print(f"landing -> validated: {time.monotonic() - landed:.1f} s (from the feed run's end)")
        table = decode(store.get("loopline", key), "parquet")  # the validated zone is Parquet
        assert table.num_rows == 123
        # The landed bytes move to the archive just after the Parquet is written.
        archived = key.replace(VALIDATED, "card_fraud/archive/").removesuffix(".parquet")
        wait_for(lambda: store.head("loopline", archived))
        assert not [k for k in store.list_keys("loopline", LANDING) if k.endswith(".jsonl")]

    @pytest.mark.timeout(1500)  # an audit, then a whole training run, on two shared cores
    def test_fab_roles_decide_who_sees_and_does_what(self, stack) -> None:
        """On the production auth manager (FAB: users and roles in the metadata database):
        nobody unauthenticated gets anything; a Viewer sees the pipeline in the Loopline view
        and over REST and may trigger nothing; a user of the Public role, who may read no DAG,
        sees no pipeline and gets 403 for one by name."""
        import httpx
        from loopline.stack.airflow_api import AirflowApi
        from loopline.stack.airflow_env import fab_logins

        local, _ = stack
        url = local.config.airflow_url
        assert local.config.state.auth_manager == "fab"
        logins = {user: password for user, password, _ in fab_logins(local.config)}
        viewer = AirflowApi(url, "viewer", logins["viewer"])
        outsider = AirflowApi(url, "outsider", logins["outsider"])
        assert httpx.get(f"{url}/loopline/api/pipelines").status_code == 401
        assert httpx.get(f"{url}/api/v2/dags").status_code == 401

        assert [p["name"] for p in viewer.call("GET", "/loopline/api/pipelines")] == ["card_fraud"]
        assert viewer.call("GET", "/loopline/api/pipelines/card_fraud")["champion"] is not None
        assert viewer.request("GET", "/api/v2/plugins").status_code == 200  # the UI shows it
        rollback = {"logical_date": None, "conf": {"reason": "a viewer tries"}}
        path = "/api/v2/dags/card_fraud.rollback/dagRuns"
        assert viewer.request("POST", path, json=rollback).status_code == 403

        assert outsider.call("GET", "/loopline/api/pipelines") == []
        assert outsider.request("GET", "/loopline/api/pipelines/card_fraud").status_code == 403
        assert outsider.request("GET", "/api/v2/dags").status_code == 403  # no DAG at all

    def test_a_role_with_one_dag_of_a_pipeline_sees_that_dag_and_not_the_pipeline(
        self, stack
    ) -> None:
        """FAB's per-DAG permissions, as a team gets only its DAGs: a role that may read
        card_fraud.validate alone lists and reads that DAG, gets 403 for the pipeline's others,
        and sees no pipeline in the Loopline view (a pipeline's page spans all its DAGs); the
        approver's role (User) may trigger a run, which the viewer may not."""
        import secrets

        from loopline.stack.airflow_api import AirflowApi
        from loopline.stack.airflow_env import fab_logins

        local, _ = stack
        url, password = local.config.airflow_url, secrets.token_urlsafe(12)
        subprocess.run(
            [sys.executable, "-c", ONE_DAG_ROLE], input=json.dumps({"password": password}),
            env=local.airflow_env(), cwd=PROJECT_ROOT, text=True, capture_output=True, check=True,
        )  # fmt: skip
        team = AirflowApi(url, "validation-team", password)
        listed = team.call("GET", "/api/v2/dags")["dags"]
        assert [dag["dag_id"] for dag in listed] == ["card_fraud.validate"]
        assert team.request("GET", "/api/v2/dags/card_fraud.validate").status_code == 200
        assert team.request("GET", "/api/v2/dags/card_fraud.train").status_code == 403
        assert team.call("GET", "/loopline/api/pipelines") == []
        assert team.request("GET", "/loopline/api/pipelines/card_fraud").status_code == 403

        logins = {user: password for user, password, _ in fab_logins(local.config)}
        approver = AirflowApi(url, self.approver, logins[self.approver])
        run = {"logical_date": None, "conf": {}}
        path = "/api/v2/dags/card_fraud.validate/dagRuns"
        assert local.api(viewer=True).request("POST", path, json=run).status_code == 403
        started = approver.request("POST", path, json=run)
        assert started.status_code == 200, started.text

    def approve_if_asked(self, local: LocalStack, run_id: str, runs) -> dict | None:
        """Once the train run either ends or asks for approval: the answer, given over REST
        with the official client as the spec's approver (the viewer is refused first); None
        when nothing was asked (the gates refused the candidate)."""
        from airflow_client.client import ApiClient, Configuration
        from airflow_client.client.api.task_instance_api import TaskInstanceApi
        from airflow_client.client.models.update_hitl_detail_payload import (
            UpdateHITLDetailPayload,
        )
        from loopline.stack.airflow_env import fab_logins

        admin, viewer = local.api(), local.api(viewer=True)

        def asked_or_ended() -> str | None:
            if admin.pending_approvals("card_fraud.train", run_id):
                return "asked"
            state = runs.get_dag_run("card_fraud.train", run_id).state.value
            return "ended" if state in ("success", "failed") else None

        if wait_for(asked_or_ended, timeout=900) == "ended":
            return None
        url, approve = local.config.airflow_url, UpdateHITLDetailPayload(chosen_options=["Approve"])
        path = f"/api/v2/dags/card_fraud.train/dagRuns/{run_id}/taskInstances/approve/-1"
        refused = viewer.request("PATCH", f"{path}/hitlDetails", json=approve.to_dict())
        assert refused.status_code == 403, refused.text
        logins = {user: password for user, password, _ in fab_logins(local.config)}
        login = {"username": self.approver, "password": logins[self.approver]}
        token = httpx.post(f"{url}/auth/token", json=login).json()["access_token"]
        with ApiClient(Configuration(host=url, access_token=token)) as client:
            answer = TaskInstanceApi(client).update_hitl_detail(
                "card_fraud.train", run_id, "approve", -1, approve
            )
        assert answer.responded_by.name == self.approver and answer.chosen_options == ["Approve"]
        return answer.to_dict()

    def test_the_loop_end_to_end_over_rest_with_the_official_client(self, stack) -> None:
        """The loop driven only through Airflow's REST API with the official client
        (apache-airflow-client, a JWT from /auth/token, runs without a logical date), on the
        production-shaped stack, each stage's state and outputs checked: a drifted batch
        lands (demo feed) -> its validation run passes it -> a drift audit decides to retrain
        (with its reason) -> the train run it started judges the candidate -> a promoted one
        is the champion the replicas roll to, and live predictions carry its version; one is
        traced back to its event. A candidate the gate refused leaves the champion and the
        replicas as they were."""
        import httpx
        from airflow_client.client import ApiClient, Configuration
        from airflow_client.client.api.dag_run_api import DagRunApi
        from airflow_client.client.models.trigger_dag_run_post_body import TriggerDAGRunPostBody
        from loopline.records import RecordStage, RecordStore
        from loopline.registry import CHAMPION, ModelRegistry
        from loopline.spec import load_spec
        from loopline.stack.config import ADMIN_USER
        from support.streams import feature_events, infer_body

        local, _ = stack
        url = local.config.airflow_url
        login = {"username": ADMIN_USER, "password": local.config.state.admin_password}
        token = httpx.post(f"{url}/auth/token", json=login).json()["access_token"]
        store = ObjectStore(local.s3_client())
        records, registry = RecordStore(store, "loopline"), ModelRegistry(store, "loopline")
        before = registry.alias("card_fraud", CHAMPION)
        with ApiClient(Configuration(host=url, access_token=token)) as client:
            runs = DagRunApi(client)

            def state(dag_id: str, run_id: str) -> str:
                return runs.get_dag_run(dag_id, run_id).state.value  # DagRunState, a str enum

            def finished(dag_id: str, run_id: str, timeout: float = 600) -> str:
                wait_for(lambda: state(dag_id, run_id) in ("success", "failed"), timeout)
                return state(dag_id, run_id)

            drift = {"rows": 5000, "mean_shift": 1.5, "drifted_features": 8}
            fed = runs.trigger_dag_run(
                "card_fraud.demo_feed", TriggerDAGRunPostBody(logical_date=None, conf=drift)
            )
            assert fed.logical_date is None and fed.conf == drift
            assert finished("card_fraud.demo_feed", fed.dag_run_id) == "success"

            def retrained() -> list:
                audits = records.records("card_fraud", RecordStage.DRIFT)
                return [record for record in audits if record.verdict == "retrain"]

            # The first audit that retrained: on this batch's validated event (the cooldown
            # then holds the next, as it should).
            [audit, *_] = wait_for(retrained, timeout=600)
            assert audit.reasons and audit.payload["report"].startswith("s3://loopline/reports/")
            validated = [r for r in records.records("card_fraud", RecordStage.VALIDATION)
                         if r.subject == "run" and r.verdict == "passed"]  # fmt: skip
            assert validated, "no validation run passed the drifted batch"
            train_run = f"drift_audit__{audit.run_id}"
            wait_for(lambda: run_exists(local.api(), "card_fraud.train", train_run), 300)
            approval = self.approve_if_asked(local, train_run, runs)
            assert finished("card_fraud.train", train_run, timeout=900) == "success"
            conf = runs.get_dag_run("card_fraud.train", train_run).conf
            assert conf["reason"].startswith(f"drift audit {audit.run_id}: ")
            [*_, judgement] = records.records("card_fraud", RecordStage.JUDGEMENT, train_run)
            assert judgement.payload["decision"]["checks"]
            candidate = int(judgement.subject[1:])
            assert registry.get("card_fraud", candidate).lineage["reason"] == conf["reason"]

        champion = registry.alias("card_fraud", CHAMPION)
        if judgement.verdict == "promote":  # a person approved it (the spec asks for one)
            assert champion == candidate != before and approval is not None
        else:  # nothing to approve
            assert judgement.verdict == "refuse" and champion == before and approval is None
        # Every replica serves the champion (rolled by its asset event when it moved, one
        # slot after another; the monitor may have scaled out meanwhile) and the predictions
        # they write from now on carry its version.
        beats = local.config.state_dir / "streaming" / "card_fraud"

        def serving_champion() -> bool:
            live = [beat for path in beats.glob("replica-*.json")
                    if (beat := json.loads(path.read_text()))["state"] != "stopped"]  # fmt: skip
            return bool(live) and all(beat["model_version"] == champion for beat in live)

        wait_for(serving_champion, timeout=300)
        spec = load_spec(PIPELINES_DIRS[local.config.state_dir] / "card_fraud.yaml")
        mine = live_predictions(local, spec, 100, seed=17, prefix="e2e")
        assert {p["model_version"] for p in mine} == {champion}
        # ...and so do the answers of the online endpoint the same replicas serve.
        serve = spec.streaming.serve
        request = infer_body(spec, list(feature_events(spec, 4, seed=5, prefix="o").values()), "o")
        online = httpx.post(f"http://{serve.host}:{serve.http_port}/v2/models/card_fraud/infer",
                            json=request, timeout=30)  # fmt: skip
        assert online.status_code == 200, online.text
        assert online.json()["model_version"] == str(champion)
        assert online.json()["outputs"][0]["shape"] == [4]
        traced = loopline_command(
            local.config.state_dir, "trace", "card_fraud", mine[0]["event_id"], "--source", "stream"
        )
        assert f"model card_fraud v{champion}" in traced

    def test_the_loopline_view_shows_the_loop_to_logged_in_users_only(self, stack) -> None:
        """The view's routes on the real api-server: 401 without a login; the read-only
        viewer sees the pipeline the loop above left (a champion, a retraining drift audit
        with its report as a sandboxed download, the validation runs, the cost); the viewer's
        rollback, through Airflow's REST API as the view's button sends it, is refused by
        Airflow itself."""
        import httpx

        local, _ = stack
        admin, viewer = local.api(), local.api(viewer=True)
        anonymous = httpx.get(f"{local.config.airflow_url}/loopline/api/pipelines/card_fraud")
        assert anonymous.status_code == 401
        plugins = admin.call("GET", "/api/v2/plugins")["plugins"]
        views = [app for p in plugins if p["name"] == "loopline" for app in p["react_apps"]]
        assert {v["destination"] for v in views} == {"nav", "dag"}
        bundle = viewer.request("GET", f"/{views[0]['bundle_url']}")
        assert bundle.status_code == 200 and "globalThis.Loopline" in bundle.text
        assert [p["name"] for p in viewer.call("GET", "/loopline/api/pipelines")] == ["card_fraud"]
        seen = viewer.call("GET", "/loopline/api/pipelines/card_fraud")
        assert seen["champion"] is not None and seen["versions"] and seen["cost"]
        audit = next(a for a in seen["drift"] if a["verdict"] == "retrain")
        assert audit["drifted_share"] > 0 and audit["features"]
        assert any(v["subject"] == "run" and v["verdict"] == "passed" for v in seen["validations"])

        def report_written() -> bool:
            path = f"/loopline/api/pipelines/card_fraud/reports/drift/{audit['run_id']}"
            return viewer.request("GET", path).status_code == 200

        wait_for(report_written, timeout=300)  # the audit's report task may still be running
        report = viewer.request(
            "GET", f"/loopline/api/pipelines/card_fraud/reports/drift/{audit['run_id']}"
        )
        assert report.headers["content-security-policy"] == "sandbox"
        assert report.headers["content-disposition"].startswith("attachment;")
        assert b"<html" in report.content[:2000].lower()
        rollback = viewer.request(
            "POST",
            "/api/v2/dags/card_fraud.rollback/dagRuns",
            json={"logical_date": None, "conf": {"reason": "a viewer tries"}},
        )
        assert rollback.status_code == 403

    def test_up_again_is_idempotent_and_restart_keeps_s3_objects(self, stack) -> None:
        local, _ = stack
        state_dir = local.config.state_dir
        again = stack_command(state_dir, "up").stdout
        assert "already running" in again and "data already present" in again

        store = ObjectStore(local.s3_client())
        before = data_files(store)
        down = stack_command(state_dir, "down").stdout
        assert "saved" in down
        assert not any(local.status().values())

        restarted = stack_command(state_dir, "up", "--no-demo-data").stdout
        assert "restored" in restarted
        assert data_files(store) == before


# Each class below lists OnEveryDatabase last: pytest collects inherited tests in reverse MRO
# order, so its checks of what `up` left run first, before the scenarios that change it.
class TestOnSQLite(WhatANewcomerDoes, OnEveryDatabase):
    """`make run`'s default database."""

    database = "sqlite"


class TestOnPostgreSQL(RunningItForLonger, OnEveryDatabase):
    """What to use for anything concurrent (`LOOPLINE_DATABASE_URL`), with the production
    auth manager (`LOOPLINE_AUTH_MANAGER=fab`): the production-shaped stack."""

    database = "postgresql"
    auth_manager = "fab"
    # Promotions wait for a person, FAB's `approver` login (role User); the replicas serve
    # online too (the fixture adds `streaming.serve` on free ports).
    approver = "approver"
    spec_changes = {"promotion": {"require_approval": True, "approvers": [approver]}}

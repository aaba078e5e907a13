"""The Loopline view's server side on the real S3 server: what it shows of a pipeline, who may
see it, and how its reports are sent (``loopline.airflow.ui.view``, ``loopline.overview``).

Airflow's own authentication is swapped for a header here (the api-server's, with real
users and roles, is tested in the local stack's tests): the point is that every route asks
for a user, that a pipeline a user may not read is neither listed nor served, and that
reports cannot run in the UI's origin.
"""

from __future__ import annotations

import gzip
import importlib.util
import shutil
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from fastapi import Header, HTTPException
from fastapi.testclient import TestClient
from loopline.airflow.ui.view import create_app
from loopline.drift.report import ReportPlace
from loopline.overview import pipeline_overview
from loopline.records import RecordStage, RecordStore, RunContext
from loopline.registry import CHALLENGER
from support.judged_versions import SPEC, crown, empty_registry, judge_as, register
from support.paths import PIPELINES, PROJECT_ROOT

AUDITS = [(0.10, "within_limits"), (0.25, "within_limits"), (0.75, "retrain")]
REPORT_HTML = b"<html><script>alert(document.cookie)</script>drift</html>"


def at(minutes: int) -> datetime:
    return datetime(2026, 12, 1, 12, tzinfo=UTC) + timedelta(minutes=minutes)


@pytest.fixture
def world(s3, tmp_path):
    """card_fraud with v1 champion, v2 challenger, three drift audits (the last with its
    report), a quarantined file with its report, a failed task, a task's cost, a scaling pass."""
    registry = empty_registry(s3)
    store = registry.store
    v1 = register(registry, tmp_path)
    judge_as(registry, v1, auc=0.90, run_id="train-1")
    crown(registry, v1)
    v2 = register(registry, tmp_path)
    judge_as(registry, v2, auc=0.85, run_id="train-2")
    registry.move_alias(SPEC.name, CHALLENGER, v2, expected=None, action="set",
                        reason="did not beat the champion", by="test")  # fmt: skip
    records = RecordStore(store, SPEC.data.bucket)
    for n, (share, verdict) in enumerate(AUDITS):
        run = RunContext(SPEC.name, f"drift-{n}", dag_id=f"{SPEC.name}.drift", started_at=at(n))
        place = ReportPlace.of(SPEC, run.run_id)
        features = [{"column": "amount", "method": "wasserstein", "score": share,
                     "threshold": 0.1, "drifted": share >= 0.1}]  # fmt: skip
        records.write(run.record(RecordStage.DRIFT, verdict, numbers={"drifted_share": share},
                                 payload={"verdict": {"features": features},
                                          "report": place.html_uri}))  # fmt: skip
    store.put(SPEC.data.bucket, place.html_key, gzip.compress(REPORT_HTML), "text/html", "gzip")
    quarantined = "quarantine/dt=2026-12-01/bad.csv"
    validate = RunContext(SPEC.name, "validate-1", dag_id=f"{SPEC.name}.validate")
    records.write(validate.record(
        RecordStage.VALIDATION, "quarantined", subject="dt=2026-12-01/bad.csv",
        reasons=["amount: 3 values below 0"], numbers={"rows": 10},
        payload={"report_key": quarantined + ".report.json", "quarantine_key": quarantined},
    ))  # fmt: skip
    store.put(
        SPEC.data.bucket, quarantined + ".report.html", b"<html>expectations</html>", "text/html"
    )
    failed = RunContext(SPEC.name, "batch-1", dag_id=f"{SPEC.name}.batch_score", task_id="score")
    records.write(failed.record(RecordStage.FAILURE, "failed", subject="score.try1",
                                reasons=["ValueError: no rows"],
                                payload={"bundle": "s3://b/debug/x.json"}))  # fmt: skip
    records.write(failed.record(RecordStage.COST, "failed", subject="score.try1",
                                numbers={"wall_seconds": 2.5, "cpu_seconds": 1.5}))  # fmt: skip
    stream = RunContext(SPEC.name, "stream-1", dag_id=f"{SPEC.name}.stream")
    records.write(stream.record(RecordStage.STREAMING, "done", subject="deploy",
                                payload={"replicas": {"0": 1, "1": 1}}))  # fmt: skip
    records.write(stream.record(RecordStage.STREAMING, "no_change", subject="scaling",
                                numbers={"total_lag": 12, "p99_stable_ms": 8.5}))  # fmt: skip
    return store


def test_the_overview_holds_each_section_from_the_records(world) -> None:
    seen = pipeline_overview(SPEC, world)

    assert (seen.champion, seen.challenger) == (1, 2)
    assert [(v.version, v.alias) for v in seen.versions] == [(2, "challenger"), (1, "champion")]
    assert [m.alias for m in seen.alias_history] == ["champion", "challenger"]
    assert {d.stage for d in seen.promotions} == {"judgement"}
    assert [p.drifted_share for p in seen.drift] == [0.10, 0.25, 0.75]  # oldest first
    assert seen.drift[-1].verdict == "retrain" and seen.drift[-1].features[0].drifted
    assert [(d.subject, d.verdict, d.report) for d in seen.validations] == [
        ("dt=2026-12-01/bad.csv", "quarantined", True)
    ]
    assert seen.deployment.replicas == {"0": 1, "1": 1}
    assert (seen.deployment.lag, seen.deployment.p99_ms) == (12, 8.5)
    assert [(c.stage, c.tasks, c.wall_seconds) for c in seen.cost] == [("batch_score", 1, 2.5)]
    assert [(f.task, f.error) for f in seen.failures] == [("score.try1", "ValueError: no rows")]


def test_a_page_of_each_stage_is_read_the_newest(world) -> None:
    seen = pipeline_overview(SPEC, world, page=2)
    assert [p.run_id for p in seen.drift] == ["drift-1", "drift-2"]
    one = pipeline_overview(SPEC, world, page=1)
    # The newest version, and the champion though it is older than the page.
    assert [(v.version, v.alias) for v in one.versions] == [(2, "challenger"), (1, "champion")]
    assert [p.run_id for p in one.drift] == ["drift-2"]


def as_header_user(x_user: str | None = Header(default=None)) -> str:
    if x_user is None:
        raise HTTPException(401, "Not authenticated")
    return x_user


READERS = {("ana", "card_fraud"), ("ana", "third"), ("bo", "third")}  # (user, pipeline)


@pytest.fixture
def client(world, tmp_path) -> TestClient:
    """The view's app over two pipelines, the demo's and a "third" with data places of its
    own (as ``loopline spec check`` wants them); ana may read both, bo only the third."""
    folder = tmp_path / "pipelines"
    folder.mkdir()
    shutil.copy(PIPELINES / "card_fraud.yaml", folder)
    shutil.copytree(PIPELINES.parent / "expectations", tmp_path / "expectations")
    third = yaml.safe_load((PIPELINES / "card_fraud.yaml").read_text())
    third["name"] = "third"
    third["data"] |= {f"{zone}_prefix": f"third/{zone}/" for zone in ZONES}
    third["data"].pop("archive_prefix")
    third["batch_inference"]["output_prefix"] = "third/predictions/"
    (folder / "third.yaml").write_text(yaml.safe_dump(third, sort_keys=False))

    def reads(who: str, pipeline) -> bool:
        return (who, pipeline.spec.name) in READERS

    app = create_app(folder, lambda: world, user=as_header_user, authorize=reads)
    return TestClient(app)


ZONES = ("landing", "validated", "quarantine")


ROUTES = [
    "/api/pipelines",
    "/api/pipelines/card_fraud",
    "/api/pipelines/card_fraud/reports/drift/drift-2",
    "/static/loopline-view.js",
]


@pytest.mark.parametrize("route", ROUTES)
def test_every_route_refuses_an_anonymous_caller(client, route) -> None:
    assert client.get(route).status_code == 401


def test_a_user_sees_only_the_pipelines_they_may_read(client) -> None:
    def listed(user: str) -> list[str]:
        return [p["name"] for p in client.get("/api/pipelines", headers={"x-user": user}).json()]

    assert (listed("ana"), listed("bo"), listed("cy")) == (["card_fraud", "third"], ["third"], [])
    refused = client.get("/api/pipelines/card_fraud", headers={"x-user": "bo"})
    assert refused.status_code == 403 and "amount" not in refused.text
    shown = client.get("/api/pipelines/card_fraud", headers={"x-user": "ana"}).json()
    assert shown["champion"] == 1 and shown["dags"]["rollback"] == "card_fraud.rollback"
    # The third pipeline's view holds none of card_fraud's data, though they share a bucket.
    third = client.get("/api/pipelines/third", headers={"x-user": "bo"}).json()
    assert (third["champion"], third["versions"], third["drift"]) == (None, [], [])
    assert client.get("/api/pipelines/nope", headers={"x-user": "ana"}).status_code == 404


def test_a_report_is_a_sandboxed_download_found_by_its_record(client) -> None:
    ana = {"x-user": "ana"}
    sent = client.get("/api/pipelines/card_fraud/reports/drift/drift-2", headers=ana)
    assert sent.status_code == 200 and sent.content == REPORT_HTML  # gzip, decoded by the client
    assert sent.headers["content-encoding"] == "gzip"
    assert sent.headers["content-security-policy"] == "sandbox"
    assert sent.headers["content-disposition"].startswith("attachment;")
    docs = client.get(
        "/api/pipelines/card_fraud/reports/validation/validate-1",
        params={"subject": "dt=2026-12-01/bad.csv"},
        headers=ana,
    )
    assert docs.status_code == 200 and docs.content == b"<html>expectations</html>"
    # An audit whose report is not written: 404 naming it; a stage without reports: 404.
    missing = client.get("/api/pipelines/card_fraud/reports/drift/drift-0", headers=ana)
    assert missing.status_code == 404 and "not there" in missing.json()["detail"]
    other = client.get("/api/pipelines/card_fraud/reports/cost/batch-1", headers=ana)
    assert other.status_code == 404
    refused = client.get(
        "/api/pipelines/card_fraud/reports/drift/drift-2", headers={"x-user": "bo"}
    )
    assert refused.status_code == 403


def test_the_bundle_is_served_as_javascript(client) -> None:
    sent = client.get("/static/loopline-view.js", headers={"x-user": "ana"})
    assert sent.status_code == 200 and sent.headers["content-type"].startswith("text/javascript")
    assert "globalThis.Loopline = LooplineView" in sent.text


def test_the_plugin_registers_the_app_and_the_views() -> None:
    path = PROJECT_ROOT / "plugins" / "loopline_view.py"
    spec = importlib.util.spec_from_file_location("loopline_view", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    plugin = module.LooplineViewPlugin
    assert [app["url_prefix"] for app in plugin.fastapi_apps] == ["/loopline"]
    assert {(v["destination"], v["url_route"]) for v in plugin.react_apps} == {
        ("nav", "loopline"),
        ("dag", "loopline-pipeline"),
    }
    assert all(not v["bundle_url"].startswith("/") for v in plugin.react_apps)

"""`loopline stream deploy|status|scale|stop` from a terminal: real replica processes with a
Keras champion from the registry, on the real broker and S3, recorded as the DAG's are."""

from __future__ import annotations

import pytest
from loopline.cli import main
from loopline.records import RecordStage, RecordStore
from loopline.storage.objects import ObjectStore
from support.batch_world import crown_champion, land_validated
from support.paths import PROJECT_ROOT
from support.servers import KafkaBroker
from support.validated_data import DEMO


# A broker of its own: the replicas join the demo spec's consumer group, which other modules'
# replicas use too.
@pytest.fixture(scope="module")
def broker():
    with KafkaBroker.start() as broker:
        yield broker


def loopline(*args: str) -> int:
    return main(["--project", str(PROJECT_ROOT), *args])


def test_deploy_status_refuse_and_stop_from_the_cli_are_recorded(
    broker, s3, tmp_path, monkeypatch, capsys
) -> None:
    for name, value in s3.cli_environment().items():  # AWS's default chain, at the test S3
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LOOPLINE_STATE_DIR", str(tmp_path))
    store = ObjectStore(s3.client())
    land_validated(store, objects=1, rows=2000)
    champion = crown_champion(store)
    boot = ("--bootstrap", broker.bootstrap)

    try:
        assert loopline("stream", "deploy", DEMO.name, "--replicas", "1", *boot) == 0
        deployed = capsys.readouterr().out
        assert f"{DEMO.name} deploy: done (0: v{champion})" in deployed

        assert loopline("stream", "status", DEMO.name, *boot) == 0
        status = capsys.readouterr().out
        assert f"{DEMO.name}: 1 replica(s) running" in status and '"state": "running"' in status

        # A version that never passed its judgement: refused, and nothing is touched.
        assert loopline("stream", "roll", DEMO.name, "--version", "99", *boot) == 1
        assert "roll: refused" in capsys.readouterr().out
    finally:
        assert loopline("stream", "stop", DEMO.name, *boot) == 0
    assert f"{DEMO.name} stop: done (none)" in capsys.readouterr().out
    assert loopline("stream", "status", DEMO.name, *boot) == 0
    assert "0 replica(s) running" in capsys.readouterr().out

    records = list(RecordStore(store, DEMO.data.bucket).records(DEMO.name, RecordStage.STREAMING))
    mine = [(r.subject, r.verdict) for r in records if r.run_id.startswith("cli:")]
    assert mine == [("deploy", "done"), ("roll", "refused"), ("stop", "done")]
    refused = next(r for r in records if r.verdict == "refused")
    assert refused.payload["model_version"] == "99" and refused.dag_id is None

"""`loopline replay quarantine` against the real S3 server: a quarantined file goes back to
landing and, with --validate, through the gate at once; a refusal exits 1 naming the key."""

from __future__ import annotations

import json

from loopline.cli import main
from loopline.demo.card_transactions import generate
from loopline.records import RecordStore
from loopline.storage.formats import encode
from loopline.validation.gate import validate_and_route
from loopline.validation.suites import load_suite
from support.paths import PROJECT_ROOT
from support.validated_data import DEMO, demo_bucket

LANDED = "card_fraud/landing/dt=2026-11-23/c.parquet"
QUARANTINED = "card_fraud/quarantine/dt=2026-11-23/c.parquet"


def test_replay_quarantine_validates_at_once_and_refuses_naming_the_key(
    s3, tmp_path, monkeypatch, capsys
) -> None:
    for env, value in s3.cli_environment().items():
        monkeypatch.setenv(env, value)
    suite = json.loads((PROJECT_ROOT / "include/expectations/card_fraud.json").read_text())
    for expectation in suite["expectations"]:
        if expectation["type"] == "expect_table_row_count_to_be_between":
            expectation["kwargs"]["max_value"] = 10  # too strict: the suite before its fix
    (tmp_path / "strict.json").write_text(json.dumps(suite))
    store = demo_bucket(s3)
    store.put_new(DEMO.data.bucket, LANDED, encode(generate(100, seed=3), "parquet"))
    validate_and_route(store, DEMO.data, load_suite(tmp_path / "strict.json"), LANDED)

    def replay(*args: str) -> tuple[int, str]:
        code = main(["--project", str(PROJECT_ROOT), "replay", "quarantine", "card_fraud", *args])
        return code, capsys.readouterr().out

    code, out = replay(QUARANTINED, "--validate")
    print(out)  # shown with -s: the README's example output

    assert code == 0
    assert f"{QUARANTINED} requeued -> {LANDED}; validated now: validated" in out
    assert "1 requeued, 0 refused, 1 passed validation now (run cli:" in out
    assert store.head(DEMO.data.bucket, "card_fraud/validated/dt=2026-11-23/c.parquet")
    code, out = replay(QUARANTINED)
    print(out)
    assert code == 1 and f"{QUARANTINED} REFUSED: not in quarantine: no object" in out
    verdicts = [r.verdict for r in RecordStore(store, "loopline").records("card_fraud", "replay")]
    assert verdicts == ["requeued", "refused"]

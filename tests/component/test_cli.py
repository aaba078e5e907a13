"""`loopline models promote` against the real S3 server: held to the gates, a forced override
recorded."""

from __future__ import annotations

from pathlib import Path

from loopline.cli import main
from support.paths import PROJECT_ROOT


def test_models_promote_holds_to_the_gates_and_records_a_forced_override(
    s3, tmp_path: Path, monkeypatch, capsys
) -> None:
    import os
    import pwd
    import socket

    from loopline.registry import CHAMPION
    from support.judged_versions import crown, empty_registry, judge_as, register

    for env, value in {
        **s3.cli_environment(),
        "LOGNAME": "mallory",  # what getpass.getuser() reported: anyone can set it
        "USER": "mallory",
    }.items():
        monkeypatch.setenv(env, value)
    actor = f"cli:{pwd.getpwuid(os.getuid()).pw_name}@{socket.gethostname()}"  # the real uid's
    registry = empty_registry(s3)
    v1, v2, v3 = (register(registry, tmp_path) for _ in range(3))
    judge_as(registry, v1, auc=0.90, run_id="r1")
    crown(registry, v1)
    judge_as(registry, v2, auc=0.80, run_id="r2")  # the gates refused it

    def models(*args: str) -> tuple[int, str]:
        code = main(["--project", str(PROJECT_ROOT), "models", *args])
        return code, capsys.readouterr().out

    code, out = models("promote", "card_fraud", str(v2))
    assert code == 1 and "card_fraud v2 not promoted; failed checks:" in out
    assert "judged: refused in run r2: auc improvement: 0.8000 vs champion 0.9000" in out
    assert models("promote", "card_fraud", str(v2), "--force")[1].startswith(
        "error: --force needs --reason"
    )
    assert registry.alias("card_fraud", CHAMPION) == v1

    forced = models("promote", "card_fraud", str(v2), "--force", "--reason", "v1 leaks PII")
    assert forced == (0, f"card_fraud@champion: 1 -> 2 (FORCED promotion by {actor})\n")
    judge_as(registry, v3, auc=0.95, run_id="r3")  # beats the champion it was judged against
    assert models("promote", "card_fraud", str(v3)) == (
        0,
        f"card_fraud@champion: 2 -> 3 (manual promotion by {actor})\n",
    )
    moves = registry.history("card_fraud", CHAMPION)
    assert [m.by for m in moves[1:]] == [actor, actor] and "mallory" not in actor


def test_s3_without_the_bucket_or_unreachable_is_a_message_not_a_traceback(
    s3, tmp_path: Path, monkeypatch, capsys
) -> None:
    """The real S3 server without the pipeline's bucket, then a port nothing listens on.
    (Refused credentials are the doctor's test: this moto server takes any secret.)"""
    for env, value in s3.cli_environment().items():
        monkeypatch.setenv(env, value)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    project = ("--project", str(tmp_path))  # no stack here: AWS's default chain
    (tmp_path / "include").mkdir()
    (tmp_path / "include" / "pipelines").symlink_to(PROJECT_ROOT / "include" / "pipelines")

    assert main([*project, "records", "card_fraud"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: S3 answered NoSuchBucket") and "loopline doctor" in err
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # discard: nothing listens
    assert main([*project, "cost", "card_fraud"]) == 2
    assert "error: S3 answered EndpointConnectionError" in capsys.readouterr().err

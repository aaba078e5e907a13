"""`loopline doctor` against real components: the stack's own S3 server (moto behind its SigV4
check, so a wrong secret is refused as it would be by S3), the Tansu broker, a real `java`
and fake ones, specs and suites in a temporary folder. Each broken environment is found with
its fix, and the healthy one passes the same checks."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from loopline.doctor import CheckResult, DoctorTargets, Status, check_services_and_specs
from loopline.doctor.java import check_java
from loopline.doctor.services import check_kafka, check_s3, s3_client
from loopline.plan.paths import ProjectPaths
from loopline.registry import ModelRegistry
from loopline.spec import load_spec
from loopline.stack.config import (
    DEFAULT_PORTS,
    HOST,
    S3_ACCESS_KEY,
    S3_SECRET_KEY,
    free_port,
    stack_s3_client,
)
from loopline.storage.objects import ObjectStore
from loopline.storage.settings import S3Settings
from loopline.streaming.topics import ensure_topics
from support.judged_versions import crown, register
from support.paths import PIPELINES, PROJECT_ROOT

SUITE = PROJECT_ROOT / "include" / "expectations" / "card_fraud.json"


@pytest.fixture(scope="module")
def guarded_s3() -> Iterator[str]:
    """The local stack's S3 server (`python -m loopline.stack.s3_server`): only requests
    signed with the stack's key and secret are served. Its endpoint."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "loopline.stack.s3_server", "--host", HOST, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://{HOST}:{port}"
    try:
        _wait_for_s3(endpoint, server)
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=10)


def _wait_for_s3(endpoint: str, server: subprocess.Popen, timeout: float = 60) -> None:
    client = stack_s3_client(endpoint)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("the stack's S3 server exited during start-up")
        try:
            client.list_buckets()
            return
        except Exception:
            time.sleep(0.2)
    raise TimeoutError(f"the stack's S3 server at {endpoint} did not answer in {timeout}s")


def write_pipeline(folder: Path, *, with_suite: bool) -> Path:
    """card_fraud's spec in `folder/pipelines`, on a bucket and topics of this test alone;
    its suite in `folder/expectations` unless `with_suite` is False. The pipelines folder."""
    token = uuid.uuid4().hex[:10]
    document = yaml.safe_load((PIPELINES / "card_fraud.yaml").read_text())
    document["data"]["bucket"] = f"doctor-{token}"
    document["streaming"]["input_topic"] = f"doctor-{token}.in"
    document["streaming"]["output_topic"] = f"doctor-{token}.out"
    pipelines = folder / "pipelines"
    pipelines.mkdir()
    (pipelines / "card_fraud.yaml").write_text(yaml.safe_dump(document))
    (folder / "expectations").mkdir()
    if with_suite:
        (folder / "expectations" / "card_fraud.json").write_bytes(SUITE.read_bytes())
    return pipelines


def targets_for(pipelines: Path, s3: S3Settings, bootstrap: str | None) -> DoctorTargets:
    return DoctorTargets(
        project=PROJECT_ROOT,
        pipelines=pipelines,
        suite_file=ProjectPaths.beside(pipelines).suite_file,
        s3=s3,
        s3_source="the test's stack S3",
        stack_logs=Path("/state/logs"),
        s3_is_local=True,
        kafka_bootstrap=bootstrap,
        kafka_source="the test's broker",
        kafka_is_local=True,
        timeout=3.0,
    )


def stack_s3(endpoint: str, secret: str = S3_SECRET_KEY) -> S3Settings:
    return S3Settings(endpoint, S3_ACCESS_KEY, secret)


def by_name(results: Iterator[CheckResult] | list[CheckResult]) -> dict[str, CheckResult]:
    return {result.name: result for result in results}


def make_healthy(pipelines: Path, endpoint: str, bootstrap: str) -> None:
    """Bucket, topics and a champion for the spec in `pipelines`, as a trained stack has."""
    spec = load_spec(pipelines / "card_fraud.yaml")
    store = ObjectStore(stack_s3_client(endpoint))
    store.ensure_bucket(spec.data.bucket)
    assert spec.streaming is not None
    ensure_topics(bootstrap, [spec.streaming])
    registry = ModelRegistry(store, spec.data.bucket)
    crown(registry, register(registry, pipelines.parent))


@pytest.fixture(autouse=True)
def no_expectations_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOOPLINE_EXPECTATIONS_DIR", raising=False)
    monkeypatch.delenv("LOOPLINE_KAFKA_SECURITY", raising=False)


def test_a_healthy_environment_passes_every_service_and_spec_check(
    guarded_s3: str, kafka_broker: Any, tmp_path: Path
) -> None:
    pipelines = write_pipeline(tmp_path, with_suite=True)
    make_healthy(pipelines, guarded_s3, kafka_broker.bootstrap)
    targets = targets_for(pipelines, stack_s3(guarded_s3), kafka_broker.bootstrap)

    found = by_name(check_services_and_specs(targets))

    checks = ["s3", "kafka", "card_fraud suite", "card_fraud bucket", "card_fraud topics"]
    assert {name: found[name].status for name in checks} == dict.fromkeys(checks, Status.OK)
    assert found["card_fraud champion"].status is Status.OK
    assert found["card_fraud champion"].detail == "version 1"
    assert found["airflow"].status is Status.SKIPPED  # no Airflow named in these targets
    assert not [r for r in found.values() if r.status is Status.PROBLEM]


def test_a_wrong_s3_secret_is_credentials_refused_not_unreachable(
    guarded_s3: str, tmp_path: Path
) -> None:
    targets = targets_for(tmp_path, stack_s3(guarded_s3, secret="not-the-secret"), None)
    refused = check_s3(targets, s3_client(targets))
    assert refused.status is Status.PROBLEM
    assert refused.detail.startswith(f"credentials refused by {guarded_s3}")
    assert "SignatureDoesNotMatch" in refused.detail
    assert "make stop && make run" in refused.fix

    unknown_key = replace(targets, s3=S3Settings(guarded_s3, "someone-else", S3_SECRET_KEY))
    assert "InvalidAccessKeyId" in check_s3(unknown_key, s3_client(unknown_key)).detail

    nobody = f"http://{HOST}:{free_port()}"
    down = replace(targets, s3=stack_s3(nobody))
    unreachable = check_s3(down, s3_client(down))
    assert unreachable.status is Status.PROBLEM
    assert unreachable.detail.startswith(f"{nobody} (the test's stack S3) unreachable")
    assert unreachable.fix.startswith("make run")

    right = replace(targets, s3=stack_s3(guarded_s3))
    assert check_s3(right, s3_client(right)).status is Status.OK


def test_a_broker_that_is_down_is_unreachable_with_make_run_as_fix(
    kafka_broker: Any, tmp_path: Path
) -> None:
    down = f"{HOST}:{free_port()}"  # nothing listens there
    targets = targets_for(tmp_path, stack_s3("http://unused"), down)
    started = time.monotonic()
    result, topics = check_kafka(targets)
    assert time.monotonic() - started < 15  # the timeout holds: kafka-python waits 30 s
    assert result.status is Status.PROBLEM and topics is None
    assert result.detail.startswith(f"broker {down} (the test's broker) unreachable")
    assert (
        result.fix == "make run (starts the local stack; /state/logs/kafka.log says why it stopped)"
    )
    elsewhere = replace(targets, kafka_is_local=False).kafka_bootstrap
    assert check_kafka(replace(targets, kafka_is_local=False))[0].fix.startswith(
        f"start the broker at {elsewhere}"
    )

    healthy, topics = check_kafka(replace(targets, kafka_bootstrap=kafka_broker.bootstrap))
    assert healthy.status is Status.OK and topics is not None


def test_a_spec_whose_suite_is_missing_is_found_with_suite_profile_as_fix(
    guarded_s3: str, kafka_broker: Any, tmp_path: Path
) -> None:
    pipelines = write_pipeline(tmp_path, with_suite=False)
    make_healthy(pipelines, guarded_s3, kafka_broker.bootstrap)
    targets = targets_for(pipelines, stack_s3(guarded_s3), kafka_broker.bootstrap)

    found = by_name(check_services_and_specs(targets))

    suite = found["card_fraud suite"]
    assert suite.status is Status.PROBLEM
    expected = tmp_path / "expectations" / "card_fraud.json"
    assert suite.detail == f"data.expectation_suite 'card_fraud' has no file: {expected} is missing"
    assert suite.fix.startswith("loopline suite profile card_fraud")
    assert found["card_fraud bucket"].status is Status.OK  # only the suite is wrong


def test_an_empty_registry_has_no_champion_and_the_fix_is_to_train(
    guarded_s3: str, kafka_broker: Any, tmp_path: Path
) -> None:
    pipelines = write_pipeline(tmp_path, with_suite=True)
    spec = load_spec(pipelines / "card_fraud.yaml")
    ObjectStore(stack_s3_client(guarded_s3)).ensure_bucket(spec.data.bucket)  # no model in it
    targets = targets_for(pipelines, stack_s3(guarded_s3), kafka_broker.bootstrap)

    found = by_name(check_services_and_specs(targets))

    champion = found["card_fraud champion"]
    assert champion.status is Status.PROBLEM
    assert champion.detail.startswith(f"no champion in s3://{spec.data.bucket}/models/card_fraud/")
    assert champion.fix.startswith("trigger card_fraud.train")
    assert found["card_fraud topics"].status is Status.PROBLEM  # nothing deployed either
    assert found["card_fraud bucket"].status is Status.OK


def fake_java(folder: Path, version_line: str) -> Path:
    """A `java` that prints `version_line` to stderr as `java -version` does."""
    folder.mkdir(parents=True)
    java = folder / "java"
    java.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    java.chmod(0o755)
    return java


def test_an_old_java_on_path_is_found_with_the_jdk_to_install(tmp_path: Path) -> None:
    java = fake_java(tmp_path / "bin", 'openjdk version "11.0.2" 2019-01-15')
    result = check_java({"PATH": f"{java.parent}:/usr/bin:/bin"}, timeout=10)
    assert result.status is Status.PROBLEM
    assert result.detail == f"Java 11 at {java} (PATH); PySpark 4.x needs Java 17 or 21"
    assert "JDK 17 or 21" in result.fix and "JAVA_HOME" in result.fix


def test_java_home_is_the_java_checked_and_a_wrong_one_is_a_problem(tmp_path: Path) -> None:
    java = fake_java(tmp_path / "jdk8" / "bin", 'java version "1.8.0_392"')
    environ = {"JAVA_HOME": str(tmp_path / "jdk8"), "PATH": "/usr/bin:/bin"}
    result = check_java(environ, timeout=10)
    assert result.status is Status.PROBLEM
    assert result.detail.startswith(f"Java 8 at {java} (JAVA_HOME=")

    empty = check_java({"JAVA_HOME": str(tmp_path / "nothing"), "PATH": "/bin"}, timeout=10)
    assert empty.status is Status.PROBLEM and "does not exist" in empty.detail


def test_the_machines_own_java_passes() -> None:
    import os

    result = check_java(os.environ, timeout=30)
    assert result.status is Status.OK, result  # the project's machines and CI have JDK 17


def test_the_command_reads_the_stack_and_the_pipelines_dir_and_exits_1_on_a_problem(
    guarded_s3: str,
    kafka_broker: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Through `loopline doctor --json`: endpoints from a stack.json (the stack's S3 server
    and a broker; Airflow's port has nothing on it), specs from LOOPLINE_PIPELINES_DIR."""
    from loopline.cli import main

    pipelines = write_pipeline(tmp_path, with_suite=False)
    spec = load_spec(pipelines / "card_fraud.yaml")
    ObjectStore(stack_s3_client(guarded_s3)).ensure_bucket(spec.data.bucket)
    assert spec.streaming is not None
    ensure_topics(kafka_broker.bootstrap, [spec.streaming])
    state = tmp_path / "state"
    state.mkdir()
    ports = {name: free_port() for name in DEFAULT_PORTS}
    ports.update(
        s3=int(guarded_s3.rsplit(":", 1)[1]), kafka=int(kafka_broker.bootstrap.split(":")[1])
    )
    stack_json = {"ports": ports, "admin_password": "pw", "jwt_secret": "j", "fernet_key": "f"}
    (state / "stack.json").write_text(json.dumps(stack_json))
    for variable in ("LOOPLINE_S3_MODE", "LOOPLINE_KAFKA_BOOTSTRAP", "AIRFLOW_CONN_SPARK_DEFAULT"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("LOOPLINE_STATE_DIR", str(state))
    monkeypatch.setenv("LOOPLINE_PIPELINES_DIR", str(pipelines))

    code = main(["--project", str(PROJECT_ROOT), "doctor", "--json", "--timeout", "3"])

    report = json.loads(capsys.readouterr().out)
    found = {check["name"]: check for check in report["checks"]}
    assert code == 1 and report["problems"] >= 3
    assert found["s3"]["status"] == "ok" and str(state / "stack.json") in found["s3"]["detail"]
    assert found["kafka"]["status"] == "ok"
    assert found["airflow"]["status"] == "PROBLEM"
    assert found["airflow"]["detail"].startswith(f"http://{HOST}:{ports['airflow']} unreachable")
    assert found["airflow"]["fix"].startswith("make run")
    # airflow_settings.yaml: the stack's Spark Connect server, on the port stack.json holds
    assert found["spark"]["status"] == "PROBLEM"
    assert f"sc://localhost:{ports['spark_connect']} (spark_default" in found["spark"]["detail"]
    assert found["spark"]["fix"].startswith("make run (starts the Spark Connect server")
    assert found["card_fraud suite"]["status"] == "PROBLEM"
    assert found["card_fraud bucket"]["status"] == "ok"
    assert found["card_fraud topics"]["status"] == "ok"
    assert found["card_fraud champion"]["fix"].startswith("trigger card_fraud.train")
    assert {"python", "packages", "java", "tensorflow", "gpu", "onednn"} <= set(found)

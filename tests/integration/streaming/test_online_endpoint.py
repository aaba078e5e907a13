"""Online scoring by a real replica process: the demo spec with `streaming.serve`, a Keras
champion from the registry on the real S3 server, the real broker. Over REST the scores are
the model's own and carry its version; a roll under steady load fails no request; the
heartbeat counts the requests; SIGTERM ends it cleanly. The clients nobody here wrote
(tritonclient, the kserve SDK) are driven against it from their own virtualenv."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml
from loopline.cli import main as cli
from loopline.data.prediction_log import log_prefix, logged_files
from loopline.promotion.shadow import judge_shadow
from loopline.registry import ModelRegistry
from loopline.serving.artifacts import compiled, load_model
from loopline.serving.inputs import served_scores
from loopline.spec.sections import ShadowSpec
from loopline.stack.config import S3_ACCESS_KEY, S3_SECRET_KEY, free_ports
from loopline.storage.objects import ObjectStore
from loopline.storage.settings import S3Settings
from loopline.streaming.consumer import heartbeat_path
from loopline.streaming.shadow import shadow_path
from support import streams
from support.batch_world import crown_champion, land_validated
from support.oip_clients import run_clients
from support.paths import PIPELINES, PROJECT_ROOT
from support.streams import feature_events
from support.validated_data import DEMO


@pytest.fixture
def serving_spec(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    """The demo spec serving online on free ports, on topics and a group of its own."""
    http_port, grpc_port = free_ports(2)
    spec = yaml.safe_load((PIPELINES / "card_fraud.yaml").read_text())
    spec["streaming"] |= {
        "input_topic": "online.transactions",
        "output_topic": "online.scores",
        "consumer_group": "online-scorer",
        "serve": {"http_port": http_port, "grpc_port": grpc_port, "max_queue_delay_ms": 2},
    }
    path = tmp_path / "card_fraud.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path, {"http": http_port, "grpc": grpc_port}


def start_replica(spec: Path, bootstrap: str, s3, version: int, version_file: Path, state: Path):
    env = {"LOOPLINE_S3": S3Settings(s3.endpoint, S3_ACCESS_KEY, S3_SECRET_KEY).to_json()}
    argv = ["--spec", str(spec), "--slot", "0", "--version", str(version)]
    argv += ["--bootstrap", bootstrap]
    argv += ["--state-dir", str(state), "--version-file", str(version_file)]
    return subprocess.Popen(
        [sys.executable, "-m", "loopline.streaming.replica", *argv],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_beat(state: Path, process: subprocess.Popen, check, timeout: float = 120) -> dict:
    path = heartbeat_path(state, DEMO.name, 0)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the replica exited"
        if path.exists():
            beat = json.loads(path.read_text())
            if beat["pid"] == process.pid and check(beat):
                return beat
        time.sleep(0.2)
    raise AssertionError(f"the heartbeat never showed it: {path.read_text()}")


def infer_body(rows: list[dict], request_id: str) -> dict:
    return streams.infer_body(DEMO, rows, request_id)


@pytest.fixture
def replica(serving_spec, kafka_broker, s3, tmp_path) -> Iterator[dict]:
    store = ObjectStore(s3.client())
    land_validated(store, objects=1, rows=3000)
    v1 = crown_champion(store)
    v2 = crown_champion(store)
    spec, ports = serving_spec
    version_file = tmp_path / "slot-0.json"
    version_file.write_text(json.dumps({"version": v1}))
    state = tmp_path / "state"
    process = start_replica(spec, kafka_broker.bootstrap, s3, v1, version_file, state)
    try:
        wait_beat(state, process, lambda beat: beat["state"] == "running")
        yield {"process": process, "ports": ports, "versions": (v1, v2), "store": store,
               "version_file": version_file, "state": state, "tmp": tmp_path}  # fmt: skip
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)


def own_scores(store: ObjectStore, version: int, rows: list[dict], folder: Path) -> list[float]:
    ModelRegistry(store, DEMO.data.bucket).download(DEMO.name, version, folder)
    serve = compiled(load_model(folder))
    return [float(s) for s in served_scores(serve, pa.Table.from_pylist(rows), DEMO.model)]


def test_rest_scores_are_the_champions_and_a_roll_under_load_fails_no_request(
    replica, capsys
) -> None:
    v1, v2 = replica["versions"]
    url = f"http://127.0.0.1:{replica['ports']['http']}"
    rows = list(feature_events(DEMO, 16, seed=31, prefix="o").values())
    client = httpx.Client(base_url=url, timeout=30)  # thread-safe: shared by the load below
    try:
        response = client.post("/v2/models/card_fraud/infer", json=infer_body(rows, "first"))
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model_version"] == str(v1) and body["id"] == "first"
        expected = own_scores(replica["store"], v1, rows, replica["tmp"] / "v1")
        assert body["outputs"][0]["data"] == pytest.approx(expected, abs=1e-5)
        bad = client.post("/v2/models/card_fraud/infer", json=infer_body(rows[:1], "b") | {
            "inputs": infer_body(rows[:1], "b")["inputs"][1:]})  # fmt: skip
        assert bad.status_code == 400 and "missing input" in bad.json()["error"]

        # A roll under steady load: four clients keep asking while the slot moves to v2.
        answers: list[tuple[int, str]] = []
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                answer = client.post("/v2/models/card_fraud/infer", json=infer_body(rows[:2], "l"))
                answers.append((answer.status_code, answer.json().get("model_version", "")))

        threads = [threading.Thread(target=load) for _ in range(4)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(1.0)
            replica["version_file"].write_text(json.dumps({"version": v2}))
            wait_beat(replica["state"], replica["process"], lambda b: b["model_version"] == v2)
            time.sleep(1.0)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        assert {status for status, _ in answers} == {200}, answers[-5:]
        versions = [version for _, version in answers]
        assert str(v1) in versions and versions[-1] == str(v2)
        ready = client.get("/v2/models/card_fraud")
        assert ready.json()["versions"] == [str(v2)]
        # v1 in shadow beside champion v2: every request from here on is scored by both
        shadow_path(replica["state"], DEMO.name).write_text(json.dumps({"version": v1}))
        wait_beat(replica["state"], replica["process"],
                  lambda b: (b.get("shadow") or {}).get("version") == v1)  # fmt: skip
        # `loopline stream infer` asks it too (from generated events: the demo feed's)
        capsys.readouterr()
        assert cli(["--project", str(PROJECT_ROOT), "stream", "infer", DEMO.name,
                    "--count", "3", "--url", url]) == 0  # fmt: skip
        answer = json.loads(capsys.readouterr().out)
        assert answer["model_version"] == str(v2) and answer["outputs"][0]["shape"] == [3]
        # The clients users have, from their own virtualenv: the same scores, REST and gRPC
        # (last: where the virtualenv is missing, the test skips from here).
        expected_v2 = own_scores(replica["store"], v2, rows, replica["tmp"] / "v2")
        answers_by_client = run_clients(
            url,
            f"127.0.0.1:{replica['ports']['grpc']}",
            DEMO.name,
            {name: [row[name] for row in rows] for name in DEMO.model.features.all},
            request_id="from-a-client",
        )
        for name, answer in answers_by_client.items():
            assert "error" not in answer, (name, answer)
            assert answer["scores"] == pytest.approx(expected_v2, abs=1e-5), name
            if name != "kserve-rest" and name != "kserve-rest-binary":  # it never reads it
                assert answer["model_version"] == str(v2), name
            assert "missing input" in answer["bad_request"]["message"], (name, answer)
    finally:
        client.close()
    # The load, the first and the bad request, the CLI's, each client's good one, REST or gRPC
    # (their bad ones too, where the client library sent it rather than refusing it itself).
    asked = len(answers) + 3 + len(answers_by_client)  # ... and `stream infer`'s
    beat = wait_beat(
        replica["state"], replica["process"], lambda b: b["endpoint"]["requests"] >= asked
    )
    endpoint = beat["endpoint"]
    assert asked <= endpoint["requests"] <= asked + len(answers_by_client)
    assert 1 <= endpoint["refused"] <= 1 + len(answers_by_client)
    assert endpoint["failed"] == 0 and endpoint["latency_ms"]["p99"] > 0
    assert beat["prediction_log"]["dropped"] == 0
    process = replica["process"]
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    # Every online prediction is in the prediction log (written as the replica drained),
    # where the drift audit reads predictions: each request's rows, by front end and version.
    store, today = replica["store"], datetime.now(UTC).date()
    files = logged_files(store, DEMO.data.bucket, log_prefix(DEMO), [today])
    logged = pa.concat_tables(
        pq.read_table(pa.BufferReader(store.get(DEMO.data.bucket, f.key))) for f in files
    )
    sources = logged.group_by(["source", "model_version"]).aggregate([("id", "count")])
    counts = {(r["source"], r["model_version"]): r["id_count"] for r in sources.to_pylist()}
    assert counts[("rest", v1)] >= 16 and counts[("rest", v2)] >= 3 + 16 * 4
    assert counts[("grpc", v2)] == 16 * 3  # three gRPC clients, 16 rows each
    first = logged.filter(pc.equal(logged.column("id"), "first/0"))
    assert first.column("score").to_pylist() == pytest.approx(expected[:1], abs=1e-5)
    # ...and the shadow's scores of the same requests, judged against the champion's
    rules = DEMO.promotion.model_copy(update={"shadow": ShadowSpec(min_pairs=10)})
    shadowed = DEMO.model_copy(update={"promotion": rules})
    verdict = judge_shadow(store, shadowed, v1, v2, [today])
    # the CLI's rows and the clients' (one request id for all seven: counted once)
    assert verdict.pairs >= 3 + 16
    assert verdict.verdict in ("pass", "fail") and verdict.numbers["error_share"] == 0.0
    assert verdict.numbers["champion_p99_ms"] > 0 and verdict.numbers["challenger_p99_ms"] > 0

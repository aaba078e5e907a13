"""Many small files through the validation DAG in the running stack (files/min).

Candidate: `FILES` landed files of `ROWS` rows each, validated by one `<pipeline>.validate`
run triggered over REST in a real stack (`loopline stack up --no-demo-data`: moto, Airflow 3
with the LocalExecutor), from the trigger to the run's success, as a user waits for it.
Baseline, same run, same S3 server: the same number of files (other transaction ids, in a
bucket of their own) validated one after the other in one fresh Python process, start-up and
imports included (the issue's "validated in one process").
Goal: files/min through the DAG >= 0.5x the one-process rate, at 200 files of 1,000 rows.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Comparison

PROJECT_ROOT = Path(__file__).resolve().parents[1]
LOOPLINE = str(Path(sys.executable).parent / "loopline")
FILES, ROWS = 200, 1_000
BASELINE_BUCKET = "loopline-bench-baseline"
DAY = "dt=2026-11-23"

ONE_PROCESS = """
import sys
from loopline.spec import load_spec
from loopline.stack.config import stack_s3_client
from loopline.storage.objects import ObjectStore
from loopline.validation.gate import validate_and_route
from loopline.validation.replays import KeyCache
from loopline.validation.suites import load_suite

endpoint, bucket, spec_path, suite_path = sys.argv[1:]
spec = load_spec(spec_path)
data = spec.data.model_copy(update={"bucket": bucket})
store, suite, cache = ObjectStore(stack_s3_client(endpoint)), load_suite(suite_path), KeyCache()
keys = sorted(store.list_keys(bucket, data.landing_prefix))
results = [validate_and_route(store, data, suite, k, known_keys=cache) for k in keys]
assert len(results) == len(keys) and all(r.passed for r in results), "a file did not pass"
print(len(results))
"""


def run() -> list[Comparison]:
    with tempfile.TemporaryDirectory(prefix="loopline-bench-") as state:
        state_dir = Path(state)
        local = _stack(state_dir)
        try:
            return [_measure(local)]
        finally:
            _stack_command(state_dir, "down")


def _measure(local) -> Comparison:
    from loopline.spec import load_spec
    from loopline.storage.objects import ObjectStore

    spec_path = PROJECT_ROOT / "include" / "pipelines" / "card_fraud.yaml"
    suite_path = PROJECT_ROOT / "include" / "expectations" / "card_fraud.json"
    spec = load_spec(spec_path)
    store = ObjectStore(local.s3_client())
    store.ensure_bucket(BASELINE_BUCKET)
    _land(store, BASELINE_BUCKET, spec.data.landing_prefix, "base")
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", ONE_PROCESS, local.config.s3_endpoint, BASELINE_BUCKET,
         str(spec_path), str(suite_path)],
        check=True, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    one_process = time.perf_counter() - started

    api = local.api()
    _quiesce(api, spec.name)
    _land(store, spec.data.bucket, spec.data.landing_prefix, "dag")
    started = time.perf_counter()
    run_id = api.trigger(f"{spec.name}.validate")
    state = api.wait_for_run(f"{spec.name}.validate", run_id, timeout=1800)
    through_dag = time.perf_counter() - started
    print(f"   through the DAG {through_dag:.1f} s, one process {one_process:.1f} s", flush=True)
    assert state == "success", f"the validation run ended {state}"
    validated = list(store.list_keys(spec.data.bucket, f"{spec.data.validated_prefix}{DAY}/dag-"))
    assert len(validated) == FILES, f"{len(validated)} of {FILES} files validated"
    tasks = api.call(
        "GET", f"/api/v2/dags/{spec.name}.validate/dagRuns/{run_id}/taskInstances",
        params={"task_id_pattern": "validate", "limit": 1000},
    )["task_instances"]  # fmt: skip
    groups = len([t for t in tasks if t["task_id"] == "validate"])
    api.close()
    ratio = one_process / through_dag
    note = (
        f"{FILES} files x {ROWS:,} rows: DAG {FILES / through_dag * 60:,.0f} files/min "
        f"({groups} validate tasks), one process {FILES / one_process * 60:,.0f} files/min; "
        f"files/min ratio {ratio:.2f} (goal >= 0.5)"
    )
    return Comparison(
        "validation_dag",
        "validate DAG, running stack",
        "one process, same files",
        [through_dag],
        [one_process],
        note,
    )


def _quiesce(api, pipeline: str) -> None:
    """No demo batches (the feed's hourly schedule) and no validation run in flight: the run
    measured is the only one taking files."""
    api.call("PATCH", f"/api/v2/dags/{pipeline}.demo_feed", json={"is_paused": True})
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        runs = api.call(
            "GET", f"/api/v2/dags/{pipeline}.validate/dagRuns",
            params={"state": ["queued", "running"]},
        )["dag_runs"]  # fmt: skip
        feeds = api.call(
            "GET", f"/api/v2/dags/{pipeline}.demo_feed/dagRuns",
            params={"state": ["queued", "running"]},
        )["dag_runs"]  # fmt: skip
        if not runs and not feeds:
            return
        time.sleep(2)
    raise TimeoutError("runs still in flight after 600 s")


def _land(store, bucket: str, prefix: str, tag: str) -> None:
    from loopline.demo.card_transactions import generate
    from loopline.storage.formats import encode

    for index in range(FILES):
        batch = generate(ROWS, seed=index, batch_id=f"{tag}{index:04d}")
        store.put_new(bucket, f"{prefix}{DAY}/{tag}-{index:04d}.parquet", encode(batch, "parquet"))


def _stack(state_dir: Path):
    from loopline.stack.config import free_ports, load_config
    from loopline.stack.local import LocalStack

    airflow, s3, kafka = free_ports(3)
    ports = {"LOOPLINE_AIRFLOW_PORT": airflow, "LOOPLINE_S3_PORT": s3, "LOOPLINE_KAFKA_PORT": kafka}
    os.environ.update({key: str(value) for key, value in ports.items()})
    try:
        local = LocalStack(load_config(PROJECT_ROOT, state_dir))  # pins them in stack.json
    finally:
        for key in ports:
            os.environ.pop(key, None)
    _stack_command(state_dir, "up", "--no-demo-data")
    return local


def _stack_command(state_dir: Path, *args: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "LOOPLINE_"))}
    env["LOOPLINE_STATE_DIR"] = str(state_dir)
    result = subprocess.run(
        [LOOPLINE, "stack", *args], cwd=PROJECT_ROOT, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=900,
    )  # fmt: skip
    if result.returncode:
        raise RuntimeError(f"loopline stack {' '.join(args)} failed:\n{result.stdout[-4000:]}")

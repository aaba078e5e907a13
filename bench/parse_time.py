"""DAG-file parse time of Loopline's generated DAGs against an empty DAG file.

Measured the way Airflow's dag-processor parses: a parent process with Airflow already
imported forks one child per parse, so every parse pays the file's own imports, cold.
"""

from __future__ import annotations

import os
import pickle
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Comparison

PROJECT_ROOT = Path(__file__).resolve().parents[1]
EMPTY_DAG = '''"""An empty airflow DAG: the baseline."""
from airflow.sdk import DAG

with DAG("empty_baseline", schedule=None):
    pass
'''


def run(repeats: int = 7) -> list[Comparison]:
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="loopline-bench-"))
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    from airflow.dag_processing.dagbag import DagBag  # noqa: F401 - the processor's warm state

    with tempfile.TemporaryDirectory() as folder:
        empty = Path(folder) / "empty_dag.py"
        empty.write_text(EMPTY_DAG)
        files = sorted((PROJECT_ROOT / "dags").glob("*.py"))
        # Interleave candidates and baseline so that machine noise hits them alike.
        timings: dict[Path, list[float]] = {path: [] for path in [empty, *files]}
        for _ in range(repeats):
            for path in timings:
                timings[path].append(_parse_in_child(path))
    comparisons = []
    for path in files:
        dags, errors, _ = _last_result[path]
        note = f"{dags} DAG(s)" + (f", {errors} import error(s)" if errors else "")
        comparisons.append(
            Comparison(
                "dag-parse",
                f"dags/{path.name}",
                "empty DAG file",
                timings[path],
                timings[empty],
                note,
            )
        )
    return comparisons


_last_result: dict[Path, tuple[int, int, float]] = {}


def _parse_in_child(path: Path) -> float:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: parse once, report, exit without cleanup
        os.close(read)
        from airflow.dag_processing.dagbag import DagBag

        started = time.perf_counter()
        bag = DagBag(dag_folder=str(path), safe_mode=False)
        elapsed = time.perf_counter() - started
        os.write(write, pickle.dumps((len(bag.dags), len(bag.import_errors), elapsed)))
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    result = pickle.loads(data)
    _last_result[path] = result
    return result[2]


if __name__ == "__main__":
    for comparison in run():
        print(comparison.line())
    sys.exit(0)

"""The online-serving peers users would pick, serving Loopline's model over the same protocol.

KServe 0.21.0 and MLServer 1.7.1, each in its own venv (their pins conflict with Airflow's:
kserve wants psutil<6, mlserver fastapi<0.116), each serving the model folder Loopline's
registry downloads (``model.keras`` + ``saved_model/``) under the Open Inference Protocol v2,
REST and gRPC, through its documented custom-model API, calling the model as Loopline does
(``bench/serving_peers_models/``: same Keras file, same TensorFlow, same compiled function,
same (rows, 1) input dict, the same warm-up).

    from bench import serving_peers as peers
    peers.ensure_kserve_venv()              # builds bench/.venv-kserve once (uv), its python
    p = peers.start_kserve(model_dir, "card_fraud", features, http_port, grpc_port)
    peers.wait_ready(f"http://127.0.0.1:{http_port}", "card_fraud", 180, process=p)
    ...
    peers.stop(p)                           # SIGTERM to its process group, then SIGKILL

    python bench/serving_peers.py --check   # from the main venv: build both, score, compare

This module imports only the standard library: no kserve, mlserver or TensorFlow here.

What a fair comparison must know (the check prints the same in ``describe``):
- KServe: one uvicorn worker (``workers=1``), REST and gRPC on one event loop; ``predict``
  hands the model call to a thread (``asyncio.to_thread``, KServe's advice for blocking
  work), the loop's default executor of ``min(32, cores + 4)`` threads, so concurrent
  requests are scored concurrently, one model call each. No v2 batching exists in KServe's
  model server: its batcher (``predictor.batcher``) is a sidecar container of the
  InferenceService for the v1 protocol only, so ``batching=True`` is refused here.
- MLServer: ``parallel_workers`` 1 (its default): the REST/gRPC front end in one process,
  inference in one worker process, requests and responses passed over a multiprocessing
  queue. Adaptive batching is MLServer's own (``max_batch_size``/``max_batch_time`` in
  model-settings.json, counted in requests); ``batching=True`` uses Loopline's benchmark
  settings (64, 2 ms). Its metrics server (Prometheus middleware on every request) stays on,
  as deployed, on a free port; GZip middleware stays on (its default; responses of a few rows
  are under its 500-byte threshold).
- Logging: both print a line per request by default (KServe: access + latency lines;
  MLServer: ``debug`` defaults to true, access logs on). Loopline's endpoint logs none; with
  ``quiet=True`` (the default) the peers log none either: KServe ``access_log=False``,
  latency logging off, ``KSERVE_LOGLEVEL=WARNING``; MLServer ``debug=false``.
- Event loops (read in their code): KServe with workers=1 serves on the stdlib asyncio loop
  (``asyncio.run``; its ``event_loop`` option applies to workers > 1 only); MLServer installs
  uvloop, pinned below 0.22 here (see MLSERVER_REQUIREMENTS).
- Both listen on 127.0.0.1 only (KServe hard-codes 0.0.0.0 / [::]: its launcher rebinds).
- Each start runs in its own session: ``os.killpg(p.pid, SIGTERM)`` stops the server and any
  worker (MLServer's inference worker is its child). The output goes to a log file
  (``p.log_path``, under the venv's ``runs/``), never to a pipe nobody reads.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH.parent
MODELS = BENCH / "serving_peers_models"
KSERVE_VENV = BENCH / ".venv-kserve"
MLSERVER_VENV = BENCH / ".venv-mlserver"
STAMP = ".loopline-installed"
INSTALL_SECONDS = ".loopline-install-seconds"
HOST = "127.0.0.1"

# TensorFlow and Keras as in the main venv: the same kernels and the same loading code, so
# every server computes the same scores from the same file.
KSERVE_REQUIREMENTS = (
    "kserve==0.21.0",
    "tensorflow==2.21.0",
    "keras==3.15.1",
)
MLSERVER_REQUIREMENTS = (
    "mlserver==1.7.1",
    "tensorflow==2.21.0",
    "keras==3.15.1",
    "pandas<3",  # mlserver 1.7.1 predates pandas 3 and does not bound it
    # uvloop 0.22 (2025-10) breaks mlserver 1.7.1's inference workers: "There is no current
    # event loop" in Worker._ignore_signals, every worker dies, the model never loads
    # (SeldonIO/MLServer#2286; the fix, #2285, is unreleased). The known workaround:
    "uvloop<0.22",
)
# MLServer's adaptive batching with batching=True: bench/online_server.py's Loopline settings
# (max_batch_size 64 rows, max_queue_delay 2 ms); MLServer counts requests, of one row each
# in the benchmark.
MLSERVER_MAX_BATCH_SIZE = 64
MLSERVER_MAX_BATCH_TIME_S = 0.002
KSERVE_BATCHING = (
    "KServe's model server has no batching for the v2 protocol: its batcher is a sidecar "
    "container of an InferenceService (predictor.batcher), for v1 HTTP only"
)


# ---------------------------------------------------------------------------- venvs
def ensure_kserve_venv() -> Path:
    """bench/.venv-kserve's python; built once with uv (a stamp file records the pins)."""
    return _ensure_venv(KSERVE_VENV, KSERVE_REQUIREMENTS, "KServe")


def ensure_mlserver_venv() -> Path:
    """bench/.venv-mlserver's python; built once with uv (a stamp file records the pins)."""
    return _ensure_venv(MLSERVER_VENV, MLSERVER_REQUIREMENTS, "MLServer")


def install_seconds(venv: Path) -> float | None:
    """How long the venv's last build took (None: not built by this module)."""
    try:
        return float((venv / INSTALL_SECONDS).read_text())
    except (OSError, ValueError):
        return None


def _ensure_venv(venv: Path, requirements: tuple[str, ...], label: str) -> Path:
    python = venv / "bin" / "python"
    wanted = "\n".join(requirements)
    stamp = venv / STAMP
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    print(f"creating the {label} benchmark venv ({venv.name})...", file=sys.stderr, flush=True)
    started, uv = time.perf_counter(), _uv()
    _run([*uv, "venv", "--quiet", "--clear", "--python", _base_python(), str(venv)])
    _run([*uv, "pip", "install", "--quiet", "--python", str(python), *requirements])
    seconds = time.perf_counter() - started
    stamp.write_text(wanted)
    (venv / INSTALL_SECONDS).write_text(f"{seconds:.1f}")
    print(f"{label} benchmark venv ready in {seconds:.0f} s", file=sys.stderr, flush=True)
    return python


def _run(command: list[str]) -> None:
    """Run `command`; on failure raise with the command and the tail of what it said."""
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        said = (done.stderr.strip() or done.stdout.strip())[-1500:]
        raise RuntimeError(f"`{' '.join(command)}` failed (exit {done.returncode}): {said}")


def _base_python() -> str:
    """The interpreter behind this one (a venv's python is no base for another venv)."""
    return getattr(sys, "_base_executable", None) or sys.executable


def _uv() -> list[str]:
    """uv where the Makefile puts it (the base interpreter), else in this one, else on PATH."""
    for python in (_base_python(), sys.executable, "python3"):
        probe = subprocess.run([python, "-m", "uv", "--version"], capture_output=True)
        if probe.returncode == 0:
            return [python, "-m", "uv"]
    found = shutil.which("uv")
    if found is None:
        raise RuntimeError("uv not found: `python3.11 -m pip install uv` (as `make install` does)")
    return [found]


# ---------------------------------------------------------------------------- servers
def start_kserve(
    model_dir: Path,
    name: str,
    features: dict[str, list[str]],
    http_port: int,
    grpc_port: int,
    batching: bool = False,
    *,
    quiet: bool = True,
) -> subprocess.Popen[bytes]:
    """KServe's ModelServer (1 worker) serving `model_dir` as `name`, REST + gRPC on HOST.

    batching=True raises ValueError: KServe has no v2 batching (``KSERVE_BATCHING``)."""
    if batching:
        raise ValueError(KSERVE_BATCHING)
    python = ensure_kserve_venv()
    run = _run_dir(KSERVE_VENV, name, http_port)
    config = {
        "model_dir": str(Path(model_dir).resolve()),
        "name": name,
        "numeric": list(features["numeric"]),
        "categorical": list(features["categorical"]),
        "host": HOST,
        "http_port": http_port,
        "grpc_port": grpc_port,
        "quiet": quiet,
    }
    (run / "config.json").write_text(json.dumps(config, indent=2))
    env = _peer_env(KSERVE_VENV)
    env["KSERVE_LOGLEVEL"] = "WARNING" if quiet else "INFO"
    command = [str(python), str(MODELS / "kserve_server.py"), str(run / "config.json")]
    return _spawn(command, run, env)


def start_mlserver(
    model_dir: Path,
    name: str,
    features: dict[str, list[str]],
    http_port: int,
    grpc_port: int,
    batching: bool = False,
    *,
    quiet: bool = True,
    parallel_workers: int = 1,
    metrics_port: int | None = None,
    max_batch_size: int = MLSERVER_MAX_BATCH_SIZE,
    max_batch_time_s: float = MLSERVER_MAX_BATCH_TIME_S,
) -> subprocess.Popen[bytes]:
    """``mlserver start`` on a folder holding settings.json and the model's folder
    (model-settings.json + the runtime), serving `model_dir` as `name` on HOST.

    batching=True: MLServer's adaptive batching (max_batch_size requests, max_batch_time_s).
    parallel_workers: MLServer's own setting (default 1: inference in one worker process;
    0: in the server's process, on its event loop). metrics_port: a free one if None."""
    ensure_mlserver_venv()
    run = _run_dir(MLSERVER_VENV, name, http_port)
    if metrics_port is None:
        (metrics_port,) = free_ports(1, avoid={http_port, grpc_port})
    settings = {
        "debug": not quiet,
        "host": HOST,
        "http_port": http_port,
        "grpc_port": grpc_port,
        "metrics_port": metrics_port,
        "parallel_workers": parallel_workers,
        "metrics_dir": str(run / ".metrics"),
        "environments_dir": str(run / ".envs"),
    }
    (run / "settings.json").write_text(json.dumps(settings, indent=2))
    folder = run / name
    folder.mkdir()
    shutil.copy(MODELS / "mlserver_runtime.py", folder / "loopline_keras_runtime.py")
    model_settings: dict[str, Any] = {
        "name": name,
        "implementation": "loopline_keras_runtime.LooplineKeras",
        "parameters": {
            "uri": str(Path(model_dir).resolve()),
            "extra": {
                "numeric": list(features["numeric"]),
                "categorical": list(features["categorical"]),
            },
        },
    }
    if batching:
        model_settings |= {"max_batch_size": max_batch_size, "max_batch_time": max_batch_time_s}
    (folder / "model-settings.json").write_text(json.dumps(model_settings, indent=2))
    command = [str(MLSERVER_VENV / "bin" / "mlserver"), "start", str(run)]
    return _spawn(command, run, _peer_env(MLSERVER_VENV))


def describe(peer: str, batching: bool = False) -> str:
    """One line on how a peer serves, for a benchmark's table."""
    if peer == "kserve":
        return (
            "kserve 0.21.0: ModelServer workers=1, predict -> asyncio.to_thread on the "
            "default executor (min(32, cores+4) threads), no v2 batching, per-request logs off"
        )
    if peer == "mlserver":
        batch = (
            f"adaptive batching {MLSERVER_MAX_BATCH_SIZE} requests / "
            f"{MLSERVER_MAX_BATCH_TIME_S * 1000:g} ms"
            if batching
            else "no batching"
        )
        return (
            f"mlserver 1.7.1: parallel_workers=1 (inference in 1 worker process), {batch}, "
            "metrics on, debug off (no access logs)"
        )
    raise ValueError(f"unknown peer {peer!r}")


def wait_ready(
    http_url: str, name: str, timeout: float = 180.0, process: subprocess.Popen[Any] | None = None
) -> float:
    """Poll GET {http_url}/v2/models/{name}/ready until 200; the seconds it took. Raises
    TimeoutError, or RuntimeError at once if `process` (given) has exited, with its log."""
    url = f"{http_url.rstrip('/')}/v2/models/{name}/ready"
    started = time.perf_counter()
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return time.perf_counter() - started
        except (urllib.error.URLError, OSError):  # HTTPError (4xx/5xx) is a URLError
            pass
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"{name} server exited ({process.returncode}) before ready: {log_tail(process)}"
            )
        if time.perf_counter() - started > timeout:
            tail = log_tail(process) if process is not None else ""
            raise TimeoutError(f"{url} not ready within {timeout:.0f} s {tail}")
        time.sleep(0.2)


def stop(process: subprocess.Popen[Any], grace: float = 20.0) -> None:
    """SIGTERM to the server's process group (its workers too), SIGKILL after `grace` s."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    with contextlib.suppress(ProcessLookupError):  # a worker that outlived its parent
        os.killpg(process.pid, signal.SIGKILL)


def log_tail(process: subprocess.Popen[Any], chars: int = 2000) -> str:
    path = getattr(process, "log_path", None)
    if path is None:
        return ""
    try:
        return Path(path).read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def free_ports(count: int, avoid: set[int] | None = None) -> list[int]:
    """`count` distinct free ports on HOST (all bound at once, so none repeats)."""
    sockets: list[socket.socket] = []
    try:
        ports: list[int] = []
        while len(ports) < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((HOST, 0))
            port = sock.getsockname()[1]
            if port not in (avoid or set()):
                ports.append(port)
        return ports
    finally:
        for sock in sockets:
            sock.close()


def _run_dir(venv: Path, name: str, http_port: int) -> Path:
    """A fresh folder for one start's settings and log (inside the venv: git ignores it)."""
    run = venv / "runs" / f"{name}-{http_port}"
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    return run


def _peer_env(venv: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _spawn(command: list[str], run: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    log_path = run / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command,
            cwd=run,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    process.log_path = log_path  # type: ignore[attr-defined]
    return process


# ---------------------------------------------------------------------------- the check
CHECK_ROWS = 64
ATOL = 1e-5
SPEC_FILE = PROJECT_ROOT / "include" / "pipelines" / "card_fraud.yaml"
INFER_METHOD = "/inference.GRPCInferenceService/ModelInfer"


def check(peers: list[str], train_rows: int = 4000) -> dict[str, Any]:
    """Build each peer's venv, serve a freshly trained demo model, score CHECK_ROWS rows over
    REST (one request, and 8 concurrent one-row requests) and gRPC (raw tensors, as the
    benchmark sends them), and compare with the model's own scores (served_scores) to ATOL."""
    import tempfile

    from loopline.demo.card_transactions import generate
    from loopline.serving.artifacts import compiled, load_model, save_artifacts
    from loopline.serving.inputs import served_scores
    from loopline.spec import load_spec
    from loopline.training.trainer import train_model

    spec = load_spec(SPEC_FILE)
    features = {"numeric": list(spec.model.features.numeric),
                "categorical": list(spec.model.features.categorical)}  # fmt: skip
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="loopline-peers-check-") as work:
        model_dir = Path(work) / "model"
        outcome = train_model(generate(train_rows, seed=3), spec.model, spec.training, epochs=1)
        save_artifacts(outcome.model, model_dir)
        table = generate(CHECK_ROWS, seed=11)
        expected = served_scores(compiled(load_model(model_dir)), table, spec.model)
        rows = table.select(spec.model.features.all).to_pylist()
        for peer in peers:
            ensure = ensure_kserve_venv if peer == "kserve" else ensure_mlserver_venv
            venv = KSERVE_VENV if peer == "kserve" else MLSERVER_VENV
            entry: dict[str, Any] = {}
            report[peer] = entry
            started = time.perf_counter()
            try:
                ensure()
            except Exception as exc:  # reported, and the other peer still checked
                entry["install"] = f"failed: {exc}"
                continue
            entry["ensure_seconds"] = round(time.perf_counter() - started, 1)
            entry["install_seconds"] = install_seconds(venv)
            for batching in [False] if peer == "kserve" else [False, True]:
                mode = "batching" if batching else "plain"
                entry[mode] = _check_one(peer, model_dir, features, rows, expected, batching)
    return report


def _check_one(
    peer: str,
    model_dir: Path,
    features: dict[str, list[str]],
    rows: list[dict[str, Any]],
    expected: Any,
    batching: bool,
) -> dict[str, Any]:
    import asyncio

    import httpx
    import numpy as np

    http_port, grpc_port = free_ports(2)
    start = start_kserve if peer == "kserve" else start_mlserver
    started = time.perf_counter()
    process = start(model_dir, "card_fraud", features, http_port, grpc_port, batching=batching)
    result: dict[str, Any] = {"log": str(process.log_path)}  # type: ignore[attr-defined]
    url = f"http://{HOST}:{http_port}"
    try:
        wait_ready(url, "card_fraud", 300, process=process)
        result["startup_seconds"] = round(time.perf_counter() - started, 1)
        result["listening"] = _listening({http_port, grpc_port})
        infer = f"{url}/v2/models/card_fraud/infer"
        body = _rest_body(features, rows, "check")
        answer = httpx.post(infer, json=body, timeout=60)
        answer.raise_for_status()
        got = _rest_scores(answer.json())
        result["rest_max_diff"] = float(np.max(np.abs(got - expected)))
        result["rest_id_echoed"] = answer.json().get("id") == "check"

        async def one_row_each() -> Any:
            async with httpx.AsyncClient(timeout=60) as client:
                calls = [client.post(infer, json=_rest_body(features, [row], f"r{i}"))
                         for i, row in enumerate(rows[:8])]  # fmt: skip
                return await asyncio.gather(*calls)

        answers = asyncio.run(one_row_each())
        got = np.concatenate([_rest_scores(a.raise_for_status().json()) for a in answers])
        result["rest_one_row_max_diff"] = float(np.max(np.abs(got - expected[:8])))
        got = _grpc_scores(f"{HOST}:{grpc_port}", features, rows)
        result["grpc_max_diff"] = float(np.max(np.abs(got - expected)))
        worst = max(result[k] for k in ("rest_max_diff", "rest_one_row_max_diff", "grpc_max_diff"))
        loopback = ("127.0.0.1:", "::ffff:127.0.0.1:")  # gRPC: a v4-mapped dual-stack socket
        only_local = all(addr.startswith(loopback) for addr in result["listening"])
        result["ok"] = bool(worst <= ATOL and result["rest_id_echoed"] and only_local)
    except Exception as exc:
        result["ok"] = False
        result["error"] = f"{type(exc).__name__}: {str(exc)[:1500]}"
    finally:
        stopping = time.perf_counter()
        stop(process)
        result["stop_seconds"] = round(time.perf_counter() - stopping, 1)
        result["group_gone"] = _group_gone(process.pid)
    return result


def _rest_body(features: dict[str, list[str]], rows: list[dict[str, Any]], rid: str) -> dict:
    """A v2 request as loopline.commands.stream.v2_request builds it (shape [rows])."""
    inputs = [{"name": n, "datatype": "FP32", "shape": [len(rows)],
               "data": [float(r[n]) for r in rows]} for n in features["numeric"]]  # fmt: skip
    inputs += [{"name": n, "datatype": "BYTES", "shape": [len(rows)],
                "data": [str(r[n]) for r in rows]} for n in features["categorical"]]  # fmt: skip
    return {"id": rid, "inputs": inputs}


def _rest_scores(answer: dict[str, Any]) -> Any:
    import numpy as np

    (score,) = [o for o in answer["outputs"] if o["name"] == "score"]
    if score["datatype"] != "FP32" or len(score["shape"]) != 1:
        raise AssertionError(f"score is {score['datatype']} {score['shape']}, not FP32 [rows]")
    return np.asarray(score["data"], dtype=np.float32).reshape(-1)


def _grpc_scores(target: str, features: dict[str, list[str]], rows: list[dict]) -> Any:
    """One ModelInfer with raw_input_contents, as bench/online_serving.py sends them."""
    import grpc
    import numpy as np
    from loopline.serving.grpc_v2 import messages

    request = messages["ModelInferRequest"](model_name="card_fraud", id="grpc-check")
    for name in features["numeric"]:
        request.inputs.add(name=name, datatype="FP32", shape=[len(rows)])
        values = np.asarray([r[name] for r in rows], dtype=np.float32)
        request.raw_input_contents.append(values.tobytes())
    for name in features["categorical"]:
        request.inputs.add(name=name, datatype="BYTES", shape=[len(rows)])
        texts = [str(r[name]).encode() for r in rows]
        request.raw_input_contents.append(b"".join(len(t).to_bytes(4, "little") + t for t in texts))
    with grpc.insecure_channel(target) as channel:
        raw = channel.unary_unary(INFER_METHOD)(request.SerializeToString(), timeout=60)
    response = messages["ModelInferResponse"].FromString(raw)
    (index,) = [i for i, o in enumerate(response.outputs) if o.name == "score"]
    output = response.outputs[index]
    if list(output.shape) != [len(rows)] or output.datatype != "FP32":
        raise AssertionError(f"gRPC score is {output.datatype} {list(output.shape)}")
    if response.raw_output_contents:
        return np.frombuffer(response.raw_output_contents[index], dtype="<f4")
    return np.asarray(output.contents.fp32_contents, dtype=np.float32)


def _listening(ports: set[int]) -> list[str]:
    """Local addresses listening on `ports` (from /proc/net/tcp and tcp6)."""
    found = []
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, port_hex = fields[1].split(":")
            if fields[3] != "0A" or int(port_hex, 16) not in ports:  # 0A: LISTEN
                continue
            found.append(f"{_address(address, width)}:{int(port_hex, 16)}")
    return sorted(set(found))


def _address(hex_address: str, width: int) -> str:
    raw = bytes.fromhex(hex_address)
    if width == 8:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return socket.inet_ntop(socket.AF_INET6, words)


def _group_gone(pgid: int, wait: float = 5.0) -> bool:
    """Whether no process of the group is left (a SIGKILLed one takes a moment to go)."""
    deadline = time.perf_counter() + wait
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        if time.perf_counter() > deadline:
            return False
        time.sleep(0.1)


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="build, serve, score, compare")
    parser.add_argument("--peers", default="kserve,mlserver", help="comma-separated")
    args = parser.parse_args(argv)
    if not args.check:
        parser.print_help()
        return 2
    report = check([p.strip() for p in args.peers.split(",") if p.strip()])
    for peer, entry in report.items():
        print(f"{peer}: {describe(peer)}")
        for mode, result in entry.items():
            print(f"  {mode}: {result}")
    ok = all(
        "install" not in entry
        and all(entry[mode]["ok"] for mode in ("plain", "batching") if mode in entry)
        for entry in report.values()
    )
    print("SERVING_PEERS_CHECK " + json.dumps({"ok": ok, **report}), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Online scoring: Loopline's endpoint against its floor and the servers users would pick.

One run, the same two cores, the same Keras champion (trained here on 20k demo rows), the same
requests (one row of the demo's 32 features each, as a fraud check scores one transaction),
the same load generator (asyncio in this process: aiohttp for REST with keep-alive, one
grpc.aio channel for gRPC, as tritonclient and kserve's clients do):
- closed loop at 1, 8 and 64 concurrent clients: throughput and latency p50/p99;
- open loop at fixed rates (latency from each request's scheduled time, so a slow server
  cannot hide its queue: no coordinated omission).

Contenders, each a server process of its own:
- floor: Loopline's endpoint answering 0.5 without the model (the protocol's own cost);
- Loopline: the endpoint with adaptive batching (64 rows, 2 ms), and without (one request per
  model call);
- KServe's Python ModelServer and Seldon MLServer with their documented custom-model API, each
  in its own virtualenv (bench/serving_peers.py), where they can be installed here.

Goals (issue 22): throughput at 64 clients >= 1.5x the better peer and >= 5x Loopline without
batching; p50 <= floor + 5 ms and p99 <= 1.5x the floor at every rate the floor sustains.

Two failure drills, REST: two rolls (load, compile, warm up, switch in place) at 500 requests/s,
open loop, against the floor at the same rate (goal: no failed request, p99 <= 2x the floor);
kill -9 of one of two replicas sharing one address under 16 keep-alive clients that retry a
failed call once (goal: no request lost).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import Comparison

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SPEC_FILE = PROJECT_ROOT / "include" / "pipelines" / "card_fraud.yaml"
CONCURRENCY = (1, 8, 64)
RATES = (50, 200, 400)  # requests per second, open loop
DURATION_S = 4.0
WARMUP_S = 1.5
REQUESTS = 512  # distinct one-row requests, cycled
INFER_METHOD = "/inference.GRPCInferenceService/ModelInfer"


@dataclass
class Point:
    """One load level's outcome."""

    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")


@dataclass(frozen=True)
class Server:
    name: str
    http: str  # host:port
    grpc: str
    model: str
    pid: int = 0  # Loopline's servers: the process, for a roll (SIGUSR1) or kill -9


# ---------------------------------------------------------------------------- requests
def request_rows(spec: Any, count: int) -> list[dict[str, Any]]:
    from loopline.demo.card_transactions import generate

    return generate(count, seed=11).select(spec.model.features.all).to_pylist()


def rest_bodies(spec: Any, rows: list[dict[str, Any]]) -> list[bytes]:
    from loopline.commands.stream import v2_request

    return [json.dumps(v2_request(spec, [row], f"b{i}")).encode() for i, row in enumerate(rows)]


def grpc_requests(spec: Any, rows: list[dict[str, Any]], model: str) -> list[bytes]:
    """Serialized ModelInferRequests with raw inputs, as tritonclient sends them."""
    from loopline.serving.grpc_v2 import messages

    request_type = messages["ModelInferRequest"]
    built = []
    for i, row in enumerate(rows):
        request = request_type(model_name=model, id=f"g{i}")
        for name in spec.model.features.numeric:
            request.inputs.add(name=name, datatype="FP32", shape=[1])
            request.raw_input_contents.append(np.float32(row[name]).tobytes())
        for name in spec.model.features.categorical:
            text = str(row[name]).encode()
            request.inputs.add(name=name, datatype="BYTES", shape=[1])
            request.raw_input_contents.append(len(text).to_bytes(4, "little") + text)
        built.append(request.SerializeToString())
    return built


# ---------------------------------------------------------------------------- load
async def _rest_caller(server: Server, bodies: list[bytes], clients: int) -> Any:
    import aiohttp

    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=clients, force_close=False),
        timeout=aiohttp.ClientTimeout(total=30),
    )
    url = f"http://{server.http}/v2/models/{server.model}/infer"
    headers = {"Content-Type": "application/json"}

    async def call(index: int) -> bool:
        body = bodies[index % len(bodies)]
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
            return response.status == 200

    return session, call


async def _grpc_caller(server: Server, requests: list[bytes], clients: int) -> Any:
    import grpc

    channel = grpc.aio.insecure_channel(server.grpc)
    infer = channel.unary_unary(INFER_METHOD)  # bytes in, bytes out

    async def call(index: int) -> bool:
        try:
            await infer(requests[index % len(requests)], timeout=30)
        except grpc.aio.AioRpcError:
            return False
        return True

    return channel, call


async def closed_loop(make: Callable[..., Any], clients: int) -> Point:
    """`clients` callers, each sending its next request when the last one is answered."""
    handle, call = await make(clients)
    point, counter = Point(), iter(range(10**9))
    started = time.perf_counter()
    measure_from, stop_at = started + WARMUP_S, started + WARMUP_S + DURATION_S

    async def client() -> None:
        while (now := time.perf_counter()) < stop_at:
            ok = await call(next(counter))
            if now >= measure_from:
                point.requests += 1
                point.errors += not ok
                point.latencies_ms.append((time.perf_counter() - now) * 1000)

    await asyncio.gather(*(client() for _ in range(clients)))
    point.seconds = DURATION_S
    await handle.close()
    return point


async def open_loop(make: Callable[..., Any], rate: int) -> Point:
    """Requests at `rate` per second on a fixed schedule; latency from the scheduled time."""
    handle, call = await make(256)
    point = Point()
    start = time.perf_counter() + 0.2
    total = int(rate * (WARMUP_S + DURATION_S))
    warm = int(rate * WARMUP_S)

    async def one(index: int) -> None:
        due = start + index / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        ok = await call(index)
        if index >= warm:
            point.requests += 1
            point.errors += not ok
            point.latencies_ms.append((time.perf_counter() - due) * 1000)

    await asyncio.gather(*(one(i) for i in range(total)))
    point.seconds = DURATION_S
    await handle.close()
    return point


def measure(server: Server, bodies: list[bytes], grpc_bodies: list[bytes]) -> dict[str, Point]:
    """Every load level against one server: '<protocol> c<clients>' and '<protocol> r<rate>'."""
    makers = {
        "rest": lambda clients: _rest_caller(server, bodies, clients),
        "grpc": lambda clients: _grpc_caller(server, grpc_bodies, clients),
    }
    points = {}
    for protocol, make in makers.items():
        for clients in CONCURRENCY:
            points[f"{protocol} c{clients}"] = asyncio.run(closed_loop(make, clients))
        for rate in RATES:
            points[f"{protocol} r{rate}"] = asyncio.run(open_loop(make, rate))
    return points


# ---------------------------------------------------------------------------- servers
def free_ports(count: int) -> list[int]:
    from loopline.stack.config import free_ports as pick

    return pick(count)


@contextmanager
def loopline_server(
    model_dir: Path, name: str, *flags: str, ports: tuple[int, int] | None = None
) -> Iterator[Server]:
    http, grpc_port = ports or free_ports(2)
    command = [sys.executable, str(PROJECT_ROOT / "bench" / "online_server.py"), "--model-dir",
               str(model_dir), "--spec", str(SPEC_FILE), "--http-port", str(http),
               "--grpc-port", str(grpc_port), *flags]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "include")}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True,
                               stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        line = process.stdout.readline() if process.stdout else ""
        if "READY" not in line:
            raise RuntimeError(f"{name} did not start (exit {process.poll()})")
        yield Server(name, f"127.0.0.1:{http}", f"127.0.0.1:{grpc_port}", "card_fraud",
                     process.pid)  # fmt: skip
    finally:
        _stop(process)


@contextmanager
def peer_server(peer: str, model_dir: Path, spec: Any, batching: bool) -> Iterator[Server]:
    import bench.serving_peers as peers

    http, grpc_port = free_ports(2)
    features = {"numeric": spec.model.features.numeric,
                "categorical": spec.model.features.categorical}  # fmt: skip
    start = peers.start_kserve if peer == "kserve" else peers.start_mlserver
    process = start(model_dir, "card_fraud", features, http, grpc_port, batching=batching)
    try:
        peers.wait_ready(f"http://127.0.0.1:{http}", "card_fraud", 300, process)
        yield Server(peer, f"127.0.0.1:{http}", f"127.0.0.1:{grpc_port}", "card_fraud")
    finally:
        peers.stop(process)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:  # killed by a drill
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(process.pid, signal.SIGKILL)


def available_peers() -> dict[str, str]:
    """The peers that install here, or why not (`bench/serving_peers.py` builds their venvs)."""
    found = {}
    try:
        import bench.serving_peers as peers
    except ImportError as exc:
        return {"kserve": f"not available: {exc}", "mlserver": f"not available: {exc}"}
    for name, ensure in (("kserve", peers.ensure_kserve_venv),
                         ("mlserver", peers.ensure_mlserver_venv)):  # fmt: skip
        try:
            ensure()
            found[name] = "ok"
        except Exception as exc:  # a peer that cannot be installed is reported, not fatal
            found[name] = f"not installed: {str(exc)[:200]}"
    return found


def trained_model(work: Path, spec: Any) -> Path:
    from loopline.demo.card_transactions import generate
    from loopline.serving.artifacts import save_artifacts
    from loopline.training.trainer import train_model

    outcome = train_model(generate(20_000, seed=3), spec.model, spec.training, epochs=1)
    folder = work / "model"
    save_artifacts(outcome.model, folder)
    return folder


# ---------------------------------------------------------------------------- spread
SPREAD_CLIENTS = 16
SPREAD_CALLS = 20


async def _versions_over_keep_alive(url: str, body: bytes) -> list[str]:
    """Each of SPREAD_CLIENTS keep-alive clients: the replica (version) its calls reached."""
    import aiohttp

    async def one_client() -> str:
        connector = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(connector=connector) as session:
            seen = set()
            for _ in range(SPREAD_CALLS):
                async with session.post(url, data=body) as response:
                    seen.add((await response.json())["model_version"])
            return "+".join(sorted(seen))

    return list(await asyncio.gather(*(one_client() for _ in range(SPREAD_CLIENTS))))


async def _versions_per_connection(url: str, body: bytes, calls: int) -> list[str]:
    import aiohttp

    connector = aiohttp.TCPConnector(force_close=True)  # a new connection for every call
    async with aiohttp.ClientSession(connector=connector) as session:
        found = []
        for _ in range(calls):
            async with session.post(url, data=body) as response:
                found.append((await response.json())["model_version"])
        return found


async def _versions_over_grpc(address: str, request: bytes) -> list[str]:
    import grpc
    from loopline.serving.grpc_v2 import messages

    response_type = messages["ModelInferResponse"]

    async def one_channel() -> str:
        # a subchannel pool of its own: as a separate client process would have (channels of
        # one process share connections by default)
        options = [("grpc.use_local_subchannel_pool", 1)]
        async with grpc.aio.insecure_channel(address, options=options) as channel:
            infer = channel.unary_unary(INFER_METHOD)
            seen = {response_type.FromString(await infer(request)).model_version
                    for _ in range(SPREAD_CALLS)}  # fmt: skip
            return "+".join(sorted(seen))

    return list(await asyncio.gather(*(one_channel() for _ in range(SPREAD_CLIENTS))))


def spread(model_dir: Path, body: bytes, request: bytes) -> dict[str, dict[str, int]]:
    """Two replicas on one address (SO_REUSEPORT), told apart by the version they answer:
    how the kernel spreads keep-alive HTTP clients, new connections and gRPC channels."""
    from collections import Counter

    ports = http, grpc_port = tuple(free_ports(2))
    first = loopline_server(model_dir, "replica-1", "--floor", "--version", "1", ports=ports)
    second = loopline_server(model_dir, "replica-2", "--floor", "--version", "2", ports=ports)
    with first, second:
        url = f"http://127.0.0.1:{http}/v2/models/card_fraud/infer"
        keep_alive = asyncio.run(_versions_over_keep_alive(url, body))
        per_call = asyncio.run(_versions_per_connection(url, body, 200))
        channels = asyncio.run(_versions_over_grpc(f"127.0.0.1:{grpc_port}", request))
    return {
        f"{SPREAD_CLIENTS} keep-alive HTTP clients": dict(Counter(keep_alive)),
        "200 HTTP calls, a connection each": dict(Counter(per_call)),
        f"{SPREAD_CLIENTS} gRPC channels": dict(Counter(channels)),
    }


# ---------------------------------------------------------------------------- drills
ROLL_RATE = 500  # requests per second during the rolls
KILL_CLIENTS = 16


async def _rolled_at(make: Callable[..., Any], pid: int, rolls: int) -> Point:
    """The open loop at ROLL_RATE with `rolls` rolls spread over its measured seconds."""
    loop = asyncio.get_running_loop()
    for i in range(rolls):
        loop.call_later(WARMUP_S + 0.2 + i * DURATION_S / rolls, os.kill, pid, signal.SIGUSR1)
    return await open_loop(make, ROLL_RATE)


async def _answered_version(server: Server, body: bytes) -> str:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        url = f"http://{server.http}/v2/models/{server.model}/infer"
        async with session.post(url, data=body) as response:
            return (await response.json())["model_version"]


def roll_under_load(model_dir: Path, bodies: list[bytes]) -> dict[str, Any]:
    """Two rolls of Loopline's endpoint at ROLL_RATE against the floor at the same rate."""
    with loopline_server(model_dir, "floor", "--floor") as floor:
        base = asyncio.run(open_loop(lambda c: _rest_caller(floor, bodies, c), ROLL_RATE))
    with loopline_server(model_dir, "loopline") as ours:
        rolled = asyncio.run(_rolled_at(lambda c: _rest_caller(ours, bodies, c), ours.pid, 2))
        time.sleep(2)  # the second roll's model is loaded and switched to
        version = asyncio.run(_answered_version(ours, bodies[0]))
    return {"floor": base, "rolled": rolled, "version after": version}


async def _retrying_clients(server: Server, bodies: list[bytes], kill_pid: int) -> dict:
    """KILL_CLIENTS keep-alive clients, each retrying a failed call once; one replica is
    killed (SIGKILL) after WARMUP_S."""
    import aiohttp

    counts = {"requests": 0, "retried": 0, "lost": 0}
    url = f"http://{server.http}/v2/models/{server.model}/infer"
    stop_at = time.perf_counter() + WARMUP_S + DURATION_S
    asyncio.get_running_loop().call_later(WARMUP_S, os.kill, kill_pid, signal.SIGKILL)

    async def post(session: aiohttp.ClientSession, body: bytes) -> bool:
        try:
            async with session.post(url, data=body) as response:
                await response.read()
                return response.status == 200
        except (TimeoutError, aiohttp.ClientError):
            return False

    async def client(index: int) -> None:
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while time.perf_counter() < stop_at:
                body = bodies[counts["requests"] % len(bodies)]
                counts["requests"] += 1
                if await post(session, body):
                    continue
                counts["retried"] += 1
                counts["lost"] += not await post(session, body)

    await asyncio.gather(*(client(i) for i in range(KILL_CLIENTS)))
    return counts


def kill_one_of_two(model_dir: Path, bodies: list[bytes]) -> dict[str, int]:
    """Two replicas with the model on one address (SO_REUSEPORT); kill -9 one under load."""
    ports = tuple(free_ports(2))
    first = loopline_server(model_dir, "replica-1", ports=ports)
    second = loopline_server(model_dir, "replica-2", "--version", "2", ports=ports)
    with first as victim, second as survivor:
        counts = asyncio.run(_retrying_clients(survivor, bodies, victim.pid))
    return counts


# ---------------------------------------------------------------------------- the run
def run() -> list[Comparison]:
    from loopline.spec import load_spec

    spec = load_spec(SPEC_FILE)
    rows = request_rows(spec, REQUESTS)
    bodies, grpc_bodies = rest_bodies(spec, rows), grpc_requests(spec, rows, "card_fraud")
    results: dict[str, dict[str, Point]] = {}
    peers = available_peers()
    with tempfile.TemporaryDirectory() as work:
        model_dir = trained_model(Path(work), spec)
        contenders: list[tuple[str, Callable[[], Any]]] = [
            ("floor", lambda: loopline_server(model_dir, "floor", "--floor")),
            ("loopline", lambda: loopline_server(model_dir, "loopline")),
            ("loopline unbatched", lambda: loopline_server(model_dir, "unbatched",
                                                           "--no-batching")),
        ]  # fmt: skip
        for peer, state in peers.items():
            if state != "ok":
                continue
            contenders.append((peer, lambda p=peer: peer_server(p, model_dir, spec, False)))
            if peer == "mlserver":  # KServe has no v2 batching (a v1-only sidecar)
                batched = lambda: peer_server("mlserver", model_dir, spec, True)  # noqa: E731
                contenders.append(("mlserver batched", batched))
        for name, start in contenders:
            with start() as server:
                print(f"   {name}: measuring", flush=True)
                results[name] = measure(server, bodies, grpc_bodies)
        spreads = spread(model_dir, bodies[0], grpc_bodies[0])
        rolls = roll_under_load(model_dir, bodies)
        killed = kill_one_of_two(model_dir, bodies)
    print_table(results, peers)
    print("   two replicas on one address (SO_REUSEPORT), clients per replica version:")
    for what, counts in spreads.items():
        print(f"     {what}: {dict(sorted(counts.items()))}")
    return comparisons(results) + drills(rolls, killed)


def drills(rolls: dict[str, Any], killed: dict[str, int]) -> list[Comparison]:
    rolled, floor = rolls["rolled"], rolls["floor"]
    print(f"   two rolls at {ROLL_RATE}/s: {rolled.requests} requests, {rolled.errors} failed, "
          f"p50 {rolled.percentile(50):.1f} ms, p99 {rolled.percentile(99):.1f} ms (floor "
          f"{floor.percentile(50):.1f} / {floor.percentile(99):.1f} ms); answering version "
          f"{rolls['version after']} after (3 expected)")  # fmt: skip
    print(f"   kill -9 of one of two replicas under {KILL_CLIENTS} clients retrying once: "
          f"{killed['requests']} requests, {killed['retried']} retried, {killed['lost']} lost "
          "(goal 0)")  # fmt: skip
    p99, floor_p99 = rolled.percentile(99), floor.percentile(99)
    note = f"errors {rolled.errors} (goal 0); p99 {p99 / floor_p99:.2f}x floor (goal <= 2)"
    level = f"rest r{ROLL_RATE} p99, two rolls"
    return [
        Comparison("online_serving", level, "floor p99", [p99 / 1000], [floor_p99 / 1000], note)
    ]


def print_table(results: dict[str, dict[str, Point]], peers: dict[str, str]) -> None:
    levels = list(next(iter(results.values())))
    print(f"   {'level':10} " + " ".join(f"{name:>26}" for name in results))
    for level in levels:
        cells = []
        for points in results.values():
            p = points[level]
            cells.append(f"{p.throughput:7.0f}/s {p.percentile(50):6.1f} {p.percentile(99):7.1f}"
                         + ("!" if p.errors else " "))  # fmt: skip
        print(f"   {level:10} " + " ".join(f"{cell:>26}" for cell in cells))
    print("   (each cell: throughput, p50 ms, p99 ms; ! = errors)")
    for peer, state in peers.items():
        if state != "ok":
            print(f"   {peer}: {state}")


def comparisons(results: dict[str, dict[str, Point]]) -> list[Comparison]:
    out = []
    ours, floor, unbatched = results["loopline"], results["floor"], results["loopline unbatched"]
    peer_names = [n for n in results if n.startswith(("kserve", "mlserver"))]
    for protocol in ("rest", "grpc"):
        level = f"{protocol} c64"
        best = max(peer_names, key=lambda n: results[n][level].throughput, default=None)
        note = (
            f"vs unbatched: {ours[level].throughput / unbatched[level].throughput:.1f}x (goal >= 5)"
        )
        if best is not None:
            ratio = ours[level].throughput / results[best][level].throughput
            note += f"; vs {best}: {ratio:.2f}x (goal >= 1.5)"
        seconds_per_request = [1 / ours[level].throughput], [1 / floor[level].throughput]
        out.append(Comparison("online_serving", f"{level} throughput", "floor",
                              *seconds_per_request, note))  # fmt: skip
        for rate in RATES:
            level = f"{protocol} r{rate}"
            p50, f50 = ours[level].percentile(50), floor[level].percentile(50)
            p99, f99 = ours[level].percentile(99), floor[level].percentile(99)
            note = (f"p50 +{p50 - f50:.1f} ms (goal <= 5), p99 {p99 / f99:.2f}x floor "
                    f"(goal <= 1.5); errors {ours[level].errors}")  # fmt: skip
            out.append(Comparison("online_serving", f"{level} p99", "floor p99",
                                  [p99 / 1000], [f99 / 1000], note))  # fmt: skip
    return out


if __name__ == "__main__":
    for comparison in run():
        print(comparison.line())

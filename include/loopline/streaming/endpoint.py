"""A replica's online endpoint: the Open Inference Protocol v2 over REST and gRPC.

It runs beside the Kafka consumer in the same replica process, on an event loop of its own
thread, and scores with the same model: `switch_to` (called by the replica's version
follower) moves both to a new version between two batches, so a roll fails no request. Each
listening socket is opened with SO_REUSEPORT, so every replica of a pipeline on a host
listens on the same ports and the kernel spreads connections over them; a replica that stops
closes its listeners first and finishes the requests in hand.

Everything a caller sends is read by `loopline.serving.protocol`: the worst a request gets is
a 400 (gRPC INVALID_ARGUMENT) naming the fault, and the body is bounded before it is read.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loopline.serving.batching import AdaptiveBatcher, Scorer
from loopline.serving.protocol import (
    BadRequest,
    InferenceRequest,
    Limits,
    NotReady,
    Scored,
    TooLarge,
    internal_error,
    model_metadata,
    not_served_here,
    read_rest_request,
    rest_response,
    version_matches,
)
from loopline.spec.sections import ModelSpec, ServeSpec
from loopline.streaming.prediction_log import Logged, PredictionLog
from loopline.streaming.shadow import ShadowScorer

log = logging.getLogger(__name__)

LATENCY_WINDOW = 5000  # requests the latency percentiles are taken over
CONCURRENCY_SECONDS = 61  # Knative's stable window, and the second being counted
# Requests (REST connections, gRPC calls) one replica takes at once; beyond: 503 /
# RESOURCE_EXHAUSTED at once, instead of memory growing with every waiting body (each up to
# max_request_bytes). A client retries on another connection, maybe another replica.
MAX_CONCURRENT = 1024
SERVER_NAME = "loopline"
JSON_LENGTH_HEADER = "inference-header-content-length"


@dataclass
class RequestStats:
    """What the endpoint has done, for the heartbeat and the auto-scaler."""

    requests: int = 0
    rows: int = 0
    refused: int = 0  # 4xx: the caller's fault
    failed: int = 0  # 5xx: ours
    in_flight: int = 0
    # (when answered, ms from the request's arrival to its answer)
    latencies_ms: deque[tuple[float, float]] = field(
        default_factory=lambda: deque(maxlen=LATENCY_WINDOW)
    )
    # Knative's concurrency: requests in flight, time-weighted. Each second's area under the
    # in-flight curve (request-seconds), for the last 60 s; the current second's is open.
    areas: deque[tuple[int, float]] = field(
        default_factory=lambda: deque(maxlen=CONCURRENCY_SECONDS)
    )
    _changed_at: float = field(default_factory=time.time)
    # the endpoint's loop counts, the replica's heartbeat reads: from two threads
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def arrive(self) -> None:
        with self._lock:
            self._account(time.time())
            self.in_flight += 1
            self.requests += 1

    def leave(self, latency_ms: float) -> None:
        now = time.time()
        with self._lock:
            self._account(now)
            self.in_flight -= 1
            self.latencies_ms.append((now, latency_ms))

    def _account(self, now: float) -> None:
        """Add in_flight x elapsed time since the last change, second by second."""
        start, self._changed_at = self._changed_at, now
        while start < now:
            second = int(start)
            end = min(now, second + 1.0)
            area = self.in_flight * (end - start)
            if self.areas and self.areas[-1][0] == second:
                self.areas[-1] = (second, self.areas[-1][1] + area)
            else:
                self.areas.append((second, area))
            start = end

    def summary(self, batch_sizes: deque[int]) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "rows": self.rows,
            "refused": self.refused,
            "failed": self.failed,
            "in_flight": self.in_flight,
            "batch_rows_mean": float(np.mean(batch_sizes)) if batch_sizes else 0.0,
            "latency_ms": {
                "p50": self._percentile(50),
                "p99": self._percentile(99),
                "p99_60s": self._percentile(99, 60),
                "p99_6s": self._percentile(99, 6),
            },
            # Knative's windows: stable 60 s, panic 6 s
            "concurrency_60s": self._concurrency(60),
            "concurrency_6s": self._concurrency(6),
        }

    def _percentile(self, q: float, seconds: float | None = None) -> float | None:
        since = time.time() - seconds if seconds else 0.0
        values = [ms for at, ms in self.latencies_ms if at >= since]
        return round(float(np.percentile(values, q)), 3) if values else None

    def _concurrency(self, seconds: int) -> float:
        """Mean requests in flight over the last `seconds` whole seconds."""
        now = time.time()
        with self._lock:
            self._account(now)
            last = int(now) - 1  # the current second is still open
            area = sum(a for second, a in self.areas if last - seconds < second <= last)
        return round(area / seconds, 3)


class OnlineModel:
    """The `InferenceBackend` both front ends serve: one pipeline's model behind a batcher;
    each answer goes to the prediction log when one is given."""

    def __init__(
        self,
        pipeline: str,
        model: ModelSpec,
        serve: ServeSpec,
        prediction_log: PredictionLog | None = None,
    ) -> None:
        self.pipeline, self.model = pipeline, model
        self.limits = Limits(serve.max_request_rows, serve.max_request_bytes)
        self.stats = RequestStats()
        self.batcher = AdaptiveBatcher(
            serve.max_batch_size, serve.max_queue_delay_ms / 1000, lambda: self.stats.in_flight
        )
        self.prediction_log = prediction_log
        self.shadow: ShadowScorer | None = None  # set by the replica: a challenger in shadow

    def version(self) -> int | None:
        return self.batcher.version

    async def infer(self, request: InferenceRequest) -> Scored:
        started = time.perf_counter()
        scored = await self.batcher.score(request.rows)
        if self.prediction_log is not None:
            latency_ms = (time.perf_counter() - started) * 1000
            entry = _log(self.prediction_log, request, scored, latency_ms)
            if self.shadow is not None:  # a challenger in shadow scores a share, apart
                self.shadow.offer(request.source, entry.ids, entry.features)
        return scored

    async def counted(self, call: Callable[[], Awaitable[Any]]) -> Any:
        """Run one request's `call`, counting it: latency, concurrency, refusals."""
        stats, started = self.stats, time.perf_counter()
        stats.arrive()
        try:
            return await call()
        except Exception as exc:
            if not_served_here(exc) or isinstance(exc, BadRequest):
                stats.refused += 1
            else:
                stats.failed += 1
            raise
        finally:
            stats.leave((time.perf_counter() - started) * 1000)


def _log(
    into: PredictionLog, request: InferenceRequest, scored: Scored, latency_ms: float
) -> Logged:
    rows = request.rows.num_rows  # one id per row: "<request id>/<row>" past the first
    ids = [request.id] if rows == 1 else [f"{request.id}/{i}" for i in range(rows)]
    entry = Logged(request.source, ids, lambda: request.rows, scored.scores,
                   scored.version, [latency_ms] * rows, time.time())  # fmt: skip
    into.add(entry)
    return entry


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket that other replicas on this host may bind too."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    # Accepted connections inherit it: a response's head and body are two writes, and with
    # Nagle's algorithm the body waited for the client's delayed ACK (measured on one
    # keep-alive connection to the floor server: 48 ms per request without it, 5.5 ms with).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


# ---------------------------------------------------------------------------- REST
def rest_app(online: OnlineModel) -> Any:
    """The v2 REST routes (Starlette: what FastAPI is built on, without its 422 bodies)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    def ready() -> Response:
        return Response(status_code=200 if online.version() is not None else 503)

    def known(request: Request) -> str | None:
        """Why this model/version is not served here, or None."""
        name = request.path_params["model"]
        if name != online.pipeline:
            return f"model {name!r} is not served here; {online.pipeline!r} is"
        asked, serving = request.path_params.get("version"), online.version()
        if asked is not None and serving is not None and asked != str(serving):
            return f"version {asked} of {name!r} is not served here; v{serving} is"
        return None

    async def live(_: Request) -> Response:
        return Response(status_code=200)

    async def server_ready(_: Request) -> Response:
        return ready()

    async def server_metadata(_: Request) -> Response:
        return JSONResponse(
            {"name": SERVER_NAME, "version": "2", "extensions": ["binary_tensor_data"]}
        )

    async def metadata(request: Request) -> Response:
        if why := known(request):
            return JSONResponse({"error": why}, status_code=404)
        return JSONResponse(model_metadata(online.pipeline, online.version(), online.model))

    async def model_ready(request: Request) -> Response:
        return Response(status_code=404) if known(request) else ready()

    async def infer(request: Request) -> Response:
        try:
            return await online.counted(lambda: _rest_infer(online, request))
        except BadRequest as exc:
            status = 413 if isinstance(exc, TooLarge) else 400
            return JSONResponse({"error": str(exc)}, status_code=status)
        except LookupError as exc:
            if not not_served_here(exc):  # a KeyError or IndexError of ours: the 500 below
                return _internal_error(exc)
            return JSONResponse({"error": str(exc)}, status_code=404)
        except NotReady as exc:
            return JSONResponse({"error": str(exc)}, status_code=503)
        except Exception as exc:  # ours, not the caller's: a 500 that says what, never a crash
            return _internal_error(exc)

    model = "/v2/models/{model}"
    version = model + "/versions/{version}"
    return Starlette(
        routes=[
            Route("/v2/health/live", live),
            Route("/v2/health/ready", server_ready),
            Route("/v2", server_metadata),
            Route(model, metadata),
            Route(version, metadata),
            Route(model + "/ready", model_ready),
            Route(version + "/ready", model_ready),
            Route(model + "/infer", infer, methods=["POST"]),
            Route(version + "/infer", infer, methods=["POST"]),
        ]
    )


def _internal_error(exc: Exception) -> Any:
    """500, naming an error id the log has beside the traceback, never the exception's text."""
    from starlette.responses import JSONResponse

    return JSONResponse({"error": internal_error("infer")}, status_code=500)


async def _rest_infer(online: OnlineModel, request: Any) -> Any:
    from starlette.responses import Response

    name = request.path_params["model"]
    if name != online.pipeline:
        raise LookupError(f"model {name!r} is not served here; {online.pipeline!r} is")
    serving = online.version()
    if serving is not None:  # asked for another version: refused before it is read
        version_matches(request.path_params.get("version"), serving)
    body = await _bounded_body(request, online.limits.max_bytes)
    json_length = request.headers.get(JSON_LENGTH_HEADER)
    try:
        header_length = None if json_length is None else int(json_length)
    except ValueError as exc:
        raise BadRequest(
            f"Inference-Header-Content-Length {json_length[:40]!r} is not a number"
        ) from exc
    read = read_rest_request(body, header_length, online.model, online.limits)
    scored = await online.infer(read.request)
    version_matches(request.path_params.get("version"), scored.version)
    online.stats.rows += read.request.rows.num_rows
    content, headers = rest_response(online.pipeline, read.request.id, scored, read.binary_output)
    return Response(content, headers=headers)


async def _bounded_body(request: Any, limit: int) -> bytes:
    """The body, refused as soon as it passes `limit` bytes (never read whole first)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"the request is {int(declared):,} bytes > the limit of {limit:,}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"the request is {size:,} bytes > the limit of {limit:,}")
        chunks.append(chunk)
    return b"".join(chunks)


# ---------------------------------------------------------------------------- the server
class Endpoint:
    """REST and gRPC for one replica, on an event loop in a thread of its own."""

    def __init__(
        self,
        pipeline: str,
        model: ModelSpec,
        serve: ServeSpec,
        prediction_log: PredictionLog | None = None,
    ) -> None:
        self.serve = serve
        self.online = OnlineModel(pipeline, model, serve, prediction_log)
        self.addresses: dict[str, str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self._http: Any = None  # uvicorn.Server
        self._grpc: Any = None  # grpc.aio.Server

    def switch_to(self, scorer: Scorer, version: int) -> None:
        self.online.batcher.switch_to(scorer, version)

    def summary(self) -> dict[str, Any]:
        summary = self.online.stats.summary(self.online.batcher.batch_sizes)
        return {"addresses": self.addresses, "version": self.online.version(), **summary}

    def start(self, timeout: float = 30.0) -> dict[str, str]:
        """Listen (raises if a port cannot be bound); returns the addresses served."""
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            try:
                asyncio.run(self._serve(started))
            except BaseException as exc:  # reported to start(), or logged after it
                failure.append(exc)
                log.exception("the endpoint stopped")
                started.set()
            finally:
                self._stopped.set()

        self._thread = threading.Thread(target=run, name="endpoint", daemon=True)
        self._thread.start()
        if not started.wait(timeout):
            raise TimeoutError(f"the endpoint did not listen within {timeout:.0f} s")
        if failure:
            raise RuntimeError(f"the endpoint could not start: {failure[0]}") from failure[0]
        return self.addresses

    async def _serve(self, started: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        serving: list[Awaitable[Any]] = []
        if self.serve.grpc_port:
            await self._start_grpc()
            serving.append(self._grpc.wait_for_termination())
        if self.serve.http_port:
            serving.append(await self._start_http())
        started.set()
        await asyncio.gather(*serving)

    async def _start_grpc(self) -> None:
        import grpc  # type: ignore[import-untyped]

        from loopline.serving.grpc_v2 import add_inference_service, server_options

        server = grpc.aio.server(
            options=server_options(self.online.limits), maximum_concurrent_rpcs=MAX_CONCURRENT
        )
        add_inference_service(server, self.online)
        address = f"{self.serve.host}:{self.serve.grpc_port}"
        if not server.add_insecure_port(address):
            raise OSError(f"gRPC could not listen on {address}")
        await server.start()
        self._grpc = server
        self.addresses["grpc"] = address

    async def _start_http(self) -> Awaitable[Any]:
        import uvicorn

        sock = reuse_port_socket(self.serve.host, self.serve.http_port)
        config = uvicorn.Config(
            rest_app(self.online),
            log_level="warning",
            access_log=False,
            # keep-alive connections are how clients reach one replica again and again;
            # closing idle ones after a while lets the kernel spread them anew
            timeout_keep_alive=15,
            timeout_graceful_shutdown=10,
            limit_concurrency=MAX_CONCURRENT,
            lifespan="off",
        )
        self._http = uvicorn.Server(config)
        host, port = sock.getsockname()[:2]
        self.addresses["http"] = f"http://{host}:{port}"
        return self._http.serve(sockets=[sock])

    def stop(self, grace: float = 10.0) -> None:
        """Stop listening, finish the requests in hand (up to `grace` s), then end."""
        loop = self._loop
        if loop is None or self._stopped.is_set():
            return
        if self._http is not None:
            self._http.should_exit = True
        if self._grpc is not None:
            asyncio.run_coroutine_threadsafe(self._grpc.stop(grace), loop)
        self._stopped.wait(grace + 5)

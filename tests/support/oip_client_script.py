"""Run inside the OIP clients' own virtualenv (``make oip-clients``), never imported by the
tests: one client library nobody here wrote sends one good and one bad infer request to a
Loopline endpoint, and what it got back is printed as one JSON object.

    python oip_client_script.py --client triton-grpc --url 127.0.0.1:8081 < request.json

The request (stdin) is ``{"model", "id", "inputs": {name: [values]}, "model_version"?}``:
numbers go as FP32, strings as BYTES, each tensor shaped ``[rows]``. The bad request is the
same one without its last input (a missing input). One client per process: tritonclient.grpc's
and kserve's generated ``inference`` stubs cannot be imported together.

Output: ``{"client", "scores", "model_version", "id", "error"?, "bad_request": {"type",
"status", "message"}}``; a client that raised on the good request reports it under "error".
kserve 0.21.0's REST client never reports a model_version (its ``InferResponse.from_bytes``
does not read the field): "model_version" is null for kserve-rest whatever the server sends.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

CLIENTS: dict[str, Callable[[str, dict[str, Any]], dict[str, Any]]] = {}


def client(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(run: Callable[..., Any]) -> Callable[..., Any]:
        CLIENTS[name] = run
        return run

    return register


def arrays(inputs: dict[str, list[Any]]) -> dict[str, tuple[str, np.ndarray]]:
    """Each input as (datatype, numpy array): BYTES as an object array of bytes, since
    tritonclient drops trailing zero bytes of numpy's own bytes type."""
    out = {}
    for name, values in inputs.items():
        if values and all(isinstance(v, str) for v in values):
            out[name] = ("BYTES", np.array([v.encode() for v in values], dtype=np.object_))
        else:
            out[name] = ("FP32", np.asarray(values, dtype=np.float32))
    return out


def without_last_input(request: dict[str, Any]) -> dict[str, Any]:
    names = list(request["inputs"])
    return {**request, "inputs": {n: request["inputs"][n] for n in names[:-1]}}


def failure(exc: BaseException) -> dict[str, Any]:
    """What a client raised: its type, the status it names, and its message."""
    status: Any = None
    message = str(exc)
    if hasattr(exc, "status") and callable(exc.status):  # tritonclient's InferenceServerException
        status, message = exc.status(), exc.message()
    elif hasattr(exc, "code") and callable(exc.code):  # grpc.aio.AioRpcError (kserve's gRPC)
        status, message = str(exc.code()), exc.details()
    elif getattr(exc, "response", None) is not None:  # httpx.HTTPStatusError (kserve's REST)
        status, message = exc.response.status_code, exc.response.text
    return {"type": type(exc).__name__, "status": None if status is None else str(status),
            "message": message}  # fmt: skip


def both(send: Callable[[dict[str, Any]], dict[str, Any]], request: dict[str, Any]) -> dict:
    """The good request's answer, then the bad request's error."""
    try:
        result = send(request)
    except Exception as exc:
        result = {"scores": None, "model_version": None, "id": None, "error": failure(exc)}
    try:
        send(without_last_input(request))
        result["bad_request"] = {"type": None, "status": None, "message": "no error raised"}
    except Exception as exc:
        result["bad_request"] = failure(exc)
    return result


# ---------------------------------------------------------------------------- tritonclient
def triton_http(url: str, request: dict[str, Any], binary: bool) -> dict[str, Any]:
    import tritonclient.http as th

    host = url.split("://", 1)[-1]  # tritonclient takes host:port; a scheme raises

    def send(req: dict[str, Any]) -> dict[str, Any]:
        with th.InferenceServerClient(url=host, network_timeout=30) as c:
            inputs = []
            for name, (datatype, array) in arrays(req["inputs"]).items():
                tensor = th.InferInput(name, list(array.shape), datatype)
                tensor.set_data_from_numpy(array, binary_data=binary)
                inputs.append(tensor)
            outputs = [th.InferRequestedOutput("score", binary_data=binary)]
            result = c.infer(req["model"], inputs, outputs=outputs, request_id=req["id"],
                             model_version=req.get("model_version", ""))  # fmt: skip
            response = result.get_response()
            scores = result.as_numpy("score").tolist()
            return {"scores": scores, "model_version": response.get("model_version"),
                    "id": response.get("id")}  # fmt: skip

    return both(send, request)


@client("triton-http-json")
def triton_http_json(url: str, request: dict[str, Any]) -> dict[str, Any]:
    return triton_http(url, request, binary=False)


@client("triton-http-binary")
def triton_http_binary(url: str, request: dict[str, Any]) -> dict[str, Any]:
    return triton_http(url, request, binary=True)


@client("triton-grpc")
def triton_grpc(url: str, request: dict[str, Any]) -> dict[str, Any]:
    import tritonclient.grpc as tg

    def send(req: dict[str, Any]) -> dict[str, Any]:
        with tg.InferenceServerClient(url=url) as c:
            inputs = []
            for name, (datatype, array) in arrays(req["inputs"]).items():
                tensor = tg.InferInput(name, list(array.shape), datatype)
                tensor.set_data_from_numpy(array)  # always raw_input_contents over gRPC
                inputs.append(tensor)
            result = c.infer(req["model"], inputs, outputs=[tg.InferRequestedOutput("score")],
                             request_id=req["id"], model_version=req.get("model_version", ""),
                             client_timeout=30)  # fmt: skip
            response = result.get_response()
            return {"scores": result.as_numpy("score").tolist(),
                    "model_version": response.model_version, "id": response.id}  # fmt: skip

    return both(send, request)


# ---------------------------------------------------------------------------- kserve
def kserve_request(req: dict[str, Any], binary: bool) -> Any:
    from kserve import InferInput, InferRequest

    inputs = []
    for name, (datatype, array) in arrays(req["inputs"]).items():
        tensor = InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array, binary_data=binary)  # kserve's default is binary
        inputs.append(tensor)
    return InferRequest(req["model"], inputs, request_id=req["id"],
                        model_version=req.get("model_version"))  # fmt: skip


def kserve_answer(response: Any) -> dict[str, Any]:
    score = next(o for o in response.outputs if o.name == "score")
    return {"scores": score.as_numpy().tolist(), "model_version": response.model_version,
            "id": response.id}  # fmt: skip


def kserve_rest(url: str, request: dict[str, Any], binary: bool) -> dict[str, Any]:
    from kserve import InferenceRESTClient, RESTConfig

    base = url if "://" in url else f"http://{url}"

    def send(req: dict[str, Any]) -> dict[str, Any]:
        async def call() -> Any:
            c = InferenceRESTClient(RESTConfig(protocol="v2", timeout=30))  # the default is v1
            try:
                return await c.infer(base, kserve_request(req, binary), model_name=req["model"])
            finally:
                await c.close()

        return kserve_answer(asyncio.run(call()))

    return both(send, request)


@client("kserve-rest")
def kserve_rest_json(url: str, request: dict[str, Any]) -> dict[str, Any]:
    return kserve_rest(url, request, binary=False)


@client("kserve-rest-binary")
def kserve_rest_binary(url: str, request: dict[str, Any]) -> dict[str, Any]:
    return kserve_rest(url, request, binary=True)


def kserve_grpc(url: str, request: dict[str, Any], binary: bool) -> dict[str, Any]:
    from kserve import InferenceGRPCClient

    def send(req: dict[str, Any]) -> dict[str, Any]:
        async def call() -> Any:
            # retries=0: no retry policy (an error is the answer; 1 is refused: maxAttempts >= 2)
            c = InferenceGRPCClient(url, timeout=30, retries=0)
            try:
                return await c.infer(kserve_request(req, binary))
            finally:
                await c.close()

        return kserve_answer(asyncio.run(call()))

    return both(send, request)


@client("kserve-grpc")
def kserve_grpc_raw(url: str, request: dict[str, Any]) -> dict[str, Any]:
    return kserve_grpc(url, request, binary=True)  # raw_input_contents, kserve's default


@client("kserve-grpc-contents")
def kserve_grpc_contents(url: str, request: dict[str, Any]) -> dict[str, Any]:
    return kserve_grpc(url, request, binary=False)  # typed InferTensorContents


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--client", required=True, choices=sorted(CLIENTS))
    parser.add_argument("--url", required=True)
    args = parser.parse_args(argv)
    request = json.load(sys.stdin)
    result = CLIENTS[args.client](args.url, request)
    print(json.dumps({"client": args.client, **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

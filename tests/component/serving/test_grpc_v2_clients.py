"""The gRPC service as clients nobody here wrote see it: tritonclient.grpc and kserve's
InferenceGRPCClient, each in its own process from the OIP clients' virtualenv
(``make oip-clients``; skipped where it is missing unless LOOPLINE_TEST_REQUIRE_OIP_CLIENTS),
against a grpc.aio server with the fake backend of test_grpc_v2.

tritonclient sends every input in ``raw_input_contents`` (BYTES as 4-byte lengths) and reads
the score from ``raw_output_contents``; kserve's client does the same with its default
binary_data=True, and with binary_data=False sends typed ``contents`` (``fp32_contents``,
``bytes_contents``). Each must get the scores, the version and the id back, and a request
missing an input must fail in the client as INVALID_ARGUMENT with the reason.
"""

from __future__ import annotations

import asyncio

import pytest
from support.oip_clients import GRPC_CLIENTS, require_oip_clients, run_clients

from .test_grpc_v2 import PIPELINE, FakeBackend, started

INPUTS = {"amount": [1.5, 2.0], "age": [10, 20], "country": ["fr", "\u00e9s"]}
EXPECTED = [13.5, 24.0]  # amount + age + len(country)


def test_tritonclient_and_kserve_grpc_clients_are_answered() -> None:
    require_oip_clients()
    backend = FakeBackend()

    async def against_server() -> dict[str, dict]:
        async with started(backend) as url:
            return await asyncio.to_thread(
                run_clients, None, url, PIPELINE, INPUTS, request_id="req-42"
            )

    answers = asyncio.run(against_server())
    assert set(answers) == set(GRPC_CLIENTS)
    for client, answer in answers.items():
        assert "error" not in answer, (client, answer)
        assert answer["scores"] == pytest.approx(EXPECTED), client
        assert (answer["model_version"], answer["id"]) == ("7", "req-42"), client
        bad = answer["bad_request"]
        assert "INVALID_ARGUMENT" in str(bad["status"]), (client, bad)
        assert "missing input(s) ['country']" in bad["message"], (client, bad)
    rows = [request.rows.column("country").to_pylist() for request in backend.requests]
    assert rows == [["fr", "\u00e9s"]] * len(GRPC_CLIENTS)  # BYTES decoded, raw and typed

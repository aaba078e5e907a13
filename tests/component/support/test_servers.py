"""The shared test servers' start-up races, against real loopback servers standing in for what
they wait on.

A Spark master listens before its /json/ handler is attached: Jetty then answers its own 404
page, and the cluster fixture that read /json/ once it listened raised JSONDecodeError instead
of waiting (seen with `make run`'s stack up). And a cluster's three ports, picked one after
another, could come back equal: a port closed after its pick may be handed out again."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from support.servers import SparkCluster, master_state, wait_for_worker

JETTY_404 = b"<html><head><title>Error 404 Not Found</title></head><body>Not Found</body></html>"


class StartingMaster(BaseHTTPRequestHandler):
    """Answers /json/ as a starting master does: `answers` in turn, the last one for good."""

    answers: list[tuple[int, str, bytes]] = []
    asked = 0

    def do_GET(self) -> None:
        cls = type(self)
        status, content_type, body = cls.answers[min(cls.asked, len(cls.answers) - 1)]
        cls.asked += 1
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def starting_master() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), StartingMaster)
    StartingMaster.asked = 0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def master_json(workers: int) -> tuple[int, str, bytes]:
    return 200, "application/json", json.dumps({"aliveworkers": workers}).encode()


def test_the_cluster_waits_through_jettys_404_page_until_a_worker_registers(
    starting_master: str,
) -> None:
    StartingMaster.answers = [
        (404, "text/html", JETTY_404),
        (404, "text/html", JETTY_404),
        (200, "text/html", b"<html>starting</html>"),  # a page, not JSON, even with a 200
        master_json(workers=0),
        master_json(workers=1),
    ]

    wait_for_worker(starting_master, processes=[], timeout=30)

    assert StartingMaster.asked == 5  # every answer was read; none of them raised


def test_the_masters_state_is_none_until_it_is_json(starting_master: str) -> None:
    StartingMaster.answers = [(404, "text/html", JETTY_404), master_json(workers=1)]
    assert master_state(starting_master) is None
    assert master_state(starting_master) == {"aliveworkers": 1}


def test_a_master_that_never_registers_a_worker_times_out_naming_it(starting_master: str) -> None:
    StartingMaster.answers = [(404, "text/html", JETTY_404)]
    with pytest.raises(TimeoutError, match=f"master at {starting_master} in 1"):
        wait_for_worker(starting_master, processes=[], timeout=1)


def test_a_clusters_three_ports_are_held_at_once_while_they_are_chosen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each port stays bound until all three are: no port can be handed out twice. (Real
    sockets; this one only notes when each is bound and closed.)"""
    events: list[str] = []

    class NotedSocket(socket.socket):
        def bind(self, address: object) -> None:
            super().bind(address)
            events.append("bind")

        def close(self) -> None:
            if self.fileno() != -1:
                events.append("close")
            super().close()

    monkeypatch.setattr(socket, "socket", NotedSocket)

    ports = SparkCluster.reserve_ports()

    assert len(set(ports)) == 3
    assert events == ["bind"] * 3 + ["close"] * 3

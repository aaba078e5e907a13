"""A fake Kubernetes API server with a StatefulSet controller, for the Kubernetes backend's
tests (no cluster is reachable here): it keeps what is applied and reports rollouts the way
the real controller's status fields do."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer


class JsonApi(BaseHTTPRequestHandler):
    """Replies in JSON, quietly."""

    def _reply(self, code: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


class FakeStatefulSetController(JsonApi):
    """An API server whose StatefulSet controller rolls out any version but `BROKEN`, whose
    pods never become ready."""

    BROKEN = "99"
    objects: dict = {}
    applies: list = []
    policies: dict = {}  # anything but StatefulSets, by path: kept, never reconciled

    def do_PATCH(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        path = self.path.split("?")[0]
        if "/statefulsets/" not in path:  # policies, services, budgets: kept as applied
            self.policies[path] = body
            self._reply(200, body)
            return
        generation = self.objects.get(path, {}).get("metadata", {}).get("generation", 0) + 1
        body["metadata"]["generation"] = generation
        self.objects[path] = body
        self.applies.append(
            body["spec"]["template"]["metadata"]["labels"]["loopline/model-version"]
        )
        self._reply(200, body)

    def do_GET(self) -> None:
        found = self.objects.get(self.path)
        if found is None:
            self._reply(404, {"kind": "Status", "code": 404})
            return
        version = found["spec"]["template"]["metadata"]["labels"]["loopline/model-version"]
        wanted, broken = found["spec"]["replicas"], version == self.BROKEN
        status = {
            "observedGeneration": found["metadata"]["generation"],
            "replicas": wanted,
            "readyReplicas": wanted - 1 if broken and wanted else wanted,
            "updatedReplicas": 1 if broken else wanted,
            "currentRevision": "r-old" if broken else f"r-{version}",
            "updateRevision": f"r-{version}",
        }
        self._reply(200, {**found, "status": status})


@contextmanager
def fake_statefulset_controller() -> Iterator[str]:
    """The fake API server's URL, with nothing applied yet."""
    FakeStatefulSetController.objects, FakeStatefulSetController.applies = {}, []
    FakeStatefulSetController.policies = {}
    server = HTTPServer(("127.0.0.1", 0), FakeStatefulSetController)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()

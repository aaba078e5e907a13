"""The local S3 server: moto, closed to everyone who does not hold the stack's S3 key.

``python -m loopline.stack.s3_server --host 127.0.0.1 --port 9000`` serves what
``moto_server`` serves, with three differences that keep other local processes and web pages
out (a browser can reach loopback):

- CORS is off (``MOTO_DISABLE_GLOBAL_CORS``): no ``Access-Control-Allow-Origin`` for any
  origin, so a page cannot read responses or pass a preflight.
- Every request must carry a valid SigV4 signature made with the stack's key
  (`loopline.stack.sigv4`); moto itself would accept anonymous and wrongly signed requests.
- moto's admin routes (``/moto-api/...``: reset, dashboard, seeding) answer 403 whoever asks,
  since one POST to ``/moto-api/reset`` would wipe every bucket.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

from loopline.stack.sigv4 import Refused, verify

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
ADMIN_PREFIX = "/moto-api"  # the prefix moto's dispatcher routes to its admin API


class SignatureGuard:
    """WSGI middleware: refuse moto's admin API and any request not signed with `secrets`."""

    def __init__(self, app: WsgiApp, secrets: Mapping[str, str]) -> None:
        self.app, self.secrets = app, dict(secrets)

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if str(environ.get("PATH_INFO", "")).startswith(ADMIN_PREFIX):
            return _refuse(start_response, "AccessDenied", "moto's admin API is disabled")
        try:
            verify(environ, self.secrets, datetime.now(UTC))
        except Refused as refused:
            return _refuse(start_response, refused.code, str(refused))
        return self.app(environ, start_response)


def _refuse(start_response: Callable[..., Any], code: str, message: str) -> list[bytes]:
    """403 with S3's XML error body, so that SDKs raise an error naming `code`."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{escape(message)}</Message></Error>"
    ).encode()
    start_response(
        "403 Forbidden",
        [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))],
    )
    return [body]


def guarded_moto_app(secrets: Mapping[str, str]) -> WsgiApp:
    """moto's whole WSGI app behind `SignatureGuard`, with CORS off."""
    # Read by moto.settings when it is first imported: set before importing moto.
    os.environ["MOTO_DISABLE_GLOBAL_CORS"] = "true"
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    return SignatureGuard(DomainDispatcherApplication(create_backend_app), secrets)


def main(argv: list[str] | None = None) -> int:
    from loopline.stack.config import HOST, S3_ACCESS_KEY, S3_SECRET_KEY

    parser = argparse.ArgumentParser(description="moto, reachable with the stack's key only")
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    app = guarded_moto_app({S3_ACCESS_KEY: S3_SECRET_KEY})
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import run_simple

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # as moto_server does
    run_simple(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

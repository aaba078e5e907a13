"""An AWS connection (S3, or any S3-compatible server) as Loopline's object store and settings.

Every operator reaches S3 through this hook: the provider's ``S3Hook`` resolves the
connection (credentials, endpoint, region), and Loopline's ``ObjectStore`` does the writes
(create-only puts, verified moves) that the provider's check-then-write methods cannot.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from functools import cached_property
from typing import TYPE_CHECKING

from airflow.providers.amazon.aws.hooks.s3 import S3Hook

from loopline.storage.objects import ObjectStore
from loopline.storage.settings import S3Settings

if TYPE_CHECKING:
    from botocore.client import BaseClient

# One boto3 client per connection and process. Each new one costs 0.1-0.3 s of CPU (the
# provider opens a new boto3 session, and botocore loads S3's service model and endpoint
# rules into every session afresh), and a task makes several: its operator's, its success
# callback's, a failure's. boto3 clients are thread-safe; a connection that changed (another
# secret, endpoint or extra) is another key, so another client; the pid keeps a forked
# process from sharing its parent's sockets.
_CLIENTS: dict[str, BaseClient] = {}
_CLIENTS_LOCK = threading.Lock()
MAX_CLIENTS = 16


class ObjectStoreHook(S3Hook):
    hook_name = "Loopline object store"

    @cached_property
    def store(self) -> ObjectStore:
        return ObjectStore(self.shared_client())

    def shared_client(self) -> BaseClient:
        """The process's client for this connection, made on first use."""
        key = self._connection_key()
        with _CLIENTS_LOCK:
            client = _CLIENTS.get(key)
        if client is not None:
            return client
        client = self.get_conn()
        with _CLIENTS_LOCK:
            if key not in _CLIENTS and len(_CLIENTS) >= MAX_CLIENTS:
                _CLIENTS.pop(next(iter(_CLIENTS)))  # the oldest
            return _CLIENTS.setdefault(key, client)

    def _connection_key(self) -> str:
        """A digest of everything the client is made from (secrets only as the digest)."""
        wrapper = self.conn_config
        made_from = [
            os.getpid(), self.aws_conn_id, wrapper.conn_type, wrapper.login, wrapper.password,
            wrapper.schema, wrapper.extra_config, wrapper.region_name, wrapper.verify,
            repr(vars(wrapper.botocore_config)) if wrapper.botocore_config else None,
            self.client_type, self._verify, self._region_name,
        ]  # fmt: skip
        return hashlib.sha256(json.dumps(made_from, default=str).encode()).hexdigest()

    @cached_property
    def settings(self) -> S3Settings:
        """The connection as plain settings, to ship to a process Airflow does not run (Spark
        executors, streaming consumers)."""
        credentials = self.get_credentials()
        return S3Settings(
            endpoint_url=self.conn_config.endpoint_url,
            access_key=credentials.access_key,
            secret_key=credentials.secret_key,
            region=self.conn_config.region_name or "us-east-1",
            session_token=credentials.token,  # temporary credentials do not work without it
        )

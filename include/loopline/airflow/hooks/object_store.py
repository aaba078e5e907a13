"""An AWS connection (S3, or any S3-compatible server) as Loopline's object store and settings.

Every operator reaches S3 through this hook: the provider's ``S3Hook`` resolves the
connection (credentials, endpoint, region), and Loopline's ``ObjectStore`` does the writes
(create-only puts, verified moves) that the provider's check-then-write methods cannot.
"""

from __future__ import annotations

from functools import cached_property

from airflow.providers.amazon.aws.hooks.s3 import S3Hook

from loopline.storage.objects import ObjectStore
from loopline.storage.settings import S3Settings


class ObjectStoreHook(S3Hook):
    hook_name = "Loopline object store"

    @cached_property
    def store(self) -> ObjectStore:
        return ObjectStore(self.get_conn())

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

"""How a process reaches S3, as plain settings that can be shipped to another process (a
Spark worker, a consumer) and turned into a client or a pyarrow filesystem there."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class S3Settings:
    """Endpoint, credentials and region: what an Airflow connection says, as JSON when shipped.

    `session_token` goes with temporary credentials (an assumed role, IRSA, SSO): without it
    they are refused, which would push users towards long-lived keys."""

    endpoint_url: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    region: str = "us-east-1"
    session_token: str | None = None

    def filesystem(self) -> Any:
        from pyarrow import fs

        options: dict[str, Any] = {"region": self.region}
        if self.access_key:
            options.update(access_key=self.access_key, secret_key=self.secret_key)
            if self.session_token:
                options.update(session_token=self.session_token)
        if self.endpoint_url:
            scheme, _, host = self.endpoint_url.partition("://")
            options.update(endpoint_override=host, scheme=scheme)
        return fs.S3FileSystem(**options)

    def boto3_client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            aws_session_token=self.session_token,
            region_name=self.region,
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> S3Settings:
        return cls(**json.loads(text))  # settings shipped without a token load as before

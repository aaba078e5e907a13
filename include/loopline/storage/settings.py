"""How a process reaches S3, as plain settings that can be shipped to another process (a
Spark worker, a consumer) and turned into a client or a pyarrow filesystem there."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # boto3 and pyarrow ship no types: mypy reads these as Any
    from botocore.client import BaseClient
    from botocore.config import Config
    from pyarrow.fs import S3FileSystem


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

    def filesystem(self) -> S3FileSystem:
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

    def boto3_client(self, config: Config | None = None) -> BaseClient:
        """A client with these settings; `config`: botocore's (timeouts, retries)."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            aws_session_token=self.session_token,
            region_name=self.region,
            config=config,
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> S3Settings:
        """The settings `to_json` wrote: ``LOOPLINE_S3``'s one meaning (``{}``: the default
        credential chain and endpoint). Errors never echo the text: it holds the keys."""
        try:
            fields = json.loads(text)
        except json.JSONDecodeError:
            fields = None
        if not isinstance(fields, dict):
            hint = (
                " (AWS's default credential chain is {} here; for the loopline commands it is "
                "LOOPLINE_S3_MODE=aws)"
                if text.strip() == "aws"
                else ""
            )
            raise ValueError(f"LOOPLINE_S3 must be S3 settings as a JSON object{hint}")
        try:
            return cls(**fields)  # settings shipped without a token load as before
        except TypeError as exc:  # names the field, never a value
            raise ValueError(f"LOOPLINE_S3 holds unknown S3 settings: {exc}") from None

"""Check AWS Signature Version 4 on requests to the local S3 server, as S3 itself does.

moto accepts any request, signed or not, so the stack puts this check in front of it (see
``loopline.stack.s3_server``): only a client that holds the stack's secret key gets through.
Both forms S3 clients use are checked: the ``Authorization`` header (boto3, s3fs, pyarrow,
Hadoop S3A, Tansu's object_store) and presigned query strings (``X-Amz-Signature``).

The canonical request is rebuilt from what the server received, the way S3 does: the path and
query are decoded, then encoded again with SigV4's strict rule, so a client that sends ``=``
or ``:`` unescaped still matches the signature it computed over the escaped form. The payload
hash is taken from ``x-amz-content-sha256`` as signed; like S3 with ``UNSIGNED-PAYLOAD`` or a
streaming upload, the body itself is not hashed here (the signature already proves who sent
the request, which is what this check is for).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = timedelta(minutes=15)  # what S3 allows between a request's date and its clock
MAX_PRESIGNED = timedelta(days=7)
_CREDENTIAL = re.compile(r"^([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request$")
_AUTH_PART = re.compile(r"(\w+)=([^,\s]+)")
_SPACES = re.compile(r"\s+")


class Refused(Exception):
    """A request that does not carry a valid signature; `code` is S3's error code for it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class _Signed:
    access_key: str
    date: str  # yyyymmdd of the credential scope
    scope: str  # date/region/service/aws4_request
    service: str
    amz_date: str  # yyyymmddThhmmssZ, the request's time
    signed_headers: list[str]
    signature: str
    payload_hash: str
    presigned: bool


def verify(environ: Mapping[str, Any], secrets: Mapping[str, str], now: datetime) -> None:
    """Raise `Refused` unless `environ` (a WSGI request) is signed with one of `secrets`
    (access key -> secret key) for the S3 service, at a time close enough to `now`."""
    query = _query_pairs(environ.get("QUERY_STRING", ""))
    signed = _presigned(query) if "X-Amz-Signature" in dict(query) else _from_header(environ)
    secret = secrets.get(signed.access_key)
    if secret is None:
        raise Refused("InvalidAccessKeyId", f"unknown access key {signed.access_key!r}")
    if signed.service != "s3":
        raise Refused("AccessDenied", f"signed for service {signed.service!r}, not s3")
    _check_time(signed, query, now)
    expected = _signature(secret, signed, _canonical_request(environ, query, signed))
    if not hmac.compare_digest(expected, signed.signature):
        raise Refused("SignatureDoesNotMatch", "the request signature does not match")


def _from_header(environ: Mapping[str, Any]) -> _Signed:
    header = environ.get("HTTP_AUTHORIZATION", "")
    if not header:
        raise Refused("AccessDenied", "anonymous requests are refused: sign with the S3 key")
    algorithm, _, rest = header.partition(" ")
    if algorithm != ALGORITHM:
        raise Refused("AccessDenied", f"only {ALGORITHM} signatures are accepted")
    parts = dict(_AUTH_PART.findall(rest))
    try:
        credential, headers, signature = (
            parts["Credential"],
            parts["SignedHeaders"],
            parts["Signature"],
        )
    except KeyError as missing:
        raise Refused("AccessDenied", f"malformed Authorization header: no {missing}") from None
    payload = environ.get("HTTP_X_AMZ_CONTENT_SHA256")
    if not payload:
        raise Refused("AccessDenied", "missing x-amz-content-sha256")
    amz_date = environ.get("HTTP_X_AMZ_DATE", "")
    return _signed(credential, amz_date, headers, signature, payload, presigned=False)


def _presigned(query: list[tuple[str, str]]) -> _Signed:
    values = dict(query)
    if values.get("X-Amz-Algorithm") != ALGORITHM:
        raise Refused("AccessDenied", f"only {ALGORITHM} signatures are accepted")
    try:
        return _signed(
            values["X-Amz-Credential"],
            values["X-Amz-Date"],
            values["X-Amz-SignedHeaders"],
            values["X-Amz-Signature"],
            "UNSIGNED-PAYLOAD",
            presigned=True,
        )
    except KeyError as missing:
        raise Refused("AccessDenied", f"malformed presigned URL: no {missing}") from None


def _signed(
    credential: str, amz_date: str, headers: str, signature: str, payload: str, presigned: bool
) -> _Signed:
    match = _CREDENTIAL.match(credential)
    if not match:
        raise Refused("AccessDenied", f"malformed credential scope {credential!r}")
    access_key, date, region, service = match.groups()
    return _Signed(
        access_key=access_key,
        date=date,
        scope=f"{date}/{region}/{service}/aws4_request",
        service=service,
        amz_date=amz_date,
        signed_headers=headers.split(";"),
        signature=signature,
        payload_hash=payload,
        presigned=presigned,
    )


def _check_time(signed: _Signed, query: list[tuple[str, str]], now: datetime) -> None:
    try:
        at = datetime.strptime(signed.amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise Refused("AccessDenied", f"bad or missing X-Amz-Date {signed.amz_date!r}") from None
    if not signed.amz_date.startswith(signed.date):
        raise Refused("SignatureDoesNotMatch", "X-Amz-Date is not the credential's date")
    if signed.presigned:
        try:
            expires = timedelta(seconds=int(dict(query).get("X-Amz-Expires", "")))
        except ValueError:
            raise Refused("AccessDenied", "bad or missing X-Amz-Expires") from None
        if expires > MAX_PRESIGNED or now > at + expires or now < at - MAX_SKEW:
            raise Refused("AccessDenied", "the presigned URL has expired or is not valid yet")
    elif abs(now - at) > MAX_SKEW:
        raise Refused("RequestTimeTooSkewed", "the request time is more than 15 min off")


def _canonical_request(
    environ: Mapping[str, Any], query: list[tuple[str, str]], signed: _Signed
) -> str:
    raw_path = environ.get("RAW_URI") or environ.get("REQUEST_URI") or ""
    raw_path = raw_path.partition("?")[0] or quote(environ.get("PATH_INFO", "/"))
    # WSGI passes the raw bytes as latin-1 text; S3 keys are UTF-8.
    path = unquote(raw_path.encode("latin-1").decode("utf-8", "replace"))
    kept = [(k, v) for k, v in query if not (signed.presigned and k == "X-Amz-Signature")]
    return "\n".join(
        [
            environ.get("REQUEST_METHOD", "GET"),
            _encode(path, safe="/~"),
            "&".join(f"{n}={v}" for n, v in sorted((_encode(k), _encode(v)) for k, v in kept)),
            "".join(f"{name}:{_header(environ, name)}\n" for name in signed.signed_headers),
            ";".join(signed.signed_headers),
            signed.payload_hash,
        ]
    )


def _signature(secret: str, signed: _Signed, canonical: str) -> str:
    to_sign = "\n".join(
        [ALGORITHM, signed.amz_date, signed.scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = f"AWS4{secret}".encode()
    for part in signed.scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def _header(environ: Mapping[str, Any], name: str) -> str:
    key = name.upper().replace("-", "_")
    if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        key = f"HTTP_{key}"
    value = str(environ.get(key, ""))
    return _SPACES.sub(" ", value.strip())


def _query_pairs(query_string: str) -> list[tuple[str, str]]:
    pairs = []
    for part in query_string.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((unquote(name), unquote(value)))
    return pairs


def _encode(text: str, safe: str = "~") -> str:
    """SigV4's URI encoding: everything but A-Z a-z 0-9 - _ . ~ (and `safe`) as %XX."""
    return quote(text, safe=safe)

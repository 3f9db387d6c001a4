"""OTLP over HTTP for spans Bastion encodes itself, with the OTel SDK exporter's settings.

The SDK's public `OTLPSpanExporter.export` takes only the SDK's span objects (building them is what
span_encoding.py avoids), and the client that posts encoded bytes (`_OTLPHTTPClient` of
opentelemetry-exporter-otlp-common) is private. So this reads the same variables the way the
SDK's exporter (1.45) reads them - OTEL_EXPORTER_OTLP_TRACES_* first, then OTEL_EXPORTER_OTLP_*:
ENDPOINT (the generic one gets /v1/traces), HEADERS, TIMEOUT (seconds), COMPRESSION (gzip,
deflate, none), CERTIFICATE, CLIENT_CERTIFICATE and CLIENT_KEY - and posts with its retry rules:
429/502/503/504 and lost connections are retried with jittered exponential backoff (or the
server's Retry-After) while the timeout allows, at most six attempts.
"""

from __future__ import annotations

import gzip
import logging
import random
import ssl
import threading
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx2
from opentelemetry.util.re import parse_env_headers

from bastion import __version__

log = logging.getLogger("bastion.tracing")

_DEFAULT_BASE = "http://localhost:4318"
_TRACES_PATH = "v1/traces"
_DEFAULT_TIMEOUT = 10.0
_RETRYABLE = frozenset({429, 502, 503, 504})
_ATTEMPTS = 6
_COMPRESSIONS = ("none", "gzip", "deflate")


def _setting(environ: Mapping[str, str], name: str) -> str | None:
    """OTEL_EXPORTER_OTLP_TRACES_{name}, else OTEL_EXPORTER_OTLP_{name} (an empty value is unset)."""
    return environ.get(f"OTEL_EXPORTER_OTLP_TRACES_{name}") or environ.get(f"OTEL_EXPORTER_OTLP_{name}") or None


@dataclass(frozen=True)
class OtlpSettings:
    """Where and how spans are posted."""

    endpoint: str
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = _DEFAULT_TIMEOUT
    compression: str = "none"
    ca_file: str | None = None
    client_certificate: str | None = None
    client_key: str | None = None


def otlp_settings(environ: Mapping[str, str]) -> OtlpSettings:
    """The exporter settings from OTEL_EXPORTER_OTLP_* variables, read as the SDK's exporter reads them."""
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or (
        f"{(environ.get('OTEL_EXPORTER_OTLP_ENDPOINT') or _DEFAULT_BASE).removesuffix('/')}/{_TRACES_PATH}"
    )
    headers = {"content-type": "application/x-protobuf", "user-agent": f"bastion/{__version__}"}
    headers.update(parse_env_headers(_setting(environ, "HEADERS") or "", liberal=True))
    raw_timeout = _setting(environ, "TIMEOUT")
    try:
        timeout = float(raw_timeout) if raw_timeout is not None else _DEFAULT_TIMEOUT
    except ValueError:
        log.warning("invalid OTLP timeout %r: using %g s", raw_timeout, _DEFAULT_TIMEOUT)
        timeout = _DEFAULT_TIMEOUT
    compression = (_setting(environ, "COMPRESSION") or "none").strip().lower()
    if compression not in _COMPRESSIONS:
        log.warning("unsupported OTLP compression %r: sending uncompressed", compression)
        compression = "none"
    if compression != "none" and not any(k.lower() == "content-encoding" for k in headers):
        headers["content-encoding"] = compression
    return OtlpSettings(
        endpoint=endpoint, headers=headers, timeout=timeout, compression=compression,
        ca_file=_setting(environ, "CERTIFICATE"),
        client_certificate=_setting(environ, "CLIENT_CERTIFICATE"),
        client_key=_setting(environ, "CLIENT_KEY"),
    )


def _tls(settings: OtlpSettings) -> ssl.SSLContext:
    """The CA and client certificate from the settings; files that cannot be read are logged and
    left out (exports to a private CA then fail, each logged), so tracing never stops the gateway."""
    try:
        context = ssl.create_default_context(cafile=settings.ca_file)
    except (OSError, ssl.SSLError) as exc:
        log.warning("OTLP certificate %s not loaded: %s", settings.ca_file, exc)
        context = ssl.create_default_context()
    if settings.client_certificate is not None:
        try:
            context.load_cert_chain(settings.client_certificate, settings.client_key)
        except (OSError, ssl.SSLError) as exc:
            log.warning("OTLP client certificate %s not loaded: %s", settings.client_certificate, exc)
    return context


def _retry_after(response: httpx2.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None  # an HTTP date: the backoff decides


class OtlpPoster:
    """Posts encoded export requests to one OTLP/HTTP endpoint (from one thread at a time)."""

    def __init__(self, settings: OtlpSettings) -> None:
        self.settings = settings
        self._client = httpx2.Client(verify=_tls(settings), headers=settings.headers)
        self._closing = threading.Event()

    def _compress(self, body: bytes) -> bytes:
        if self.settings.compression == "gzip":
            return gzip.compress(body)
        if self.settings.compression == "deflate":
            return zlib.compress(body)
        return body

    def post(self, body: bytes) -> bool:
        """Post one serialized ExportTraceServiceRequest; True once the endpoint accepted it."""
        data = self._compress(body)
        deadline = time.monotonic() + self.settings.timeout
        for attempt in range(_ATTEMPTS):
            backoff = 2**attempt * random.uniform(0.8, 1.2)
            try:
                response = self._client.post(self.settings.endpoint, content=data, timeout=max(deadline - time.monotonic(), 0.0))
            except httpx2.TransportError as exc:
                retryable, reason = isinstance(exc, httpx2.ConnectError | httpx2.RemoteProtocolError), type(exc).__name__
            else:
                if 200 <= response.status_code < 400:
                    return True
                retryable, reason = response.status_code in _RETRYABLE, f"HTTP {response.status_code}"
                if retryable and (after := _retry_after(response)) is not None:
                    backoff = after
            last = attempt + 1 == _ATTEMPTS or backoff > deadline - time.monotonic()
            if not retryable or last or self._closing.wait(backoff):
                log.warning("spans not exported to %s: %s", self.settings.endpoint, reason)
                return False
        return False

    def close(self) -> None:
        """Stop retrying and release the connections."""
        self._closing.set()
        self._client.close()

"""Every outbound client shares one TLS context (the system's CA certificates, loaded once): it must
still verify. A real HTTPS server on loopback with a self-signed certificate is refused by each
client, and one that trusts only that certificate's issuer is not the gateway's."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bastion.outbound.client import Outbound
from bastion.outbound.rules import Rules

pytestmark = pytest.mark.anyio


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


@asynccontextmanager
async def https_server(cert_file: Path, key_file: Path) -> AsyncIterator[str]:
    """A one-line HTTPS server on loopback; yields its URL."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass  # the client refused the certificate mid-handshake
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
    try:
        yield f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    finally:
        server.close()


async def test_every_outbound_client_refuses_a_certificate_no_trusted_authority_signed(tmp_path: Path) -> None:
    cert_file, key_file = self_signed(tmp_path)
    async with https_server(cert_file, key_file) as url:
        # The server answers a client that trusts its certificate: the refusals below are verification.
        async with httpx2.AsyncClient(verify=ssl.create_default_context(cafile=str(cert_file))) as trusting:
            assert (await trusting.get(url)).text == "ok"
        outbound = Outbound(Rules(allow_private=True))
        try:
            for client in (outbound.client(), outbound.client(capped=False), outbound.trusting("127.0.0.1").client()):
                async with client:
                    with pytest.raises(httpx2.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                        await client.get(url)
        finally:
            await outbound.aclose()

"""TLS with uvicorn's own options and a certificate made here (`cryptography`): https is served,
HSTS is sent, and the login's cookies are Secure (issue #31)."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .access import make_tokens, token_server
from .conftest import LiveServer

x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (its own CA) and its key, as PEM files."""
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
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def tls_server(
    tiny_artifact: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, Path, str]]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = self_signed(folder)
    token = make_tokens(folder / "log.db", erin=False)["erin"]
    live = token_server(tiny_artifact, folder / "log.db", ssl_certfile=cert, ssl_keyfile=key)
    yield live, cert, token
    live.stop()


def test_https_is_served_with_hsts_and_secure_cookies(tls_server) -> None:
    live, cert, token = tls_server
    assert live.url.startswith("https://")
    trusting = ssl.create_default_context(cafile=str(cert))
    with httpx.Client(base_url=live.url, verify=trusting, timeout=60) as http:
        health = http.get("/api/v1/health")
        assert health.status_code == 200
        assert health.headers["strict-transport-security"] == "max-age=31536000"
        assert http.get("/api/v1/history").status_code == 401
        login = http.get("/login")
        assert "secure" in login.headers["set-cookie"].lower()
        form = {"token": token, "csrf": http.cookies["dermalens_login"], "next": "/history"}
        done = http.post("/login", data=form, follow_redirects=False)
        assert done.status_code == 303 and done.headers["location"] == "/history"
        session = [c for c in done.headers.get_list("set-cookie") if c.startswith("dermalens_session=")]
        assert session and all(
            flag in session[0].lower() for flag in ("secure", "httponly", "samesite=strict")
        )
    with pytest.raises(httpx.ConnectError):  # a client that does not trust the certificate stops
        httpx.get(live.url + "/api/v1/health", timeout=10)
    plain = live.url.replace("https://", "http://")
    with pytest.raises(httpx.TransportError):  # no plain HTTP on the TLS port
        httpx.get(plain + "/api/v1/health", timeout=10)

"""The RDS CA bundle step of ``hybridshop package``.

AWS's truststore cannot be reached from here; a loopback HTTP server stands in for it.
"""

from __future__ import annotations

import datetime
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hybridshop.db.embedded import free_port
from hybridshop.packaging import PackagingError
from hybridshop.packaging.rds_ca import ensure_rds_ca_bundle


def _ca_pem(common_name: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def truststore_stand_in() -> Iterator[dict[str, bytes]]:
    """Serves whatever bytes the test puts under ``pages[path]`` on loopback."""
    pages: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args: object) -> None:
            pass

    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    pages["__base__"] = f"http://127.0.0.1:{port}".encode()
    yield pages
    server.shutdown()
    server.server_close()


def test_local_copy_is_validated_and_copied(tmp_path: Path) -> None:
    source = tmp_path / "bundle.pem"
    source.write_bytes(_ca_pem("Amazon RDS eu-west-1 Root CA RSA2048 G1") + _ca_pem("second"))
    target = tmp_path / "certs" / "rds-global-bundle.pem"
    assert ensure_rds_ca_bundle(source, target) == target
    assert target.read_bytes() == source.read_bytes()


def test_a_file_that_is_not_a_bundle_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "bundle.pem"
    source.write_text("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
    with pytest.raises(PackagingError, match="not a PEM certificate bundle"):
        ensure_rds_ca_bundle(source, tmp_path / "out.pem")


def test_download_keeps_only_amazon_rds_bundles(
    tmp_path: Path, truststore_stand_in: dict[str, bytes]
) -> None:
    base = truststore_stand_in["__base__"].decode()
    truststore_stand_in["/global/global-bundle.pem"] = _ca_pem("Amazon RDS Root 2019 CA")
    truststore_stand_in["/other.pem"] = _ca_pem("Some Other CA")
    target = tmp_path / "rds.pem"
    assert ensure_rds_ca_bundle(None, target, url=f"{base}/global/global-bundle.pem") == target
    assert b"BEGIN CERTIFICATE" in target.read_bytes()
    with pytest.raises(PackagingError, match="did not return Amazon RDS"):
        ensure_rds_ca_bundle(None, tmp_path / "other.pem", url=f"{base}/other.pem")
    # a valid bundle already in place is kept without downloading again
    assert ensure_rds_ca_bundle(None, target, url=f"{base}/missing.pem") == target


def test_offline_download_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(PackagingError, match="--rds-ca-bundle"):
        ensure_rds_ca_bundle(
            None, tmp_path / "x.pem", url=f"http://127.0.0.1:{free_port()}/x.pem", timeout=5
        )

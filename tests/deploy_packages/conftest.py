"""Fixtures shared by the packaging and deploy tests."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hybridshop.db.connection import rds_ca_bundle_path


def make_cert(common_name: str, issuer: str | None = None) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer or common_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def global_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in of AWS's global bundle (the truststore is unreachable here): the same
    subject layout, roots of two regions, an intermediate and an older CA."""
    path = tmp_path_factory.mktemp("ca") / "global-bundle.pem"
    path.write_bytes(
        make_cert("Amazon RDS eu-west-1 Root CA RSA2048 G1")
        + make_cert("Amazon RDS eu-west-1 Root CA ECC384 G1")
        + make_cert("Amazon RDS us-east-1 Root CA RSA2048 G1")
        + make_cert("Amazon RDS eu-west-1 Subordinate CA RSA2048 G1", "Amazon RDS eu-west-1 Root CA RSA2048 G1")
        + make_cert("Amazon RDS Root 2019 CA")
    )  # fmt: skip
    return path


@pytest.fixture
def keep_shipped_bundle() -> Iterator[None]:
    """The CLI copies --rds-ca-bundle into the package; put back what was there."""
    target = rds_ca_bundle_path()
    before = target.read_bytes() if target.is_file() else None
    yield
    if before is None:
        target.unlink(missing_ok=True)
    else:
        target.write_bytes(before)

"""RDS IAM mode: the token is a correctly signed SigV4 presigned request, the connection is
verify-full against a CA bundle, and there is no way back to a password.

The token is checked by recomputing the SigV4 signature here, independently of botocore.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
from pathlib import Path
from urllib.parse import parse_qsl, quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hybridshop.db.connection import (
    DatabaseConfig,
    DatabaseConfigError,
    DatabaseUnavailable,
    connect,
    generate_iam_token,
)
from hybridshop.db.embedded import EmbeddedPostgres

ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
HOST = "shop.abcdefghijkl.eu-west-1.rds.amazonaws.com"


@pytest.fixture
def ca_bundle(tmp_path: Path) -> Path:
    """A throwaway CA certificate standing in for the RDS bundle (content is irrelevant here)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")


def _iam_env(ca: Path, **extra: str) -> dict[str, str]:
    return {
        "DB_AUTH_MODE": "iam",
        "DB_HOST": HOST,
        "DB_NAME": "shop",
        "DB_USER": "app_user",
        "AWS_REGION": "eu-west-1",
        "DB_SSL_ROOT_CERT": str(ca),
        **extra,
    }


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def _expected_signature(token: str) -> str:
    """SigV4 for a presigned GET https://HOST:5432/?Action=connect&... (service rds-db)."""
    host_port, _, query = token.partition("/?")
    params = dict(parse_qsl(query, keep_blank_values=True))
    signature_free = sorted((k, v) for k, v in params.items() if k != "X-Amz-Signature")
    canonical_query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in signature_free
    )
    canonical_request = "\n".join(
        [
            "GET",
            "/",
            canonical_query,
            f"host:{host_port}",
            "",
            "host",
            hashlib.sha256(b"").hexdigest(),
        ]
    )
    amz_date = params["X-Amz-Date"]
    scope = f"{amz_date[:8]}/eu-west-1/rds-db/aws4_request"
    to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            amz_date,
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    key = _hmac(f"AWS4{SECRET_KEY}".encode(), amz_date[:8])
    for part in ("eu-west-1", "rds-db", "aws4_request"):
        key = _hmac(key, part)
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def test_token_is_a_well_formed_signed_sigv4_request(aws_env: None, ca_bundle: Path) -> None:
    config = DatabaseConfig.from_env(_iam_env(ca_bundle))
    token = generate_iam_token(config)
    assert token.startswith(f"{HOST}:5432/?")
    params = dict(parse_qsl(token.partition("/?")[2]))
    assert params["Action"] == "connect"
    assert params["DBUser"] == "app_user"
    assert params["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert params["X-Amz-Credential"].startswith(f"{ACCESS_KEY}/")
    assert params["X-Amz-Credential"].endswith("/eu-west-1/rds-db/aws4_request")
    assert params["X-Amz-Expires"] == "900"
    assert params["X-Amz-SignedHeaders"] == "host"
    assert params["X-Amz-Signature"] == _expected_signature(token)


def test_connection_parameters_are_verify_full_with_a_fresh_token(
    aws_env: None, ca_bundle: Path
) -> None:
    config = DatabaseConfig.from_env(_iam_env(ca_bundle, DB_PORT="6432"))
    tokens = iter(["token-1", "token-2"])
    first = config.connect_kwargs(token_factory=lambda _: next(tokens))
    assert first["sslmode"] == "verify-full"
    assert first["sslrootcert"] == str(ca_bundle)
    assert (first["host"], first["port"], first["dbname"], first["user"]) == (
        HOST,
        6432,
        "shop",
        "app_user",
    )
    assert first["password"] == "token-1"
    assert config.connect_kwargs(token_factory=lambda _: next(tokens))["password"] == "token-2"
    assert "dsn" not in first


def test_the_shipped_bundle_is_the_default(aws_env: None, ca_bundle: Path) -> None:
    env = _iam_env(ca_bundle)
    del env["DB_SSL_ROOT_CERT"]
    from hybridshop.db.connection import rds_ca_bundle_path

    if rds_ca_bundle_path().is_file():
        assert DatabaseConfig.from_env(env).sslrootcert == str(rds_ca_bundle_path())
    else:
        with pytest.raises(DatabaseConfigError, match="RDS CA bundle"):
            DatabaseConfig.from_env(env)


@pytest.mark.parametrize("missing", ["DB_HOST", "DB_NAME", "DB_USER", "AWS_REGION"])
def test_iam_mode_names_what_is_missing(ca_bundle: Path, missing: str) -> None:
    env = _iam_env(ca_bundle)
    del env[missing]
    with pytest.raises(DatabaseConfigError, match=missing):
        DatabaseConfig.from_env(env)


def test_no_password_fallback(
    aws_env: None, ca_bundle: Path, pg: EmbeddedPostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    """IAM mode against a server that WOULD accept a password login: it must refuse, not fall back.

    DATABASE_URL, PGPASSWORD and a password are all available; IAM mode ignores them,
    demands TLS with verification, and so fails against this plain local server.
    """
    monkeypatch.setenv("PGPASSWORD", "postgres")
    env = _iam_env(
        ca_bundle,
        DB_HOST="127.0.0.1",
        DB_PORT=str(pg.port),
        DB_USER="postgres",
        DB_NAME="postgres",
        DATABASE_URL=pg.dsn("postgres"),
        DB_PASSWORD="postgres",
    )
    config = DatabaseConfig.from_env(env)
    with pytest.raises(DatabaseUnavailable, match=r"SSL|ssl"):
        connect(config)
    # ...and without AWS credentials there is no token and no connection attempt at all.
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(DatabaseConfigError, match="credentials"):
        connect(config)


def test_unknown_mode_and_no_config() -> None:
    with pytest.raises(DatabaseConfigError, match="'dsn' or 'iam'"):
        DatabaseConfig.from_env({"DB_AUTH_MODE": "password"})
    with pytest.raises(DatabaseConfigError, match="DATABASE_URL"):
        DatabaseConfig.from_env({})

"""The Amazon RDS certificate bundle, fetched at build time and shipped in the Lambda zips.

The functions connect with ``sslmode=verify-full`` and Datastream verifies the server against
the same bundle, so it must be present before ``terraform apply``. It is public data that AWS
rotates, so it is downloaded from AWS's truststore by ``hybridshop package`` (which already
needs the network for the manylinux wheels) instead of being kept in git, and checked: it must
parse as X.509 certificates and, when downloaded, contain Amazon RDS root CAs.
"""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from pathlib import Path

from hybridshop.db.connection import rds_ca_bundle_path
from hybridshop.packaging.lambda_zip import PackagingError

RDS_CA_URL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"


def certificate_subjects(pem: bytes) -> list[str]:
    """Subjects of the certificates in a PEM bundle; raises PackagingError if it is not one."""
    from cryptography import x509

    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise PackagingError(f"not a PEM certificate bundle: {exc}") from None
    return [c.subject.rfc4514_string() for c in certs]


def ensure_rds_ca_bundle(
    source: Path | None = None,
    target: Path | None = None,
    url: str = RDS_CA_URL,
    timeout: float = 30,
) -> Path:
    """Put a valid bundle at ``target`` (default: the package's ``db/certs``) and return it.

    ``source`` (a local copy) wins; otherwise an existing valid bundle is kept; otherwise it is
    downloaded from ``url``.
    """
    target = target or rds_ca_bundle_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    if source is not None:
        certificate_subjects(source.read_bytes())
        if source.resolve() != target.resolve():
            shutil.copyfile(source, target)
        return target
    if target.is_file():
        try:
            certificate_subjects(target.read_bytes())
            return target
        except PackagingError:
            pass  # a broken earlier download: fetch it again
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - fixed https URL
            pem = response.read()
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise PackagingError(
            f"could not download the RDS CA bundle from {url} ({exc}); "
            "pass --rds-ca-bundle PATH with a copy of it"
        ) from None
    subjects = certificate_subjects(pem)
    if not any("Amazon RDS" in s for s in subjects):
        raise PackagingError(f"{url} did not return Amazon RDS certificates")
    target.write_bytes(pem)
    return target

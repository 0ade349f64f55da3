"""The Amazon RDS certificate bundle, fetched at build time and shipped in the Lambda zips.

The functions connect with ``sslmode=verify-full`` and Datastream verifies the server against
the same bundle, so it must be present before ``terraform apply``. It is public data that AWS
rotates, so it is downloaded from AWS's truststore by ``hybridshop package`` (which already
needs the network for the manylinux wheels) instead of being kept in git, and checked: it must
parse as X.509 certificates and, when downloaded, contain Amazon RDS root CAs.
"""

from __future__ import annotations

import re
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


# ca_cert_identifier -> the words of the matching root's common name, e.g.
# "Amazon RDS eu-west-1 Root CA RSA2048 G1" for rds-ca-rsa2048-g1 in eu-west-1.
CA_IDENTIFIERS = {
    "rds-ca-rsa2048-g1": "RSA2048 G1",
    "rds-ca-rsa4096-g1": "RSA4096 G1",
    "rds-ca-ecc384-g1": "ECC384 G1",
}
_ROOT_CN = re.compile(
    r"^Amazon RDS ([a-z]{2}(?:-[a-z]+)+-\d+) Root CA (RSA2048|RSA4096|ECC384) G1$"
)


def regional_roots(pem: bytes) -> dict[tuple[str, str], bytes]:
    """The regional root CAs of a bundle: (region, ca_cert_identifier) -> one PEM certificate.

    Datastream's ``ca_certificate`` takes the one root that signed the server's chain, not the
    global bundle of every region.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import NameOID

    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise PackagingError(f"not a PEM certificate bundle: {exc}") from None
    by_algorithm = {words: ident for ident, words in CA_IDENTIFIERS.items()}
    roots: dict[tuple[str, str], bytes] = {}
    for cert in certs:
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        match = _ROOT_CN.match(str(names[0].value)) if names else None
        if match and cert.subject == cert.issuer:
            ident = by_algorithm[f"{match.group(2)} G1"]
            roots[(match.group(1), ident)] = cert.public_bytes(Encoding.PEM)
    return roots


def write_regional_roots(bundle: Path, out_dir: Path) -> list[Path]:
    """Write ``<out_dir>/<region>/<ca_cert_identifier>.pem`` for every regional root of
    ``bundle`` (Terraform reads the one for its region and ``db_ca_cert_identifier``)."""
    roots = regional_roots(bundle.read_bytes())
    if not roots:
        raise PackagingError(
            f"{bundle} holds no regional Amazon RDS root CA "
            "(expected subjects like 'Amazon RDS eu-west-1 Root CA RSA2048 G1')"
        )
    if out_dir.exists():
        shutil.rmtree(out_dir)
    written = []
    for (region, ident), pem in sorted(roots.items()):
        path = out_dir / region / f"{ident}.pem"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pem)
        written.append(path)
    return written

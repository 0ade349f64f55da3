"""The JWT authorizer through the real gateway on loopback: every forged, stale or misdirected
token is refused the way API Gateway's JWT authorizer refuses it (401 ``{"message":
"Unauthorized"}`` before any function runs; 403 from the function for a valid token of a
caller it does not allow), never a 5xx, and nothing is written.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from pathlib import Path

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from hybridshop.gateway.authorizer import JwtAuthorizerConfig
from hybridshop.gateway.server import GatewayConfig, LocalGateway

from .conftest import (
    AUDIENCE,
    BUYER,
    KID,
    MALLORY,
    SHOP,
    Api,
    TestIssuer,
    b64url,
    db_rows,
    unsigned,
)

# Every route of the API, with a body where it takes one.
ROUTES = [
    ("GET", "/products", None),
    ("GET", "/products/1", None),
    ("GET", "/categories", None),
    ("POST", "/products", {"name": "forged listing", "price": "1.00"}),
    ("POST", "/products/1/purchase", {}),
]

_other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _hs256_with_public_key(issuer: TestIssuer) -> str:
    """Key confusion: HS256 whose HMAC secret is the issuer's public key (PEM), which a
    verifier that trusts the token's ``alg`` would accept."""
    pem = issuer.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": KID}
    signing_input = (
        b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(issuer.claims()).encode())
    )
    sig = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(sig)


def _tampered(issuer: TestIssuer) -> str:
    """A valid token whose payload was edited afterwards (sub changed, signature kept)."""
    head, _, sig = issuer.token(sub=BUYER).split(".")
    return ".".join((head, b64url(json.dumps(issuer.claims(sub=SHOP)).encode()), sig))


ATTACKS: dict[str, Callable[[TestIssuer], str | None]] = {
    "missing": lambda i: None,
    "empty": lambda i: "",
    "bearer-only": lambda i: "Bearer ",
    "malformed-not-a-jwt": lambda i: "Bearer not.a.jwt",
    "malformed-garbage": lambda i: "Bearer %%%.@@@.!!!",
    # not even a valid header value: the HTTP layer may answer 400 before the authorizer
    "malformed-control-bytes": lambda i: "Bearer \x7f\x00abc",
    "malformed-header-is-a-list": lambda i: (
        "Bearer " + b64url(b"[1]") + "." + b64url(json.dumps(i.claims()).encode()) + ".c2ln"
    ),
    "malformed-two-parts": lambda i: "Bearer " + ".".join(i.token().split(".")[:2]),
    "other-scheme": lambda i: "Basic " + b64url(b"shop:secret"),
    "expired": lambda i: (
        "Bearer " + i.token(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)
    ),
    "no-exp": lambda i: "Bearer " + i.token(exp=None),
    "not-yet-valid-nbf": lambda i: "Bearer " + i.token(nbf=int(time.time()) + 3600),
    "issued-in-the-future": lambda i: "Bearer " + i.token(iat=int(time.time()) + 3600),
    "wrong-issuer": lambda i: "Bearer " + i.token(iss="https://accounts.evil.test"),
    "issuer-prefix": lambda i: "Bearer " + i.token(iss=i.url + "/evil"),
    "no-issuer": lambda i: "Bearer " + i.token(iss=None),
    "wrong-audience": lambda i: "Bearer " + i.token(aud="some-other-api"),
    "no-audience": lambda i: "Bearer " + i.token(aud=None),
    "audience-list-without-ours": lambda i: "Bearer " + i.token(aud=["a", "b"]),
    "wrong-signature-other-key": lambda i: "Bearer " + i.token(key=_other_key),
    "tampered-payload": lambda i: "Bearer " + _tampered(i),
    "signature-stripped": lambda i: "Bearer " + i.token().rsplit(".", 1)[0] + ".",
    "unknown-kid": lambda i: "Bearer " + i.token(headers={"kid": "no-such-key"}),
    "jku-pointing-elsewhere": lambda i: (
        "Bearer " + i.token(key=_other_key, headers={"jku": "http://127.0.0.1:9/jwks.json"})
    ),
    "alg-none": lambda i: "Bearer " + unsigned({"alg": "none", "typ": "JWT"}, i.claims()),
    "alg-none-with-kid": lambda i: (
        "Bearer " + unsigned({"alg": "none", "kid": KID}, i.claims(), b"x")
    ),
    "alg-None-capitalised": lambda i: "Bearer " + unsigned({"alg": "None", "kid": KID}, i.claims()),
    "hs256-signed-with-public-key": lambda i: "Bearer " + _hs256_with_public_key(i),
    "rs512-other-alg": lambda i: (
        "Bearer " + jwt.encode(i.claims(), i.key, algorithm="RS512", headers={"kid": KID})
    ),
    # a valid token, but a head larger than the gateway reads (64 KiB): refused, not a 5xx
    "oversized-head": lambda i: "Bearer " + i.token(pad="x" * 80_000),
}


EXPECTED = {
    "malformed-control-bytes": {400: "Bad Request", 401: "Unauthorized"},
    "oversized-head": {400: "Bad Request", 431: "Request Header Fields Too Large"},
}


@pytest.mark.parametrize("name", list(ATTACKS))
def test_forged_or_invalid_token_is_401_on_every_route(name: str, api: Api, issuer: TestIssuer):
    authorization = ATTACKS[name](issuer)
    for method, path, body in ROUTES:
        headers = {} if authorization is None else {"Authorization": authorization}
        resp = api.request(method, path, subject=None, headers=headers, json=body)
        expected = EXPECTED.get(name, {401: "Unauthorized"})
        assert resp.status_code in expected, (name, method, path, resp.status_code, resp.text)
        assert resp.json() == {"message": expected[resp.status_code]}, (name, path)
        # API Gateway's answer, not our function's: no hint of why, no stack
        assert "Traceback" not in resp.text


@pytest.mark.parametrize("subject", [MALLORY, ""])
def test_valid_token_of_a_caller_not_allowed_is_403(subject: str, api: Api):
    """Signed by the trusted issuer for our audience, but for someone we never allowed (on
    Cloud Run: any Google identity can mint a token for our audience)."""
    for method, path, body in ROUTES:
        resp = api.request(method, path, subject=subject, json=body)
        assert resp.status_code == 403, (subject, method, path, resp.text)
        assert resp.json()["error"]["code"] == "forbidden"


def test_the_valid_token_is_200(api: Api):
    product = api.add(name="authorizer control item")
    for path in ("/products", f"/products/{product['id']}", "/categories"):
        resp = api.request("GET", path)
        assert resp.status_code == 200, (path, resp.text)
    # also with the scheme in any case and no "Bearer" at all, as API Gateway accepts
    token = api.issuer.token()
    for value in (f"bearer {token}", token):
        resp = api.request("GET", "/products", subject=None, headers={"Authorization": value})
        assert resp.status_code == 200, value[:10]
    resp = api.request("POST", f"/products/{product['id']}/purchase", json={})
    assert resp.status_code == 200, resp.text


def test_an_audience_list_with_ours_and_client_id_are_accepted(api: Api, issuer: TestIssuer):
    for token in (
        issuer.token(aud=["other", AUDIENCE]),
        issuer.token(aud=None, client_id=AUDIENCE),
    ):
        resp = api.request("GET", "/products", subject=None, headers={"Authorization": token})
        assert resp.status_code == 200, resp.text


def test_refused_tokens_wrote_nothing(api: Api, module_db: str):
    """After every attack above (module order), no forged listing exists and no purchase of
    product 1 was recorded by a refused caller."""
    for name in ATTACKS:
        api.request("POST", "/products", subject=None, headers={"Authorization": name})
    assert db_rows(module_db, "SELECT count(*) FROM products WHERE name = 'forged listing'") == [
        (0,)
    ]


def test_an_unreachable_issuer_means_401_not_5xx(
    module_db: str, issuer: TestIssuer, tmp_path: Path
):
    """The identity provider is down (JWKS cannot be fetched): refuse, do not fail."""
    from hybridshop.db.embedded import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    gateway = LocalGateway(
        GatewayConfig(
            port=0,
            env={"DATABASE_URL": module_db, "LOG_LEVEL": "WARNING"},
            concurrency=1,
            authorizer=JwtAuthorizerConfig(issuer=dead, audiences=(AUDIENCE,)),
            state_dir=tmp_path,
            quiet=True,
            log=lambda line: None,
        )
    )
    gateway.start()
    try:
        token = issuer.token(iss=dead)
        resp = requests.get(
            gateway.url + "/products", headers={"Authorization": f"Bearer {token}"}, timeout=15
        )
        assert resp.status_code == 401, resp.text
        assert resp.json() == {"message": "Unauthorized"}
    finally:
        gateway.stop()

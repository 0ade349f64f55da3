"""JWT authorizer (HTTP API semantics) and the local OIDC issuer, over real HTTP."""

from __future__ import annotations

import os
import stat
import time
from concurrent.futures import ThreadPoolExecutor

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from hybridshop.gateway.authorizer import JwtAuthorizerConfig, claim_as_string
from hybridshop.gateway.local_issuer import METADATA_IDENTITY_PATH, LocalIssuer
from hybridshop.settings import LOCAL_SERVICE_ACCOUNT as SERVICE_ACCOUNT

from .conftest import ECHO

AUDIENCE = "hybridshop-api"
UNAUTHORIZED = {"message": "Unauthorized"}


@pytest.fixture
def secured(make_gateway):
    gateway, log = make_gateway(
        functions=(ECHO,), local_issuer=True, authorizer=JwtAuthorizerConfig.local((AUDIENCE,))
    )
    assert gateway.issuer is not None
    return gateway, gateway.issuer, log


def metadata_token(gateway, audience: str = AUDIENCE) -> str:
    response = requests.get(
        gateway.metadata_url + METADATA_IDENTITY_PATH,
        params={"audience": audience},
        headers={"Metadata-Flavor": "Google"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def call(gateway, authorization: str | None) -> requests.Response:
    headers = {"Authorization": authorization} if authorization is not None else {}
    return requests.get(gateway.url + "/echo/1", headers=headers, timeout=10)


def test_valid_token_reaches_handler_with_claims_as_strings(secured) -> None:
    gateway, issuer, _ = secured
    token = metadata_token(gateway)
    for authorization in (f"Bearer {token}", token):  # API Gateway accepts both
        response = call(gateway, authorization)
        assert response.status_code == 200, response.text
    authorizer = response.json()["event"]["requestContext"]["authorizer"]
    claims = authorizer["jwt"]["claims"]
    assert claims["iss"] == gateway.issuer_url == issuer.issuer_url
    assert claims["aud"] == AUDIENCE
    assert claims["sub"] == claims["email"] == SERVICE_ACCOUNT
    assert claims["email_verified"] == "true"
    assert all(isinstance(v, str) for v in claims.values())
    assert int(claims["exp"]) - int(claims["iat"]) == 3600
    assert "scopes" not in authorizer["jwt"]


def test_scopes_from_scope_claim(secured) -> None:
    gateway, issuer, _ = secured
    token = issuer.issue(AUDIENCE, extra={"scope": "products:read products:write"})
    response = call(gateway, f"Bearer {token}")
    assert response.status_code == 200
    jwt_block = response.json()["event"]["requestContext"]["authorizer"]["jwt"]
    assert jwt_block["scopes"] == ["products:read", "products:write"]


def test_client_id_accepted_instead_of_aud(secured) -> None:
    gateway, issuer, _ = secured
    token = jwt.encode(
        {"iss": issuer.issuer_url, "client_id": AUDIENCE, "sub": "x", "exp": time.time() + 60},
        issuer._key,
        algorithm="RS256",
        headers={"kid": issuer.kid},
    )
    assert call(gateway, f"Bearer {token}").status_code == 200


def test_rejections_are_401_and_handler_not_called(secured, tmp_path) -> None:
    gateway, issuer, log = secured
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    base = {"iss": issuer.issuer_url, "aud": AUDIENCE, "sub": "s", "iat": now, "exp": now + 600}
    foreign_issuer = LocalIssuer("http://127.0.0.1:1/_local", gateway.config.state_dir / "issuer")
    bad = {
        "missing": None,
        "empty": "Bearer ",
        "garbage": "Bearer not.a.jwt",
        "expired": f"Bearer {issuer.issue(AUDIENCE, lifetime_s=-3600)}",
        "wrong aud": f"Bearer {issuer.issue('someone-else')}",
        "wrong iss": f"Bearer {foreign_issuer.issue(AUDIENCE)}",
        "bad signature": "Bearer "
        + jwt.encode(base, other_key, algorithm="RS256", headers={"kid": issuer.kid}),
        "unknown kid": "Bearer "
        + jwt.encode(base, other_key, algorithm="RS256", headers={"kid": "nope"}),
        "not yet valid": "Bearer "
        + jwt.encode(
            {**base, "nbf": now + 3600}, issuer._key, algorithm="RS256", headers={"kid": issuer.kid}
        ),
        "no exp": "Bearer "
        + jwt.encode(
            {k: v for k, v in base.items() if k != "exp"},
            issuer._key,
            algorithm="RS256",
            headers={"kid": issuer.kid},
        ),
        "HS256": "Bearer "
        + jwt.encode(
            base,
            "a-shared-secret-of-sufficient-length-32b",
            algorithm="HS256",
            headers={"kid": issuer.kid},
        ),
    }
    for name, authorization in bad.items():
        response = call(gateway, authorization)
        assert response.status_code == 401, name
        assert response.json() == UNAUTHORIZED, name
    assert not any(line.startswith("[Echo] echo call") for line in log.lines)
    assert gateway.health()["functions"]["Echo"]["environments"] == 0


def test_authorizer_discovers_remote_issuer_over_http(make_gateway) -> None:
    issuer_gateway, _ = make_gateway(functions=(), local_issuer=True)
    api, _ = make_gateway(
        functions=(ECHO,),
        authorizer=JwtAuthorizerConfig(issuer=issuer_gateway.issuer_url, audiences=("a", "b")),
    )
    token = metadata_token(issuer_gateway, audience="b")
    response = call(api, f"Bearer {token}")
    assert response.status_code == 200, response.text
    assert response.json()["event"]["requestContext"]["authorizer"]["jwt"]["claims"]["aud"] == "b"
    assert call(api, f"Bearer {metadata_token(issuer_gateway, audience='c')}").status_code == 401


def test_metadata_endpoint_requires_flavor_header(make_gateway) -> None:
    gateway, _ = make_gateway(functions=(), local_issuer=True)
    url = gateway.metadata_url + METADATA_IDENTITY_PATH
    response = requests.get(url, params={"audience": AUDIENCE}, timeout=10)
    assert response.status_code == 403
    response = requests.get(
        url, params={"audience": AUDIENCE}, headers={"Metadata-Flavor": "Other"}, timeout=10
    )
    assert response.status_code == 403
    response = requests.get(url, headers={"Metadata-Flavor": "Google"}, timeout=10)
    assert response.status_code == 400  # audience is required


def test_openid_configuration_and_jwks_verify_issued_tokens(make_gateway) -> None:
    gateway, _ = make_gateway(functions=(), local_issuer=True)
    config = requests.get(
        gateway.issuer_url + "/.well-known/openid-configuration", timeout=10
    ).json()
    assert config["issuer"] == gateway.issuer_url
    assert config["jwks_uri"] == gateway.issuer_url + "/jwks.json"
    token = metadata_token(gateway, audience="aud-x")
    client = jwt.PyJWKClient(config["jwks_uri"])
    key = client.get_signing_key_from_jwt(token)
    claims = jwt.decode(
        token, key.key, algorithms=["RS256"], audience="aud-x", issuer=gateway.issuer_url
    )
    assert claims["email"] == SERVICE_ACCOUNT


def test_issuer_key_created_once_and_private(tmp_path) -> None:
    key_dir = tmp_path / "issuer"
    first = LocalIssuer("http://127.0.0.1:3000/_local", key_dir)
    key_files = list(key_dir.iterdir())
    assert len(key_files) == 1
    assert stat.S_IMODE(os.stat(key_files[0]).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(key_dir).st_mode) == 0o700
    second = LocalIssuer("http://127.0.0.1:3000/_local", key_dir)
    assert second.kid == first.kid
    assert second.jwks() == first.jwks()


def test_local_authorizer_requires_local_issuer() -> None:
    from hybridshop.gateway.server import GatewayConfig, LocalGateway

    with pytest.raises(ValueError, match="local_issuer"):
        LocalGateway(GatewayConfig(port=0, authorizer=JwtAuthorizerConfig.local()))


def test_claims_rendered_like_aws() -> None:
    assert claim_as_string(True) == "true"
    assert claim_as_string(1583352238) == "1583352238"
    assert claim_as_string(1583352238.0) == "1583352238"
    assert claim_as_string(["admin", "users"]) == "[admin users]"
    assert claim_as_string("x") == "x"


def test_first_requests_in_parallel_do_not_starve_the_jwks_fetch(secured) -> None:
    """The authorizer fetches the local issuer's JWKS from this same gateway; many first
    requests at once must not occupy every thread that could serve that fetch."""
    gateway, _, _ = secured
    token = metadata_token(gateway)
    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(lambda _: call(gateway, f"Bearer {token}").status_code, range(12)))
    assert statuses == [200] * 12

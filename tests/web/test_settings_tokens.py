"""Settings validation and the ID-token source (against the gateway's local issuer)."""

from __future__ import annotations

import time

import pytest
import requests

from hybridshop.db.embedded import free_port
from hybridshop.gateway.server import LocalGateway
from hybridshop.web.settings import SettingsError, WebSettings
from hybridshop.web.tokens import IdTokenSource, TokenError, _expiry

from .conftest import AUDIENCE, metadata_url

PROD = {
    "SHOP_ENV": "production",
    "SECRET_KEY": "k" * 40,
    "API_BASE_URL": "https://abc.execute-api.eu-west-1.amazonaws.com",
    "API_AUDIENCE": "hybridshop-api",
}


def test_production_settings_from_env():
    s = WebSettings.from_env(PROD)
    assert s.production and s.metadata_server_url == "http://metadata.google.internal"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"SECRET_KEY": ""}, "SECRET_KEY is required"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY is required"),
        ({"API_AUDIENCE": ""}, "API_AUDIENCE is required"),
        ({"API_BASE_URL": "http://api.example.com"}, "must use https"),
        ({"API_BASE_URL": "ftp://x"}, "API_BASE_URL must be an http(s) URL"),
        ({"SHOP_ENV": "staging"}, "SHOP_ENV must be one of"),
        ({"API_READ_TIMEOUT": "soon"}, "API_READ_TIMEOUT must be a number"),
        ({"API_CONNECT_TIMEOUT": "0"}, "API_CONNECT_TIMEOUT must be > 0"),
    ],
)
def test_bad_settings_stop_the_app(change: dict[str, str], message: str):
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        WebSettings.from_env({**PROD, **change})


def test_missing_shop_env_means_production_and_development_gets_a_key():
    with pytest.raises(SettingsError, match="SECRET_KEY"):
        WebSettings.from_env({})
    dev = WebSettings.from_env({"SHOP_ENV": "development"})
    assert len(dev.secret_key) >= 32
    assert dev.secret_key != WebSettings.from_env({"SHOP_ENV": "development"}).secret_key


def test_token_from_local_metadata_server_is_cached(gateway: LocalGateway):
    source = IdTokenSource(metadata_url(gateway), AUDIENCE)
    first = source.token()
    assert source.token() == first and source.fetches == 1
    assert _expiry(first) > time.time() + 600
    # the token is what the API's JWT authorizer accepts
    ok = requests.get(
        f"{gateway.url}/categories", headers={"Authorization": f"Bearer {first}"}, timeout=10
    )
    assert ok.status_code == 200
    source.invalidate()
    source.token()
    assert source.fetches == 2


def test_unreachable_metadata_server_is_a_token_error():
    source = IdTokenSource(f"http://127.0.0.1:{free_port()}", AUDIENCE, timeout_s=0.5)
    with pytest.raises(TokenError, match="unreachable"):
        source.token()


def test_metadata_answer_that_is_not_a_jwt_is_rejected():
    with pytest.raises(TokenError):
        _expiry("not-a-jwt")

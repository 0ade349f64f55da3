"""The shop's only way to reach the catalog: the HTTP API (in production, in another cloud).

One ``requests.Session`` per process gives connection reuse (keep-alive) across requests and
threads. Reads are retried with backoff; a purchase carries an idempotency key so that the
one retry we allow after a lost connection can never buy twice.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from hybridshop.web.tokens import IdTokenSource, TokenError

log = logging.getLogger("hybridshop.web.api")

# 429: the gateway shed the request before any function ran (throttling), safe to retry
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
BACKOFF_S = 0.1


@dataclass
class FieldError:
    field: str
    message: str


@dataclass
class ApiError(Exception):
    """The API answered with an error we can explain to the user."""

    status: int
    code: str
    message: str
    details: list[FieldError] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"

    def field_errors(self) -> dict[str, str]:
        """First message per field, for showing beside the form inputs."""
        out: dict[str, str] = {}
        for d in self.details:
            out.setdefault(d.field, d.message)
        return out


class ApiUnavailable(Exception):
    """The API could not be reached or did not answer in time: the shop shows a 503 page."""


def _parse_error(resp: requests.Response) -> ApiError:
    try:
        body = resp.json()
    except ValueError:
        body = None
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        details = [
            FieldError(str(d.get("field", "")), str(d.get("message", "")))
            for d in err.get("details") or []
            if isinstance(d, dict)
        ]
        return ApiError(
            resp.status_code,
            str(err.get("code", "error")),
            str(err.get("message", "")),
            details,
        )
    # API Gateway's own shapes: {"message": "Not Found"} / {"message": "Unauthorized"}.
    message = body.get("message") if isinstance(body, dict) else None
    return ApiError(resp.status_code, "gateway", str(message or resp.reason or "error"))


class ApiClient:
    """Typed-enough wrapper around the catalog API contract (dicts in, dicts out)."""

    def __init__(
        self,
        base_url: str,
        *,
        token_source: IdTokenSource | None = None,
        connect_timeout_s: float = 2.0,
        read_timeout_s: float = 10.0,
        get_retries: int = 2,
        pool_size: int = 16,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._tokens = token_source
        self._timeout = (connect_timeout_s, read_timeout_s)
        self._get_retries = get_retries
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["Accept"] = "application/json"
        self.session.headers["User-Agent"] = "hybridshop-web/1"

    # -- transport -------------------------------------------------------------------------

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        if self._tokens is not None:
            try:
                headers["Authorization"] = f"Bearer {self._tokens.token()}"
            except TokenError as exc:
                log.error("no identity token for the API: %s", exc)
                raise ApiUnavailable(str(exc)) from exc
        return headers

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json_body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        retries: int = 0,
    ) -> requests.Response:
        url = self.base_url + path
        attempt = 0
        while True:
            try:
                resp = self.session.request(
                    method,
                    url,
                    params=params,
                    json=json_body,
                    headers=self._headers(headers),
                    timeout=self._timeout,
                )
            except requests.RequestException as exc:
                reason = exc.__class__.__name__
                if attempt >= retries:
                    log.warning(
                        "API %s %s failed after %d attempt(s): %s",
                        method,
                        path,
                        attempt + 1,
                        reason,
                    )
                    raise ApiUnavailable(reason) from exc
            else:
                if resp.status_code == 401 and self._tokens is not None and attempt == 0:
                    # A rotated key or a clock skew: fetch a new token once and try again.
                    self._tokens.invalidate()
                    retries = max(retries, 1)
                elif resp.status_code not in RETRYABLE_STATUSES or attempt >= retries:
                    return resp
            attempt += 1
            time.sleep(BACKOFF_S * (2 ** (attempt - 1)))

    def _json(self, resp: requests.Response, expected: int) -> dict[str, Any]:
        if resp.status_code in RETRYABLE_STATUSES:
            log.warning("API answered %d for %s", resp.status_code, resp.request.path_url)
            raise ApiUnavailable(f"API answered {resp.status_code}")
        if resp.status_code != expected:
            error = _parse_error(resp)
            if resp.status_code in (401, 403):
                # Our identity was refused: a deployment problem, not something a shopper can fix.
                log.error("API refused the shop's identity: %s", error)
                raise ApiUnavailable(str(error))
            if resp.status_code >= 500:
                log.error("API error %s for %s", error, resp.request.path_url)
                raise ApiUnavailable(str(error))
            raise error
        try:
            data = resp.json()
        except ValueError as exc:
            raise ApiUnavailable("API answered with something that is not JSON") from exc
        if not isinstance(data, dict):
            raise ApiUnavailable("API answered with an unexpected JSON shape")
        return data

    def _get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        resp = self._send("GET", path, params=params, retries=self._get_retries)
        return self._json(resp, 200)

    # -- the contract ----------------------------------------------------------------------

    def list_products(
        self,
        *,
        category: str | None = None,
        q: str | None = None,
        limit: int = 24,
        cursor: str | None = None,
        include_sold: bool = True,
    ) -> dict[str, Any]:
        params = {"limit": str(limit), "include_sold": "true" if include_sold else "false"}
        if category:
            params["category"] = category
        if q:
            params["q"] = q
        if cursor:
            params["cursor"] = cursor
        return self._get("/products", params)

    def get_product(self, product_id: int) -> dict[str, Any]:
        return self._get(f"/products/{product_id}")

    def categories(self) -> list[dict[str, Any]]:
        items = self._get("/categories").get("items")
        return items if isinstance(items, list) else []

    def add_product(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Never retried: a lost answer could mean the product exists; the user decides."""
        return self._json(self._send("POST", "/products", json_body=fields), 201)

    def purchase(
        self, product_id: int, *, idempotency_key: str, buyer_ref: str | None = None
    ) -> dict[str, Any]:
        """Buy one item. Retried once on a lost connection: safe, the key makes it the same order."""
        body: dict[str, Any] = {"channel": "web"}
        if buyer_ref:
            body["buyer_ref"] = buyer_ref
        resp = self._send(
            "POST",
            f"/products/{product_id}/purchase",
            json_body=body,
            headers={"Idempotency-Key": idempotency_key},
            retries=1,
        )
        return self._json(resp, 200)

    def close(self) -> None:
        self.session.close()

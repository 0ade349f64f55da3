"""Who may add products in the shop: a seller signed in with the shop's admin token.

The session remembers a keyed digest of the token, not the token, so changing
``SHOP_ADMIN_TOKEN`` signs every seller out. Where to go after signing in (``next``) is
only ever a path on this site: anything else (``//evil``, ``https://evil``, ``/\\evil``)
falls back to the default, so the sign-in page cannot be used as an open redirect.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

from flask import current_app, session

from hybridshop.web.state import shop

SESSION_KEY = "seller"


def _digest(token: str) -> str:
    key = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(key, token.encode(), hashlib.sha256).hexdigest()


def signed_in() -> bool:
    settings = shop().settings
    if settings.catalog_open:
        return True
    if not settings.admin_token:
        return False
    remembered = session.get(SESSION_KEY)
    return isinstance(remembered, str) and hmac.compare_digest(
        remembered, _digest(settings.admin_token)
    )


def sign_in(token: str) -> bool:
    expected = shop().settings.admin_token
    if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
        return False
    session[SESSION_KEY] = _digest(expected)
    session.permanent = True
    return True


def sign_out() -> None:
    session.pop(SESSION_KEY, None)


def safe_next(target: str | None, default: str) -> str:
    """``target`` if it is a path on this site, else ``default``."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return default
    if "\\" in target or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target

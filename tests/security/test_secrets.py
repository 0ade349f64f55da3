"""Secrets never leave the stack: ``hybridshop up --auth`` runs as a user runs it (a
subprocess, free ports, its own state directory) with known secret values — the database
password in DATABASE_URL, the shop's SECRET_KEY, the seller token, a Terraform-style
db_password, the local issuer's private signing key — then everything it printed and
everything it served (bodies and headers of the API, the shop, the dashboards, errors
included) is searched for each secret in raw, URL-encoded, base64 and hex form.

The same run proves hostile product text, bought through the shop and replicated to the
warehouse, renders as text in the dashboards too (and that no script runs in Chromium).
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import psycopg2
import pytest
import requests
from cryptography.hazmat.primitives import serialization

from conftest import create_database
from hybridshop.db.embedded import EmbeddedPostgres, free_port

from .conftest import csrf_from

XSS_NAME = "<img src=x onerror=alert(1)> \"><script>alert('dash')</script>"
START_TIMEOUT_S = 60.0


def encodings(secret: str) -> set[str]:
    raw = secret.encode()
    forms = {
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        raw.hex(),
        json.dumps(secret)[1:-1],
    }
    return {f for f in forms if len(f) >= 8}


class Served:
    """Everything the stack answered, for the grep at the end."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def keep(self, resp: requests.Response) -> requests.Response:
        self.parts.append(f"{resp.status_code} {resp.url}")
        self.parts.extend(f"{k}: {v}" for k, v in resp.headers.items())
        self.parts.append(resp.text)
        for r in resp.history:
            self.keep(r)
        return resp

    def text(self) -> str:
        return "\n".join(self.parts)


@pytest.fixture
def stack(pg: EmbeddedPostgres, tmp_path: Path) -> Iterator[dict[str, Any]]:
    password = "Db-" + secrets.token_urlsafe(12) + "@/:%"  # needs URL-encoding in a DSN
    user = "app_" + secrets.token_hex(4)
    dsn = create_database(pg)
    db = dsn.rsplit("/", 1)[1]
    admin = psycopg2.connect(pg.dsn("postgres"))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE ROLE {user} LOGIN SUPERUSER PASSWORD %s", (password,))
        cur.execute(f'ALTER DATABASE "{db}" OWNER TO {user}')
    values = {
        "db_password": password,
        "secret_key": "flask-" + secrets.token_urlsafe(32),
        "admin_token": "seller-" + secrets.token_urlsafe(24),
        "tf_db_password": "tfvar-" + secrets.token_urlsafe(16),
    }
    ports = {name: free_port() for name in ("api", "web", "dash", "pg")}
    home = tmp_path / "home"
    env = {
        **os.environ,
        "DATABASE_URL": f"postgresql://{user}:{quote(password, safe='')}@127.0.0.1:{pg.port}/{db}",
        "SECRET_KEY": values["secret_key"],
        "SHOP_ADMIN_TOKEN": values["admin_token"],
        "TF_VAR_db_password": values["tf_db_password"],
        "DB_PASSWORD": values["tf_db_password"],
        "HYBRIDSHOP_HOME": str(home),
        "LOG_LEVEL": "DEBUG",  # the most a user could ask it to print
        "COLUMNS": "200",
        "PYTHONUNBUFFERED": "1",
    }
    out, err = (tmp_path / "stdout.txt").open("wb"), (tmp_path / "stderr.txt").open("wb")
    cli = Path(sys.executable).with_name("hybridshop")
    proc = subprocess.Popen(
        [
            str(cli),
            "up",
            "--auth",
            "--api-port",
            str(ports["api"]),
            "--web-port",
            str(ports["web"]),
            "--dashboard-port",
            str(ports["dash"]),
            "--pg-port",
            str(ports["pg"]),
            "--concurrency",
            "1",
        ],
        env=env,
        stdout=out,
        stderr=err,
        stdin=subprocess.DEVNULL,
    )
    urls = {
        "api": f"http://127.0.0.1:{ports['api']}",
        "web": f"http://127.0.0.1:{ports['web']}",
        "dash": f"http://127.0.0.1:{ports['dash']}",
    }
    try:
        _wait_ready(proc, urls, tmp_path)
        yield {
            "urls": urls,
            "values": values,
            "home": home,
            "proc": proc,
            "tmp": tmp_path,
            "user": user,
        }
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        out.close()
        err.close()
        with admin.cursor() as cur:
            cur.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                "WHERE database = %s AND NOT active",
                (db,),
            )
        admin.close()


def _wait_ready(proc: subprocess.Popen[bytes], urls: dict[str, str], tmp: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    pending = {"web": "/health", "dash": "/health", "api": "/openapi.json"}
    while pending:
        if proc.poll() is not None:
            pytest.fail("hybridshop up exited early:\n" + (tmp / "stderr.txt").read_text()[-3000:])
        for name, path in list(pending.items()):
            try:
                if requests.get(urls[name] + path, timeout=2).status_code == 200:
                    del pending[name]
            except requests.RequestException:
                pass
        if time.monotonic() > deadline:
            pytest.fail(f"hybridshop up not ready after {START_TIMEOUT_S}s: {pending}")
        time.sleep(0.2)


def _signing_key_forms(home: Path) -> set[str]:
    """Lines of the local issuer's private key(s) and the key's private exponent."""
    forms: set[str] = set()
    pems = list(home.rglob("*.pem"))
    assert pems, f"no signing key found under {home}"
    for pem in pems:
        text = pem.read_text()
        if "PRIVATE KEY" not in text:
            continue
        body = [ln for ln in text.splitlines() if ln and not ln.startswith("-----")]
        forms.update(ln for ln in body[1:-1])  # every full line of the key body
        key = serialization.load_pem_private_key(text.encode(), password=None)
        d = key.private_numbers().d  # type: ignore[union-attr]
        forms.add(format(d, "x")[:32])
        forms.add(
            base64.urlsafe_b64encode(d.to_bytes((d.bit_length() + 7) // 8, "big")).decode()[:32]
        )
    return forms


def _exercise(urls: dict[str, str], values: dict[str, str], served: Served) -> int:
    """Use every component as a user and an attacker would; returns the hostile product id."""
    s = requests.Session()
    api, web, dash = urls["api"], urls["web"], urls["dash"]

    def get(url: str, **kw: Any) -> requests.Response:
        return served.keep(s.get(url, timeout=15, **kw))

    def post(url: str, **kw: Any) -> requests.Response:
        return served.keep(s.post(url, timeout=15, **kw))

    # the API directly, without and with junk credentials
    for path in ("/products", "/products/1", "/categories", "/nope", "/openapi.json"):
        get(api + path)
        get(api + path, headers={"Authorization": "Bearer " + "x" * 40})
    post(api + "/products", json={"name": "x"})
    post(api + "/products", data=b"\x00" * 2000, headers={"Content-Type": "application/json"})
    # the shop: browse, errors, sign in (wrong, then right), add, buy
    for path in ("/", "/health", "/ready", "/orders", "/no/such", "/products/999999"):
        get(web + path)
    get(web + "/products/1/buy")  # 405
    post(web + "/manage/login", data={"token": "nope"})  # no CSRF -> 400
    login = get(web + "/manage/login").text
    wrong = post(web + "/manage/login", data={"csrf_token": csrf_from(login), "token": "nope"})
    assert wrong.status_code == 403
    ok = post(
        web + "/manage/login",
        data={"csrf_token": csrf_from(login), "token": values["admin_token"]},
        allow_redirects=False,
    )
    assert ok.status_code == 303, ok.text[:500]
    form = get(web + "/manage/products/new")
    assert form.status_code == 200
    token = csrf_from(form.text)
    bad = post(web + "/manage/products/new", data={"csrf_token": token, "name": "", "price": "x"})
    assert bad.status_code == 422
    post(web + "/manage/products/new", data={"csrf_token": token, "name": "y" * 80_000})  # 413
    added = post(
        web + "/manage/products/new",
        data={
            "csrf_token": token,
            "name": XSS_NAME,
            "price": "12.50",
            "description": XSS_NAME,
            "category": "toys",
        },
        allow_redirects=False,
    )
    assert added.status_code == 303, added.text[:800]
    location = added.headers["Location"]
    product_id = int(re.search(r"/products/(\d+)", location).group(1))  # type: ignore[union-attr]
    page = get(web + location).text
    assert XSS_NAME not in page
    key = re.search(r'name="purchase_key" value="([0-9a-f]{32})"', page)
    assert key
    bought = post(
        web + f"/products/{product_id}/buy",
        data={"csrf_token": csrf_from(page), "purchase_key": key.group(1)},
    )
    assert bought.status_code == 200, bought.text[:500]
    assert XSS_NAME not in bought.text
    # the dashboards, once the purchase has replicated
    deadline = time.monotonic() + 20
    while True:
        data = get(dash + "/api/dashboards/sales").text
        if "onerror" in data or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert "onerror" in data, "the hostile product never reached the Sales dashboard"
    for path in ("/", "/dashboards/sales", "/dashboards/catalog", "/dashboards/pipeline_health"):
        body = get(dash + path).text
        assert XSS_NAME not in body and "<img src=x" not in body, path
    for path in ("/dashboards/nope", "/api/state", "/dashboards/%3Cscript%3Ealert(1)%3C"):
        resp = get(dash + path)
        assert "<script>alert" not in resp.text and "Traceback" not in resp.text, path
    return product_id


@pytest.mark.browser
def test_no_secret_is_printed_or_served_and_hostile_text_stays_text(
    stack: dict[str, Any], browser: Any
):
    served = Served()
    urls, values = stack["urls"], stack["values"]
    product_id = _exercise(urls, values, served)

    # in a real browser nothing of the hostile name runs, in the shop or the dashboards
    dialogs: list[str] = []
    ctx = browser.new_context()
    page = ctx.new_page()

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    for url in (
        f"{urls['web']}/products/{product_id}",
        f"{urls['web']}/",
        f"{urls['dash']}/dashboards/sales",
        f"{urls['dash']}/dashboards/catalog",
    ):
        page.goto(url, wait_until="load")
        page.wait_for_timeout(300)
        served.parts.append(page.content())
    ctx.close()
    assert dialogs == [], f"a script from product data ran: {dialogs}"

    # stop it as a user does, then read all it printed
    proc = stack["proc"]
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0
    printed = (stack["tmp"] / "stdout.txt").read_text(errors="replace") + (
        stack["tmp"] / "stderr.txt"
    ).read_text(errors="replace")
    logs = "\n".join(
        p.read_text(errors="replace") for p in stack["home"].rglob("*.log") if p.is_file()
    )
    # controls: we did read its output, and the redacted DSN it prints (user, no password)
    assert "hybridshop is running" in printed
    assert f"{stack['user']}:***@" in printed
    everything = {"printed": printed, "served": served.text(), "log files": logs}
    needles = {name: encodings(v) for name, v in values.items()}
    needles["signing key"] = _signing_key_forms(stack["home"])
    leaks = [
        (name, where)
        for name, forms in needles.items()
        for where, text in everything.items()
        if any(f in text for f in forms)
    ]
    assert leaks == [], f"secrets found: {leaks}"
    # no response names the software and versions behind it (Server: Werkzeug/3.1 Python/3.11)
    banners = re.findall(r"(?im)^(?:server|x-powered-by): .*$", served.text())
    assert not [b for b in banners if re.search(r"/\d|python|werkzeug", b, re.I)], set(banners)
    # and nothing printed a stack trace while we attacked it
    assert "Traceback" not in printed, printed[-3000:]

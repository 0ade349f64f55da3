"""The charting JavaScript (vega + vega-lite + vega-embed), from the vl-convert-python wheel.

``vl_convert.javascript_bundle()`` builds one self-contained script that defines
``window.vegaEmbed`` — no CDN, nothing fetched. Building it takes several seconds, so it is
cached on disk per vl-convert version (``HYBRIDSHOP_CACHE_DIR``, default
``~/.cache/hybridshop``) and in memory. ``warm()``, called when a server starts, builds it in
a child process (``python -m hybridshop.analytics.render.bundle``): a build running in a
thread of the server would hold up its exit on Ctrl-C until it finished, a child is simply
terminated (``stop_warming()``).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

_lock = threading.Lock()
_bundle: str | None = None


def cache_dir() -> Path:
    env = os.environ.get("HYBRIDSHOP_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "hybridshop"


def _cache_file() -> Path:
    import vl_convert

    key = "-".join(
        [
            vl_convert.get_vega_version(),
            vl_convert.get_vegalite_versions()[-1],
            vl_convert.get_vega_embed_version(),
        ]
    )
    return cache_dir() / f"vega-bundle-{key}.js"


_warming: subprocess.Popen[bytes] | None = None
WARM_WAIT_S = 180.0


def _read_cache(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return ""
    return text if "window.vegaEmbed" in text else ""


def vega_bundle() -> str:
    """The script (about 0.9 MB); built once per vl-convert version, then read from disk."""
    global _bundle
    with _lock:
        if _bundle is not None:
            return _bundle
        path = _cache_file()
        text = _read_cache(path)
        deadline = time.monotonic() + WARM_WAIT_S
        while not text and _warming is not None and _warming.poll() is None:
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)  # the child is building it: wait rather than build it twice
            text = _read_cache(path)
        if not text:
            text = _read_cache(path)
        if not text:
            import vl_convert

            # the default snippet (window.vegaEmbed, window.vega, window.vegaLite); the stub
            # marks the optional argument as required
            text = vl_convert.javascript_bundle()  # type: ignore[call-arg]
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
                tmp.write_text(text, encoding="utf-8")
                os.replace(tmp, path)
            except OSError:
                pass  # a read-only home: keep it in memory only
        _bundle = text
        return text


_etag: str | None = None


def bundle_etag() -> str:
    global _etag
    if _etag is None:
        _etag = hashlib.sha256(vega_bundle().encode()).hexdigest()[:16]
    return _etag


def warm() -> None:
    """Build the bundle in a child process unless the cache has it already."""
    global _warming
    with _lock:
        if _bundle is not None or (_warming is not None and _warming.poll() is None):
            return
        if _read_cache(_cache_file()):
            return
        _warming = subprocess.Popen(
            [sys.executable, "-m", "hybridshop.analytics.render.bundle"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


def stop_warming() -> None:
    """Terminate a build still running (a server stopping)."""
    global _warming
    proc = _warming
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    _warming = None


if __name__ == "__main__":
    vega_bundle()

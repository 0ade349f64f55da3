"""The charting JavaScript (vega + vega-lite + vega-embed), from the vl-convert-python wheel.

``vl_convert.javascript_bundle()`` builds one self-contained script that defines
``window.vegaEmbed`` — no CDN, nothing fetched. Building it takes several seconds, so it is
cached on disk per vl-convert version (``HYBRIDSHOP_CACHE_DIR``, default
``~/.cache/hybridshop``) and in memory; ``warm()`` builds it on a background thread when a
server starts so the first page does not wait.
"""

from __future__ import annotations

import hashlib
import os
import threading
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


def vega_bundle() -> str:
    """The script (about 0.9 MB); built once per vl-convert version, then read from disk."""
    global _bundle
    with _lock:
        if _bundle is not None:
            return _bundle
        path = _cache_file()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            text = ""
        if "window.vegaEmbed" not in text:
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


def warm() -> threading.Thread:
    """Build (or load) the bundle in the background; returns the thread."""
    t = threading.Thread(target=vega_bundle, name="hybridshop-vega-bundle", daemon=True)
    t.start()
    return t

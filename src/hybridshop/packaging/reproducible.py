"""Deterministic zip writing: sorted entries, fixed timestamps, fixed permissions.

Lambda compares ``source_code_hash``; if the zip changed on every build (mtimes, directory
order, umask) every ``terraform apply`` would redeploy every function for nothing.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from collections.abc import Mapping
from pathlib import Path

FIXED_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip can store
FILE_MODE = 0o644
EXEC_MODE = 0o755


def write_zip(path: Path, entries: Mapping[str, bytes]) -> None:
    """Write ``entries`` (archive name -> content) to ``path`` deterministically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=FIXED_DATE)
            info.create_system = 3  # unix, so the mode bits below are honoured
            mode = EXEC_MODE if name.endswith(".so") or ".so." in name else FILE_MODE
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, entries[name], compresslevel=9)
    tmp.replace(path)


def file_digests(path: Path) -> dict[str, str]:
    """sha256 as hex and as base64 (the latter equals Terraform's ``filebase64sha256``)."""
    digest = hashlib.sha256(path.read_bytes()).digest()
    return {"sha256": digest.hex(), "base64sha256": base64.b64encode(digest).decode()}

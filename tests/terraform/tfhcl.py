"""Reading our Terraform with python-hcl2 into plain dicts (labels unquoted), for the checks."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2

REPO = Path(__file__).resolve().parents[2]
TF_ROOT = REPO / "terraform"
MODULES = sorted(p for p in (TF_ROOT / "modules").iterdir() if p.is_dir())
ALL_DIRS = [TF_ROOT, *MODULES]


def unquote(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text


def is_block(value: Any) -> bool:
    return isinstance(value, dict) and value.get("__is_block__") is True


def block_items(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """Split a body into arguments and nested blocks (``dynamic "x"`` counts as block x)."""
    args: dict[str, Any] = {}
    blocks: dict[str, list[dict[str, Any]]] = {}
    for key, value in body.items():
        if key.startswith("__"):
            continue
        key = unquote(key)
        items = value if isinstance(value, list) else [value]
        if key == "dynamic" and items and all(isinstance(i, dict) for i in items):
            for item in items:
                for label, dyn in item.items():
                    content = dyn.get("content", [{}])
                    content = content[0] if isinstance(content, list) else content
                    blocks.setdefault(unquote(label), []).append(content)
            continue
        if items and all(is_block(i) for i in items):
            blocks.setdefault(key, []).extend(items)
        else:
            args[key] = value
    return args, blocks


@dataclass
class Module:
    path: Path
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    text: str = ""

    def _entries(self, kind: str) -> list[dict[str, Any]]:
        return [e for f in self.files.values() for e in f.get(kind, [])]

    def resources(self, kind: str = "resource") -> dict[tuple[str, str], dict[str, Any]]:
        out = {}
        for entry in self._entries(kind):
            for rtype, named in entry.items():
                for name, body in named.items():
                    out[(unquote(rtype), unquote(name))] = body
        return out

    def labelled(self, kind: str) -> dict[str, dict[str, Any]]:
        return {unquote(k): v for e in self._entries(kind) for k, v in e.items()}

    def locals(self) -> set[str]:
        return {k for e in self._entries("locals") for k in e if not k.startswith("__")}


def load(path: Path) -> Module:
    module = Module(path)
    texts = []
    for tf in sorted(path.glob("*.tf")):
        with tf.open() as handle:
            module.files[tf.name] = hcl2.load(handle)
        texts.append(tf.read_text())
    module.text = "\n".join(texts)
    return module


def code_without_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


REF = re.compile(
    r"(?<![\w.\-/:])(var|local|module|data)\.([A-Za-z_][\w-]*)(?:\.([A-Za-z_][\w-]*))?"
)
RESOURCE_REF = re.compile(r"(?<![\w.\-/:\"])((?:aws|google|random)_[a-z0-9_]+)\.([a-z_][a-z0-9_]*)")

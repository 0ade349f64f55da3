"""Route matching with HTTP API semantics: ``METHOD /path/{param}``, ``{proxy+}``, ``ANY``.

API Gateway picks the most specific route: literal segments beat ``{param}``, which beats a
greedy ``{param+}``; a method-specific route beats ``ANY``; ``$default`` catches the rest.
A path that matches no route (including a wrong method) is a 404, never a 405.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import unquote

T = TypeVar("T")

_LITERAL, _PARAM, _GREEDY = 0, 1, 2


class RouteError(ValueError):
    """A route key that API Gateway would refuse."""


@dataclass(frozen=True)
class Route(Generic[T]):
    key: str  # "POST /products/{id}/purchase"
    method: str  # "POST", or "ANY"
    segments: tuple[tuple[int, str], ...]  # (kind, literal text or parameter name)
    target: T

    @property
    def specificity(self) -> tuple[int, ...]:
        # Sorted ascending: literal segments first, longer paths first, ANY last.
        kinds = tuple(kind for kind, _ in self.segments)
        return (*kinds, 9 - min(len(kinds), 9), int(self.method == "ANY"))


def parse_route(key: str, target: T) -> Route[T]:
    if key == "$default":
        return Route(key=key, method="ANY", segments=((_GREEDY, ""),), target=target)
    method, sep, path = key.partition(" ")
    if not sep or not path.startswith("/"):
        raise RouteError(f"route key must look like 'GET /path', got {key!r}")
    segments: list[tuple[int, str]] = []
    parts = [p for p in path.split("/")[1:] if p != ""] if path != "/" else []
    for i, part in enumerate(parts):
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1]
            if name.endswith("+"):
                if i != len(parts) - 1:
                    raise RouteError(f"greedy parameter must be last in {key!r}")
                segments.append((_GREEDY, name[:-1]))
            else:
                segments.append((_PARAM, name))
        else:
            segments.append((_LITERAL, part))
    return Route(key=key, method=method.upper(), segments=tuple(segments), target=target)


class RouteTable(Generic[T]):
    """Routes of one API; ``match`` returns the chosen route and its decoded path parameters."""

    def __init__(self, routes: list[tuple[str, T]]) -> None:
        parsed = [parse_route(key, target) for key, target in routes]
        seen: set[str] = set()
        for route in parsed:
            if route.key in seen:
                raise RouteError(f"duplicate route {route.key!r}")
            seen.add(route.key)
        self._default = next((r for r in parsed if r.key == "$default"), None)
        self._routes = sorted(
            (r for r in parsed if r.key != "$default"), key=lambda r: r.specificity
        )

    @property
    def keys(self) -> list[str]:
        return [r.key for r in self._routes] + ([self._default.key] if self._default else [])

    def match(self, method: str, raw_path: str) -> tuple[Route[T], dict[str, str]] | None:
        # "/a/" keeps its empty last segment: like HTTP API, it does not match "/a".
        parts = raw_path.split("/")[1:] if raw_path.startswith("/") and raw_path != "/" else []
        for route in self._routes:
            if route.method not in (method, "ANY"):
                continue
            params = _match_segments(route.segments, parts)
            if params is not None:
                return route, params
        if self._default is not None:
            return self._default, {}
        return None


def _match_segments(
    segments: tuple[tuple[int, str], ...], parts: list[str]
) -> dict[str, str] | None:
    params: dict[str, str] = {}
    for i, (kind, text) in enumerate(segments):
        if kind == _GREEDY:
            rest = parts[i:]
            if not rest:
                return None
            params[text] = unquote("/".join(rest))
            return params
        if i >= len(parts):
            return None
        part = unquote(parts[i])
        if kind == _LITERAL:
            if part != text:
                return None
        else:
            if part == "":
                return None
            params[text] = part
    return params if len(parts) == len(segments) else None

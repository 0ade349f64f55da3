"""Statistics shared by the benchmarks, so every area reports percentiles the same way."""

from __future__ import annotations

import math


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (``pct`` in 0-100): the smallest sample with at least
    ``pct`` % of the samples at or below it. NaN when there are no samples."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]

"""The percentile definition every benchmark reports with."""

from __future__ import annotations

import math

from hybridshop.bench.stats import percentile


def test_nearest_rank() -> None:
    samples = [float(x) for x in range(100, 0, -1)]  # 1..100, unsorted
    assert percentile(samples, 50) == 50.0
    assert percentile(samples, 99) == 99.0
    assert percentile(samples, 100) == 100.0
    assert percentile(samples, 0) == 1.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))

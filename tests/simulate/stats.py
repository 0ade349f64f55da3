"""A chi-square goodness-of-fit p-value (no SciPy here): regularized upper incomplete gamma."""

from __future__ import annotations

import math


def _gamma_q(a: float, x: float) -> float:
    """Q(a, x) = Gamma(a, x) / Gamma(a), by series (x < a + 1) or continued fraction."""
    if x <= 0:
        return 1.0
    gln = math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        n = a
        for _ in range(10_000):
            n += 1
            term *= x / n
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return 1.0 - total * math.exp(-x + a * math.log(x) - gln)
    b = x + 1 - a
    c = 1 / 1e-300
    d = 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = 1e-300 if abs(d) < 1e-300 else d
        c = b + an / c
        c = 1e-300 if abs(c) < 1e-300 else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return math.exp(-x + a * math.log(x) - gln) * h


def chi_square_p(observed: list[float], expected: list[float]) -> float:
    """p-value of observed counts against expected counts (same total), df = bins - 1."""
    assert len(observed) == len(expected) and all(e > 0 for e in expected)
    statistic = sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True))
    return _gamma_q((len(observed) - 1) / 2, statistic / 2)

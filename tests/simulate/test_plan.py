"""The visit plan: rate, daily pattern under --speedup, determinism (no API needed)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from hybridshop.simulate import model
from hybridshop.simulate.visits import MEAN_REQUESTS, VISIT_KINDS, plan_visits


def test_same_seed_same_plan_and_rate() -> None:
    first = list(plan_visits(3, rate=200, duration=30))
    assert first == list(plan_visits(3, rate=200, duration=30))
    assert first != list(plan_visits(4, rate=200, duration=30))
    planned_requests = len(first) * MEAN_REQUESTS
    assert 0.9 * 200 * 30 < planned_requests < 1.1 * 200 * 30
    kinds = Counter(v.kind for v in first)
    for kind, share, _ in VISIT_KINDS:
        assert abs(kinds[kind] / len(first) - share) < 0.04, kind


def test_speedup_follows_the_daily_pattern() -> None:
    monday = datetime(2026, 11, 30)  # a Monday, midnight
    # a simulated week in 168 seconds: one simulated hour per second
    visits = list(plan_visits(1, rate=300, duration=168, speedup=3600, start=monday))
    per_hour = Counter(int(v.at) for v in visits)  # simulated hours since Monday 00:00
    by_hour_of_day = Counter()
    for hour, n in per_hour.items():
        by_hour_of_day[hour % 24] += n
    assert by_hour_of_day[20] > 5 * by_hour_of_day[4]  # evening peak, quiet night
    weekday = sum(per_hour[h] for h in range(0, 24 * 4))  # Monday..Thursday
    weekend = sum(per_hour[h] for h in range(24 * 5, 24 * 7))
    assert weekend / 2 > 1.2 * weekday / 4
    # the mean over the week stays the asked rate
    assert abs(len(visits) * MEAN_REQUESTS / 168 / 300 - 1) < 0.1
    # and the intensity itself averages to 1 over a week
    week = [model.intensity(monday + timedelta(minutes=10 * i)) for i in range(6 * 24 * 7)]
    assert abs(sum(week) / len(week) - 1) < 0.01

"""Live traffic through the public HTTP API: workers (one thread and one keep-alive HTTP
connection each) take the planned visits in order and start each at its time, every answer is
counted.

The schedule is open-loop, like real shoppers who do not wait for each other: visits start
at their planned times whatever the API's speed; when all workers are busy, visits queue and
start late, a visit that cannot start within a grace period of its time is dropped (the
shopper left), and the summary compares the achieved rate with the asked one. The run ends
when the planned visits are done (``duration``), or at ``duration`` plus the grace period for
visits still running, or when ``stop`` is set (Ctrl-C).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from hybridshop.bench.stats import percentile
from hybridshop.settings import LOCAL_API_AUDIENCE
from hybridshop.simulate import model
from hybridshop.simulate.client import (
    Answer,
    HttpClient,
    SimulationAborted,
    TokenProvider,
    check_api,
    describe_refusal,
    resolve_tokens,
)
from hybridshop.simulate.visits import SharedState, Visit, VisitRunner, plan_visits

PURCHASE_ROUTE = "POST /products/{id}/purchase"
ADD_ROUTE = "POST /products"


@dataclass(frozen=True)
class SimulationConfig:
    api_url: str = "http://127.0.0.1:3000"
    rate: float = 20.0  # requests per second (mean)
    duration: float | None = None  # seconds; None: until stopped
    seed: int = 1
    concurrency: int = 8
    speedup: float = 0.0  # 0: steady rate; otherwise the simulated clock's speed
    start: datetime | None = None  # simulated clock at the start (default: now)
    timezone: str = "UTC"
    log_path: Path | None = None
    token: str | None = None
    audience: str = LOCAL_API_AUDIENCE

    def grace_s(self) -> float:
        return max(3.0, 0.1 * (self.duration or 0))


@dataclass
class Summary:
    asked_rate: float
    seed: int
    concurrency: int
    api_url: str
    duration_planned: float | None
    elapsed_s: float = 0.0
    visits_planned: int = 0
    visits_started: int = 0
    visits_dropped: int = 0
    requests: Counter[tuple[str, int]] = field(default_factory=Counter)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    error_codes: Counter[str] = field(default_factory=Counter)
    expected: Counter[str] = field(default_factory=Counter)
    orders: int = 0
    revenue: Decimal = Decimal("0.00")
    products_added: int = 0
    replays: int = 0
    server_errors: int = 0
    transport_errors: int = 0
    unexpected_4xx: int = 0
    stopped_by_user: bool = False
    aborted: str | None = None
    lagging: str | None = None  # the "cannot sustain --rate" message, if it was said

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    @property
    def achieved_rate(self) -> float:
        return self.total_requests / self.elapsed_s if self.elapsed_s else 0.0

    @property
    def purchases_per_s(self) -> float:
        return self.orders / self.elapsed_s if self.elapsed_s else 0.0

    def route_rows(self) -> list[dict[str, Any]]:
        rows = []
        for (route, status), count in sorted(self.requests.items()):
            lat = self.latencies.get(f"{route} {status}", [])
            rows.append(
                {
                    "route": route,
                    "status": status,
                    "count": count,
                    "p50_ms": round(percentile(lat, 50), 2) if lat else None,
                    "p99_ms": round(percentile(lat, 99), 2) if lat else None,
                }
            )
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {
            "api_url": self.api_url,
            "seed": self.seed,
            "concurrency": self.concurrency,
            "asked_rate": self.asked_rate,
            "achieved_rate": round(self.achieved_rate, 2),
            "elapsed_s": round(self.elapsed_s, 3),
            "visits": {
                "planned": self.visits_planned,
                "started": self.visits_started,
                "dropped": self.visits_dropped,
            },
            "requests": self.total_requests,
            "routes": self.route_rows(),
            "orders": self.orders,
            "revenue": str(self.revenue),
            "purchases_per_s": round(self.purchases_per_s, 2),
            "products_added": self.products_added,
            "replays": self.replays,
            "expected_mistakes": dict(sorted(self.expected.items())),
            "error_codes": dict(sorted(self.error_codes.items())),
            "server_errors": self.server_errors,
            "transport_errors": self.transport_errors,
            "unexpected_4xx": self.unexpected_4xx,
            "stopped_by_user": self.stopped_by_user,
            "aborted": self.aborted,
            "lagging": self.lagging,
        }


class _Recorder:
    """Counts every answer into the summary and writes the request log (thread-safe)."""

    def __init__(self, summary: Summary, log: IO[str] | None, started: float) -> None:
        self.summary = summary
        self.log = log
        self.started = started
        self.lock = threading.Lock()

    def record(
        self,
        visit: Visit,
        step: int,
        action: str,
        route: str,
        method: str,
        path: str,
        query: dict[str, str] | None,
        body: dict[str, Any] | None,
        key: str | None,
        answer: Answer,
    ) -> None:
        s = self.summary
        status = answer.status
        with self.lock:
            s.requests[(route, status)] += 1
            s.latencies.setdefault(f"{route} {status}", []).append(answer.ms)
            if status == 0:
                s.transport_errors += 1
                s.error_codes[answer.code] += 1
            elif status >= 500:
                s.server_errors += 1
                s.error_codes[f"{status} {answer.code}"] += 1
            elif route == PURCHASE_ROUTE and status == 200:
                if answer.headers.get("idempotent-replayed") == "true":
                    s.replays += 1
                    s.expected["double click answered with the same order"] += 1
                else:
                    s.orders += 1
                    s.revenue += _price(answer.body)
            elif route == ADD_ROUTE and status == 201:
                s.products_added += 1
            elif route == PURCHASE_ROUTE and status == 409:
                s.error_codes[f"409 {answer.code}"] += 1
                if action == "stale-buy":
                    s.expected["stale page: item already sold (409)"] += 1
                else:
                    s.expected["another shopper was faster (409)"] += 1
            elif action == "list-typo" and status == 422:
                s.error_codes[f"422 {answer.code}"] += 1
                s.expected["seller typo refused (422)"] += 1
            elif status >= 400:
                s.unexpected_4xx += 1
                s.error_codes[f"{status} {answer.code}"] += 1
            if self.log is not None:
                entry: dict[str, Any] = {
                    "visit": visit.index,
                    "step": step,
                    "kind": visit.kind,
                    "action": action,
                    "method": method,
                    "path": path,
                }
                if query:
                    entry["query"] = query
                if body is not None:
                    entry["body"] = body
                if key is not None:
                    entry["key"] = key
                entry["status"] = status
                entry["t"] = round(time.perf_counter() - self.started, 4)
                entry["ms"] = round(answer.ms, 2)
                self.log.write(json.dumps(entry, separators=(",", ":")) + "\n")


def _price(body: Any) -> Decimal:
    try:
        return Decimal(str(body["price"])) if isinstance(body, dict) else Decimal(0)
    except (KeyError, InvalidOperation):
        return Decimal(0)


class Simulation:
    """One run; ``stop()`` may be called from a signal handler."""

    def __init__(self, config: SimulationConfig) -> None:
        if config.rate <= 0:
            raise SimulationAborted("--rate must be greater than 0")
        if config.concurrency < 1:
            raise SimulationAborted("--concurrency must be at least 1")
        self.config = config
        self.stop_event = threading.Event()
        self.summary = Summary(
            asked_rate=config.rate,
            seed=config.seed,
            concurrency=config.concurrency,
            api_url=config.api_url,
            duration_planned=config.duration,
        )
        self.tz = ZoneInfo(config.timezone)
        start = config.start or datetime.now(self.tz)
        # a --start without an offset is a time in the shoppers' --timezone
        self.sim_start = start if start.tzinfo else start.replace(tzinfo=self.tz)
        self.drift = model.Drift.from_seed(config.seed)
        self._shares_cache: dict[int, dict[str, float]] = {}
        self.started = 0.0
        self._auth_lock = threading.Lock()
        self._auth_refreshes = 0
        self.tokens: TokenProvider = TokenProvider()
        self.use_token: bool | None = None  # known after connect()

    def connect(self) -> None:
        """Find the token source and probe the API; raises ``SimulationAborted`` (one line)."""
        config = self.config
        self.tokens = resolve_tokens(config.api_url, config.token, config.audience)
        self.use_token = check_api(config.api_url, self.tokens)

    def stop(self) -> None:
        self.summary.stopped_by_user = True
        self.stop_event.set()

    def sim_now(self) -> datetime:
        elapsed = time.perf_counter() - self.started if self.started else 0.0
        return self.sim_start + timedelta(seconds=elapsed * self.config.speedup)

    def shares(self) -> dict[str, float]:
        moment = self.sim_now().astimezone(self.tz)
        day = (moment.date() - datetime(1970, 1, 1).date()).days
        cached = self._shares_cache.get(day)
        if cached is None:
            cached = self._shares_cache[day] = self.drift.shares(day, moment.month)
        return cached

    def _auth_failed(self, answer: Answer) -> None:
        """A 401/403 in the middle of a run: refresh a token once, else stop with a message."""
        with self._auth_lock:
            if answer.status == 401 and self._auth_refreshes < 3 and self.tokens.refresh():
                self._auth_refreshes += 1
                return
            if self.summary.aborted is None:
                self.summary.aborted = describe_refusal(answer, self.tokens)
            self.stop_event.set()

    def run(self, on_tick: Callable[[Summary], None] | None = None) -> Summary:
        config = self.config
        if self.use_token is None:
            self.connect()
        use_token = bool(self.use_token)
        log: IO[str] | None = None
        if config.log_path is not None:
            config.log_path.parent.mkdir(parents=True, exist_ok=True)
            log = config.log_path.open("w", encoding="utf-8", buffering=1 << 16)
        # The workers wait on sockets nearly all the time: when an answer arrives its worker
        # should take the GIL at once (the next request goes out sooner), not after the 5 ms
        # the interpreter lets a busy thread run by default.
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(0.0005)
        self.started = time.perf_counter()
        recorder = _Recorder(self.summary, log, self.started)
        shared = SharedState()
        schedule = _Schedule(self, recorder.lock)
        workers = [
            threading.Thread(
                target=self._worker,
                args=(schedule, recorder, shared, use_token),
                name=f"shopper-{i}",
                daemon=True,
            )
            for i in range(config.concurrency)
        ]
        for w in workers:
            w.start()
        try:
            deadline = None if config.duration is None else self.started + config.duration
            for w in workers:
                while w.is_alive():
                    w.join(timeout=0.25)
                    if on_tick is not None:
                        on_tick(self.summary)
                    if deadline is not None and time.perf_counter() > deadline + config.grace_s():
                        self.stop_event.set()  # workers finish the request in flight
        finally:
            self.stop_event.set()
            for w in workers:
                w.join()
            self.summary.elapsed_s = time.perf_counter() - self.started
            sys.setswitchinterval(switch_interval)
            if log is not None:
                log.close()
        if on_tick is not None:
            on_tick(self.summary)
        return self.summary

    def _worker(
        self,
        schedule: _Schedule,
        recorder: _Recorder,
        shared: SharedState,
        use_token: bool,
    ) -> None:
        client = HttpClient(self.config.api_url, self.tokens, use_token=use_token)

        def send(
            visit: Visit,
            step: int,
            action: str,
            route: str,
            method: str,
            path: str,
            *,
            query: dict[str, str] | None = None,
            body: dict[str, Any] | None = None,
            headers: dict[str, str] | None = None,
        ) -> Answer:
            answer = client.send(method, path, query=query, body=body, headers=headers)
            if answer.status in (401, 403):
                self._auth_failed(answer)
                if not self.stop_event.is_set() and answer.status == 401:
                    answer = client.send(method, path, query=query, body=body, headers=headers)
            key = (headers or {}).get("Idempotency-Key")
            recorder.record(visit, step, action, route, method, path, query, body, key, answer)
            return answer

        runner = VisitRunner(self.config.seed, send, shared, self.shares, self.stop_event.is_set)
        try:
            while True:
                visit = schedule.next_visit()
                if visit is None:
                    return
                runner.run(visit)
        finally:
            client.close()


class _Schedule:
    """The open-loop plan, shared by the workers: a free worker takes the next planned visit
    and starts it at its time (visits never wait for each other, like real shoppers). A
    visit that no worker was free to start within the grace period is dropped (the shopper
    left); starting late for long is reported as ``lagging``. No dispatcher thread and no
    queue between it and the workers: one lock, held only to take the next visit."""

    def __init__(self, simulation: Simulation, lock: threading.Lock) -> None:
        config = simulation.config
        self.sim = simulation
        self.summary = simulation.summary
        self.lock = lock  # the recorder's: the counters of the summary change under it
        self.take = threading.Lock()
        self.plan = plan_visits(
            config.seed, config.rate, config.duration, config.speedup, simulation.sim_start
        )
        self.warn_after = max(2.0, 0.05 * (config.duration or 60))
        self.max_late = config.grace_s()

    def next_visit(self) -> Visit | None:
        """The next visit to run, once its time has come; None when the plan is done or the
        run stops."""
        sim, config, stop = self.sim, self.sim.config, self.sim.stop_event
        while not stop.is_set():
            with self.take:
                visit = next(self.plan, None)
                if visit is None:
                    return None
                with self.lock:
                    self.summary.visits_planned += 1
            due = sim.started + visit.at
            wait = due - time.perf_counter()
            if wait > 0 and stop.wait(wait):
                with self.lock:
                    self.summary.visits_planned -= 1
                return None
            lag = time.perf_counter() - due
            with self.lock:
                if lag > self.warn_after and self.summary.lagging is None:
                    self.summary.lagging = (
                        f"cannot sustain --rate {config.rate:g}: visits start {lag:.1f}s late "
                        f"with {config.concurrency} workers; lower --rate or raise --concurrency "
                        "(if the API is the limit, a higher --concurrency will not help)"
                    )
                if lag > self.max_late:
                    self.summary.visits_dropped += 1
                    continue
                self.summary.visits_started += 1
            return visit
        return None

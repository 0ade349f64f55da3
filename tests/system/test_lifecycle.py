"""`hybridshop up` ending badly: kill -9 of `up` itself (and so of the in-process API
gateway and shop) during load, and Ctrl-C at seeded random moments during start-up and under
load. Nothing may be left behind that blocks the next `up`, and the books still balance."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

from conftest import Load, Up, books_balance, children_of, processes_mentioning, running_system


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def test_kill9_of_up_during_load_leaves_no_orphan_and_the_next_up_starts() -> None:
    with running_system() as system:
        replicator = system.up.replicator_pid()
        children = children_of(system.up.proc.pid)
        assert replicator in children
        load = Load(system.up, seed=21, seconds=8).start()
        time.sleep(3)
        system.up.proc.kill()  # kill -9: the gateway, the shop and the supervisor with it
        system.up.proc.wait(timeout=10)
        load.stop()
        deadline = time.monotonic() + 15
        while not all(_gone(pid) for pid in children):
            assert time.monotonic() < deadline, [
                (pid, Path(f"/proc/{pid}/cmdline").read_bytes())
                for pid in children
                if not _gone(pid)
            ]
            time.sleep(0.1)
        # the embedded PostgreSQL is detached by design (pg_ctl): the next `up` reuses it
        up = system.restart()
        assert up.replicator_pid() != replicator
        Load(up, seed=22, seconds=3).start().stop()
        books_balance(system.home, system.dsn)


def _ctrl_c_cycles(moments: list[float | str]) -> None:
    with running_system() as system:
        home = system.home
        for moment in moments:
            up = system.up
            up.interrupt()
            assert not (home / "postgres" / "data" / "postmaster.pid").exists()
            assert processes_mentioning(str(home)) == []
            up = system.up = Up(home, system.ports)
            if moment == "under load":
                up.wait_ready()
                load = Load(up, seed=23, seconds=6).start()
                time.sleep(2)
                code = up.interrupt()
                load.stop()
            else:
                time.sleep(float(moment))  # during start-up
                ready = any("hybridshop is running" in line for line in up.lines)
                code = up.interrupt(timeout=30)
                if not ready:  # stopped where it was, not once everything was up
                    assert "hybridshop is running" not in up.output, (moment, up.output)
            if code == -signal.SIGINT:
                # Ctrl-C while Python is still importing, before `up` runs any code of its
                # own: Python's default (a KeyboardInterrupt traceback at most); nothing started
                assert "PostgreSQL" not in up.output, up.output
                assert "Traceback" not in up.output or "KeyboardInterrupt" in up.output
            else:
                assert code in (0, 130), (moment, code, up.output)
                assert "Traceback" not in up.output, up.output
            deadline = time.monotonic() + 15
            while processes_mentioning(str(home)):
                assert time.monotonic() < deadline, (moment, processes_mentioning(str(home)))
                time.sleep(0.1)
            assert not (home / "postgres" / "data" / "postmaster.pid").exists(), moment
            system.restart()
        Load(system.up, seed=24, seconds=3).start().stop()
        books_balance(home, system.dsn)


def test_ctrl_c_under_load_leaves_nothing_behind_and_up_starts_again() -> None:
    _ctrl_c_cycles(["under load"])


def test_ctrl_c_at_seeded_moments_during_start_up_stops_up() -> None:
    rng = random.Random(14)
    _ctrl_c_cycles([rng.uniform(0.2, 4.0) for _ in range(3)])

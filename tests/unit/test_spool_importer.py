"""The loop both importers run: passes, the backoff while the database is down, --once, stop."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest
from sqlalchemy.exc import OperationalError

from rlm_hotspot.spool_importer import MAX_BACKOFF_S, backoff, run_loop


@dataclass
class Report:
    busy: bool = False
    database_down: bool = False


class Stop(threading.Event):
    """The loop's stop event, which notes every pause the loop asks for and never sleeps it."""

    def __init__(self) -> None:
        super().__init__()
        self.pauses: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.pauses.append(timeout)
        return self.is_set()


def down() -> OperationalError:
    return OperationalError("SELECT 1", {}, Exception("connection refused"))


def test_the_backoff_doubles_from_the_idle_pause_up_to_its_bound() -> None:
    assert [backoff(0.2, failures) for failures in range(7)] == [0.2, 0.2, 0.4, 0.8, 1.6, 3.2, MAX_BACKOFF_S]
    assert backoff(0.0, 0) == 0.0 and backoff(0.0, 1) > 0  # a busy poll never retries a dead database in a spin
    assert backoff(10.0, 50) == 10.0  # a longer idle pause (NetFlow's interval) is never shortened


def test_an_unavailable_database_is_counted_and_the_same_pass_retried_until_it_answers() -> None:
    stopping = Stop()
    outcomes: list[Exception | Report] = [down(), down(), Report()]
    counted: list[Exception] = []

    def one_pass() -> Report:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        stopping.set()  # the service is told to stop while its pass runs: the pass ends, then the loop
        return outcome

    def unavailable(exc: Exception) -> Report:
        counted.append(exc)
        return Report(database_down=True)

    last = run_loop(one_pass, unavailable, stopping=stopping, idle_pause=0.2)

    assert (last, len(counted), outcomes) == (Report(), 2, [])
    assert stopping.pauses == [0.2, 0.4, 0.2]  # backed off twice, then the idle pause (cut short by the stop)


def test_what_needs_no_database_keeps_the_idle_pace_while_a_backoff_is_waited_out() -> None:
    """The accounting importer fdatasyncs radiusd's live file each poll: a database down for long must not
    stretch what a power cut of the host can lose to the backoff's bound."""
    stopping = Stop()
    kept_up: list[int] = []
    passes = [down(), down(), down(), Report()]

    def one_pass() -> Report:
        outcome = passes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        stopping.set()
        return outcome

    run_loop(one_pass, lambda _exc: Report(database_down=True), stopping=stopping, idle_pause=0.2,
             keep_up=lambda: kept_up.append(len(passes)))  # fmt: skip

    assert stopping.pauses == [0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2]  # 0.2, then 0.4 and 0.8 in slices
    assert kept_up == [2, 2, 1, 1, 1, 1]  # after each slice of a backoff (the pass keeps up on its own)


def test_once_counts_an_unavailable_database_then_raises_it() -> None:
    counted: list[Exception] = []

    def one_pass() -> Report:
        raise down()

    def unavailable(exc: Exception) -> Report:
        counted.append(exc)
        return Report(database_down=True)

    with pytest.raises(OperationalError):
        run_loop(one_pass, unavailable, stopping=threading.Event(), idle_pause=1.0, once=True)
    assert len(counted) == 1


def test_a_pass_that_contains_its_own_database_errors_lets_others_through() -> None:
    def one_pass() -> Report:
        raise down()

    with pytest.raises(OperationalError):
        run_loop(one_pass, stopping=threading.Event(), idle_pause=1.0)


def test_a_busy_pass_is_followed_by_the_next_at_once_and_a_stop_ends_the_loop() -> None:
    stopping = Stop()
    reports = [Report(busy=True), Report(busy=True), Report()]

    def one_pass() -> Report:
        report = reports.pop(0)
        if not reports:
            stopping.set()
        return report

    assert run_loop(one_pass, stopping=stopping, idle_pause=3600.0) == Report()
    assert (reports, stopping.pauses) == ([], [0, 0, 3600.0])

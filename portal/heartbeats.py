"""A portal process's heartbeat write-behind: the state one process keeps across requests.

A heartbeat is three acts: **mark** a sign of life (the guest's page, or under ``grace`` the OS, says the
guest is there), **rate** it (the meter write its online time makes, `services.sessions.rate_online_time`)
and **post** it (write that to the database). The stateless rules are `rlm_hotspot.services.portal`'s;
this module keeps what makes the hot path cheap:

* `RecentViews`: each session as this process last read or posted it, so the guest's next heartbeat
  (which usually comes back to the same process) needs no read;
* heartbeats rated in memory and not posted yet (`RatedHeartbeat`): `HeartbeatPoster`'s thread posts
  them all every `heartbeat_write_delay_ms` in one statement (`post_rated_heartbeats`), so hundreds of
  heartbeats a second cost PostgreSQL one guarded row each instead of a round trip and a commit each.

What the delay may cost: the database sees a heartbeat up to the delay late (far below any heartbeat
timeout; the worker enforces at a slower pace anyway); a process killed outright loses at most its last
delay's worth of marks — the next heartbeat restates the cumulative online time, so no money is lost or
billed twice. A clean exit (gunicorn's SIGTERM) posts them first, and so does every other use of the
database in the process that needs the balance (`PortalContext.unit_of_work`).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.exc import DBAPIError

from rlm_hotspot.db import sessions as sessions_db
from rlm_hotspot.db.engine import Executor
from rlm_hotspot.db.sessions import MeterWrite, SessionView
from rlm_hotspot.logs import first_line
from rlm_hotspot.services import sessions
from rlm_hotspot.services.portal import (
    PortalHotspot,
    PortalStatus,
    Signal,
    heartbeat_expired,
    last_sign_of_life,
    mark_on_view,
    portal_status,
)
from rlm_hotspot.services.tariff_cache import TariffCache

log = logging.getLogger(__name__)
POST_ROUNDS = 3  # a rated heartbeat whose session changes under this many posts is given up


@dataclass(frozen=True)
class RatedHeartbeat:
    """A heartbeat rated in memory, not posted yet: the write it makes on `base`, and the session after it."""

    base: SessionView
    write: MeterWrite
    after: SessionView
    at: datetime


@dataclass
class _Kept:
    seen_at: datetime  # when the database last confirmed `view`
    view: SessionView  # as last read or posted: what a guarded post is checked against
    rated: RatedHeartbeat | None = None  # the latest heartbeat rated in memory, not posted yet


@dataclass
class RecentViews:
    """This process's view of each session right after it read or posted one of its heartbeats.

    A guest's browser keeps its connection to the portal, so the next heartbeat usually comes back to the
    same process: it can start from this view instead of reading the session again, because its post is
    guarded (it goes through only if the session's status and counters are still those of the view;
    the balance comes back from the post itself). A miss, or a guarded post that finds the session
    changed (NetFlow, another tab, the worker), reads afresh. Bounded in size and age: a view the
    database has not confirmed for `ttl` is read again.

    It also keeps the heartbeats rated in memory and not posted yet (`keep_rated`): at most one per
    session, the latest, since each restates the cumulative online time. Thread-safe: the process's
    poster thread takes them (`unposted`) while requests add more.
    """

    capacity: int = 50_000
    ttl: timedelta = timedelta(seconds=120)
    _views: OrderedDict[str, _Kept] = field(default_factory=OrderedDict)
    _unposted: set[str] = field(default_factory=set)  # tokens whose kept entry holds a rated heartbeat
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(
        self, token: str, now: datetime, max_age: timedelta | None = None, seen_since: datetime | None = None
    ) -> tuple[SessionView, RatedHeartbeat | None] | None:
        """The kept view and the heartbeat rated on it, if the database confirmed the view within `ttl`
        (and `max_age`), and not before `seen_since`."""
        with self._lock:
            kept = self._views.get(token)
            if kept is None or now - kept.seen_at > min(self.ttl, max_age or self.ttl):
                return None
            if seen_since is not None and kept.seen_at < seen_since:
                return None
            return kept.view, kept.rated

    def put(self, view: SessionView, now: datetime) -> None:
        """Keep `view` as posted or read at `now` (it supersedes a heartbeat rated in memory)."""
        with self._lock:
            self._views[view.token] = _Kept(now, view)
            self._views.move_to_end(view.token)
            self._unposted.discard(view.token)
            while len(self._views) > self.capacity:  # the least recent: a heartbeat of theirs is long posted
                token, _ = self._views.popitem(last=False)
                self._unposted.discard(token)

    def forget(self, token: str) -> None:
        with self._lock:
            self._views.pop(token, None)
            self._unposted.discard(token)

    def keep_rated(self, heartbeat: RatedHeartbeat) -> None:
        """Keep a heartbeat rated in memory until `posted` confirms it (it replaces an earlier one)."""
        token = heartbeat.base.token
        with self._lock:
            kept = self._views.get(token)
            if kept is not None and (kept.rated is None or kept.rated.at <= heartbeat.at):
                kept.rated = heartbeat
                self._views.move_to_end(token)
                self._unposted.add(token)

    def has_unposted(self) -> bool:
        return bool(self._unposted)

    def unposted(self) -> list[tuple[SessionView, RatedHeartbeat]]:
        """The heartbeats rated in memory and not posted, each with the view now kept for its session."""
        with self._lock:
            beats = []
            for token in self._unposted:
                kept = self._views[token]
                assert kept.rated is not None, "only sessions with a rated heartbeat are listed"
                beats.append((kept.view, kept.rated))
            return beats

    def posted(self, before: SessionView, after: SessionView | None, heartbeat: RatedHeartbeat) -> None:
        """`heartbeat`, posted on `before`, left the session as `after` (None: given up, read it again).

        A later heartbeat rated meanwhile stays unposted (it is posted next time, on `after`).
        """
        token = before.token
        with self._lock:
            kept = self._views.get(token)
            if kept is None or kept.view is not before:
                return
            if after is None:
                del self._views[token]
                self._unposted.discard(token)
                return
            kept.view, kept.seen_at = after, heartbeat.at
            if kept.rated is heartbeat:
                kept.rated = None
                self._unposted.discard(token)


def mark_sign_of_life_without_lock(
    db: Executor,
    tariffs: TariffCache,
    hotspot: PortalHotspot,
    token: str,
    now: datetime,
    signal: Signal,
    recent: RecentViews | None = None,
    *,
    post_later: bool = False,
    seen_since: datetime | None = None,
) -> PortalStatus | None:
    """`services.portal.mark_sign_of_life` for the common case: one guarded post after the view `recent`
    kept, else one read and one guarded post. With `post_later`, the heartbeat is rated in memory instead
    of posted (no round trip on a kept view, one read otherwise), and `post_rated_heartbeats` posts it
    soon after with the others. A view kept from before `seen_since` is not used (the money moved since,
    elsewhere).

    Meant for a connection in autocommit mode (no BEGIN/COMMIT round trips). None when this path does
    not apply (the session must be closed for its silence, or it changed between the read and the
    post): use `mark_sign_of_life` in a transaction instead.
    """
    if recent is not None and hotspot.counts_as_heartbeat(signal):
        # A page beats every third of the timeout: a view older than half of it means the last heartbeat
        # went to another process (its post would make ours fail): read afresh instead.
        kept = recent.get(token, now, timedelta(seconds=hotspot.heartbeat_timeout / 2), seen_since)
        if kept is not None:
            view, rated = kept
            last = rated.at if rated is not None else last_sign_of_life(view)
            if view.status == "open" and not hotspot.silent_too_long(last, now):
                if post_later:
                    return _rate_in_memory(db, tariffs, hotspot, view, now, recent)
                status = _mark_and_keep(db, tariffs, hotspot, view, now, signal, recent)
                if status is not None:
                    return status
                recent.forget(token)  # changed meanwhile: read afresh (and post at `now`, past what it rated)
    # A heartbeat rated in memory for a session closed here for its silence stays unposted: the locked way
    # posts it first (`unit_of_work`), so the session ends at that heartbeat, not at the one before.
    view = sessions.session_view(db, token)
    if view.source == "portal" and heartbeat_expired(hotspot, view, now):
        return None
    if post_later and recent is not None and view.status == "open" and hotspot.counts_as_heartbeat(signal):
        recent.put(view, now)  # the guest's last heartbeat went to another process: start from this read
        return _rate_in_memory(db, tariffs, hotspot, view, now, recent)
    return _mark_and_keep(db, tariffs, hotspot, view, now, signal, recent)


def _mark_and_keep(
    db: Executor,
    tariffs: TariffCache,
    hotspot: PortalHotspot,
    view: SessionView,
    now: datetime,
    signal: Signal,
    recent: RecentViews | None,
) -> PortalStatus | None:
    """Mark the sign of life on `view` now, keeping the session as posted; None: the session changed."""
    marked = mark_on_view(db, tariffs, hotspot, view, now, signal)
    if marked is None:
        return None
    if recent is not None and marked.posted and marked.view.status == "open":
        recent.put(marked.view, now)
    return marked.status


def _rate_in_memory(
    db: Executor, tariffs: TariffCache, hotspot: PortalHotspot, view: SessionView, now: datetime, recent: RecentViews
) -> PortalStatus:
    """A heartbeat on the kept `view`, rated and kept for a later post (time only: `post_heartbeats`
    refuses a write that moves traffic counters, and a heartbeat's never does)."""
    write = sessions.rate_online_time(db, tariffs, view, now)
    after = sessions.view_after_post(view, write, now, view.balance - write.time_debit)
    recent.keep_rated(RatedHeartbeat(view, write, after, now))
    return portal_status(hotspot, sessions.status_of(db, tariffs, after, now), now)


def post_rated_heartbeats(db: Executor, tariffs: TariffCache, recent: RecentViews, now: datetime) -> int:
    """Post the heartbeats `recent` rated in memory, all in one statement; returns how many there were.

    A session that changed since its view was kept (NetFlow, accounting, a logout, or — most often — the
    guest's previous heartbeat, which another process posted) fails its post's guard: all such sessions
    are read afresh together and their heartbeats rated again and posted in a second statement, so the
    time they mark is not lost; one that ended meanwhile is dropped. A database error leaves them all
    unposted for the next call.
    """
    waiting = recent.unposted()
    pending = [_Pending(view, heartbeat, view) for view, heartbeat in waiting]
    for rounds_left in reversed(range(POST_ROUNDS)):
        if not pending:
            break
        changed = _post_batch(db, tariffs, recent, pending, now)
        tokens = [p.kept.token for p in changed]
        fresh = sessions_db.session_views_by_tokens(db, tokens) if tokens and rounds_left else {}
        pending = []
        for p in changed:
            view = fresh.get(p.kept.token)
            if view is not None and view.status == "open":
                pending.append(_Pending(p.kept, p.heartbeat, view))
            else:  # ended meanwhile, or changed under every try: the guest's next heartbeat reads it again
                recent.posted(p.kept, None, p.heartbeat)
    return len(waiting)


@dataclass(frozen=True)
class _Pending:
    """A rated heartbeat to post on `on`: the view kept for its session, or a fresh read of it."""

    kept: SessionView
    heartbeat: RatedHeartbeat
    on: SessionView


def _post_batch(
    db: Executor, tariffs: TariffCache, recent: RecentViews, pending: list[_Pending], now: datetime
) -> list[_Pending]:
    """One statement for all `pending`; tells `recent` of each posted, returns those whose session changed."""
    beats = []
    for p in pending:
        # as rated in memory, unless the view it was rated on has moved since
        same_base = p.heartbeat.base is p.on
        write = p.heartbeat.write if same_base else sessions.rate_online_time(db, tariffs, p.on, p.heartbeat.at)
        beats.append(sessions_db.HeartbeatPost(p.on, write, p.heartbeat.at))
    balances = sessions_db.post_heartbeats(db, beats, now)
    changed = []
    for p, beat in zip(pending, beats, strict=True):
        balance = balances.get(p.on.id)
        if balance is None:
            changed.append(p)
            continue
        after = p.heartbeat.after
        if p.heartbeat.base is not p.on or after.balance != balance:
            after = sessions.view_after_post(p.on, beat.write, p.heartbeat.at, balance)
        recent.posted(p.kept, after, p.heartbeat)
    return changed


class HeartbeatPoster:
    """Runs `post` every `delay_s` in a thread started by the first heartbeat each process rates in memory
    (a thread does not survive a fork, so the process id is checked)."""

    def __init__(self, post: Callable[[], int], delay_s: float) -> None:
        self._post = post
        self.delay_s = delay_s
        self._started_in: int | None = None
        self._stop = threading.Event()
        self._starting = threading.Lock()
        self._posting = threading.Lock()

    def ensure_running(self) -> None:
        if self._started_in == os.getpid():
            return
        with self._starting:
            if self._started_in != os.getpid():
                self._stop = threading.Event()
                threading.Thread(target=self._run, name="heartbeat-poster", daemon=True).start()
                atexit.register(self.stop)
                self._started_in = os.getpid()

    def post_now(self) -> int:
        """Post what is rated now; a failure is logged and left unposted (tried again next time)."""
        with self._posting:
            try:
                return self._post()
            except DBAPIError as exc:  # the database is away: an expected fault, one line
                log.error("could not post the heartbeats rated in memory (kept; trying again): %s", first_line(exc))
                return 0
            except Exception:  # a bug: its traceback says where
                log.exception("could not post the heartbeats rated in memory (kept; trying again)")
                return 0

    def stop(self) -> None:
        """Stop the thread and post what is left (at exit)."""
        self._stop.set()
        self.post_now()

    def _run(self) -> None:
        stop = self._stop
        while not stop.wait(self.delay_s):
            self.post_now()

"""hotspotctl sessions: who is online, and ending a session without SQL."""

from __future__ import annotations

import click

from rlm_hotspot.cli.context import App, pass_app
from rlm_hotspot.cli.output import emit, format_option
from rlm_hotspot.services.admin_sessions import end_session, list_sessions

COLUMNS = ["id", "hotspot", "card", "user", "source", "status", "started", "last_seen", "stopped", "cause",
           "seconds", "bytes_in", "bytes_out", "charged", "ip", "mac", "nas"]  # fmt: skip


@click.group()
def sessions() -> None:
    """Sessions: list them, end one (Disconnect-Request or gate closed, by the worker)."""


@sessions.command("list")
@click.option("--hotspot", default=None, help="Only this hotspot's sessions.")
@click.option("--online", is_flag=True, help="Only open sessions.")
@click.option("--limit", default=100, show_default=True, type=int, help="The latest this many.")
@format_option
@pass_app
def sessions_list(app: App, hotspot: str | None, online: bool, limit: int, fmt: str) -> None:
    """List sessions, the latest first; times are the hotspot's local time.

    Example: hotspotctl sessions list --hotspot airport --online
    """
    with app.transaction() as db:
        rows = list_sessions(db, app.currency(db), hotspot=hotspot, online=online, limit=limit)
    emit(rows, fmt, COLUMNS)


@sessions.command("end")
@click.argument("session_id", type=int)
@pass_app
def sessions_end(app: App, session_id: int) -> None:
    """End a session now: the worker sends its NAS a Disconnect-Request (or closes its gate) and the session
    closes with Acct-Terminate-Cause Admin-Reset. Needs the worker running.

    Example: hotspotctl sessions end 4711
    """
    with app.transaction() as db:
        queued = end_session(db, session_id, app.now())
    click.echo(f"session {queued.session_id}: end queued; {queued.how}")

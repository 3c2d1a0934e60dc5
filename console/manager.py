"""Manager pages: the CLI's reports (sales, usage, revenue) as tables with CSV download, and the audit
trail."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time, timedelta

from flask import Blueprint, Response, abort, render_template, request
from flask_babel import gettext

from console.auth import record, requires
from console.context import console
from rlm_hotspot.services import audit, reports
from rlm_hotspot.services.reports import REPORTS

bp = Blueprint("manager", __name__)
MONEY_COLUMNS = {"value_loaded", "time_revenue", "traffic_revenue", "expired_value", "total", "charged"}
GROUPS = ("day", "hotspot", "batch")


def _day(name: str, default: date) -> date:
    try:
        return date.fromisoformat(request.args.get(name) or default.isoformat())
    except ValueError:
        abort(400)


@bp.get("/reports/<kind>")
@requires("manager")
def report(kind: str) -> Response | str:
    if kind not in REPORTS:
        abort(404)
    ctx = console()
    today = ctx.clock().astimezone(UTC).date()
    by = request.args.get("by", "day")
    if by not in GROUPS:
        abort(400)
    first, last = _day("from", today - timedelta(days=29)), _day("to", today)
    since = datetime.combine(first, time(), UTC)
    until = datetime.combine(last + timedelta(days=1), time(), UTC)
    as_csv = request.args.get("format") == "csv"
    with ctx.transaction() as db:
        currency = ctx.currency(db)
        rows = reports.report(db, kind, by, since, until) if since < until else []
        record(db, "report.csv" if as_csv else "report.view", kind, by=by, since=first, until=last)
    columns = list(rows[0].keys()) if rows else []
    if as_csv:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            # a report's columns depend on its grouping, so its rows stay dicts; money columns are bigint
            writer.writerow([currency.format(int(row[c] or 0)) if c in MONEY_COLUMNS else row[c] for c in columns])  # type: ignore[call-overload]
        response = Response(buffer.getvalue(), mimetype="text/csv")
        response.headers["Content-Disposition"] = f'attachment; filename="{kind}-by-{by}-{first}-{last}.csv"'
        return response
    return render_template(
        "report.html",
        kind=kind,
        by=by,
        first=first,
        last=last,
        rows=rows,
        columns=columns,
        money_columns=MONEY_COLUMNS,
        currency=currency,
        groups=GROUPS,
        kinds=list(REPORTS),
        empty=gettext("Nothing in this period."),
    )


@bp.get("/audit")
@requires("manager")
def trail() -> str:
    who = request.args.get("who") or None
    with console().transaction() as db:
        rows = audit.trail(db, staff_name=who, limit=300)
    return render_template("audit.html", rows=rows, who=who or "")

"""A minimal standalone portal for the gate labs, run inside a lab namespace as its own process.

It does what the real portal must do around a gate (docs/portal-gates.md) and nothing else: a login
opens the billing session and the gate in one unit of work — if the gate does not open, the session is
rolled back; if the commit fails, the gate is closed again. It also plays openNDS's FAS (level 1).
The real app (portal.create_app) replaces it in these tests once it serves standalone logins.

Configured by environment: LAB_DATABASE_URL, LAB_PIN_KEY_FILE, LAB_HOTSPOT_ID, LAB_GATE,
LAB_GATE_OPTIONS (JSON), LAB_LISTEN (host:port), LAB_PORTAL (host:port guests are redirected to).
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from flask import Flask, Response, redirect, request
from sqlalchemy import create_engine
from sqlalchemy.orm import Session
from werkzeug.serving import run_simple

from portal.gates import Gate, GateError, OpenNdsGate, make_gate
from rlm_hotspot.pins import PinVault
from rlm_hotspot.services.access import Policy
from rlm_hotspot.services.errors import CardRefused
from rlm_hotspot.services.sessions import SessionStatus, open_portal_session
from rlm_hotspot.services.tariff_cache import TariffCache
from tests.gates.netlab import NetLab

LOGIN_FORM = "<form method=post action={action}><input name=card><input name=pin>{hidden}</form>"
MAX_GATE_SECONDS = 4 * 3600  # the gate expires by itself at the latest after this


def build_app(database_url: str, vault: PinVault, hotspot_id: int, gate: Gate, portal_host: str) -> Flask:
    engine = create_engine(database_url, pool_size=2)
    tariffs = TariffCache()
    app = Flask(__name__)

    def login(ip: str, mac: str | None) -> SessionStatus | Response:
        """Open the session and the gate together: never a billed session behind a closed gate."""
        with Session(engine) as session:
            try:
                status = open_portal_session(
                    session,
                    vault,
                    tariffs,
                    Policy(),
                    card_text=request.form["card"],
                    pin=request.form["pin"],
                    hotspot_id=hotspot_id,
                    client_ip=ip,
                    client_mac=mac,
                    now=datetime.now(UTC),
                )
            except CardRefused as refused:
                session.commit()  # the failed attempt counts towards the lockout
                return Response(f"refused: {refused}", status=403)
            if not isinstance(gate, OpenNdsGate):  # openNDS is opened by the browser redirect below
                try:
                    gate.open(ip, mac, min(status.seconds_remaining, MAX_GATE_SECONDS))
                except GateError as exc:
                    session.rollback()
                    return Response(f"the gate did not open: {exc}", status=503)
            try:
                session.commit()
            except Exception:
                gate.close(ip, mac)
                raise
            return status

    @app.post("/login")
    def standalone_login() -> Response:
        outcome = login(request.remote_addr or "", None)
        if isinstance(outcome, Response):
            return outcome
        return Response(f"welcome, session {outcome.token}", headers={"X-Session-Token": outcome.token})

    @app.route("/fas/", methods=["GET", "POST"])
    def fas() -> Response:
        assert isinstance(gate, OpenNdsGate)
        fas_request = gate.fas_request(request.values)
        if request.method == "GET":
            hidden = f"<input type=hidden name=fas value={request.args['fas']}>"
            return Response(LOGIN_FORM.format(action="/fas/", hidden=hidden))
        outcome = login(fas_request.client_ip, fas_request.client_mac)
        if isinstance(outcome, Response):
            return outcome
        target = gate.auth_redirect(fas_request, fas_request.origin_url or "http://10.88.0.2/", custom="lab")
        return redirect(target, code=302)  # type: ignore[return-value]

    @app.route("/", defaults={"path": ""})
    @app.route("/<path:path>")
    def anything(path: str) -> Response:
        """Guests whose port 80 was redirected here land on the login page of the portal's own address."""
        if request.host != portal_host:
            return redirect(f"http://{portal_host}/login?orig={quote(request.url, safe='')}", code=302)  # type: ignore[return-value]
        return Response(LOGIN_FORM.format(action="/login", hidden=""))

    return app


def start(lab: NetLab, role: str, listen: str, portal_host: str, gate: str, **settings: str) -> None:
    """Run this portal in a lab namespace (as its own process, like the real one) and wait for it.

    `settings`: database_url, key_file, hotspot_id and gate_options (JSON).
    """
    env = {
        "LAB_DATABASE_URL": settings["database_url"],
        "LAB_PIN_KEY_FILE": settings["key_file"],
        "LAB_HOTSPOT_ID": settings["hotspot_id"],
        "LAB_GATE": gate,
        "LAB_GATE_OPTIONS": settings.get("gate_options", "{}"),
        "LAB_LISTEN": listen,
        "LAB_PORTAL": portal_host,
    }
    lab.spawn(role, [sys.executable, "-m", "tests.gates.lab_portal"], "portal", env)
    lab.wait_for_listener(role, int(listen.rsplit(":", 1)[1]), "portal")


def main() -> None:
    env = os.environ
    gate = make_gate(env["LAB_GATE"], json.loads(env.get("LAB_GATE_OPTIONS", "{}")))
    vault = PinVault.from_file(Path(env["LAB_PIN_KEY_FILE"]))
    app = build_app(env["LAB_DATABASE_URL"], vault, int(env["LAB_HOTSPOT_ID"]), gate, env["LAB_PORTAL"])
    host, port = env["LAB_LISTEN"].rsplit(":", 1)
    run_simple(host, int(port), app, threaded=True)


if __name__ == "__main__":
    main()

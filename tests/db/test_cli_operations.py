"""Day-2 operations without SQL, through hotspotctl against the real database: changing and removing
hotspots, NAS and tariffs, listing sessions and ending one through the worker's queue."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from rlm_hotspot.pins import PinVault
from rlm_hotspot.services import catalog
from rlm_hotspot.services.sessions import open_portal_session
from rlm_hotspot.services.tariff_cache import TariffCache
from tests.db import test_cli
from tests.db.test_cli import cards_of, generate, refused, setup_world
from tests.db.test_sessions import NAS_IP, POLICY, accounting, radius_login

run = test_cli.run  # the fixture: hotspotctl through CliRunner on the test database


def scalar(engine: Engine, sql: str, **params: object) -> object:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


def open_radius_session(committed: Engine, vault: PinVault, number: str, token: str = "t1") -> int:
    """A card logged in at NAS nas1 of hotspot cafe, its Accounting-Start received now."""
    now = datetime.now(UTC)
    with Session(committed) as db:
        radius_login(db, vault, number, token=token, now=now)
        ids = {"username": number, "acct_session_id": f"A-{token}", "token": token}
        accounting(db, TariffCache(), "start", now, session_time=0, framed_ip="10.1.0.5", **ids)
        db.commit()
    return int(scalar(committed, "SELECT id FROM sessions WHERE auth_token = :t", t=token))


def test_hotspot_set_changes_only_what_is_given_and_open_sessions_keep_their_tariff(  # type: ignore[no-untyped-def]
    run, committed: Engine, vault: PinVault
) -> None:
    setup_world(run)
    run("tariff", "add", "winter", "--per-hour", "2.40")
    run("nas", "add", "nas1", "--hotspot", "cafe", "--ip", NAS_IP, "--secret", "s")
    (number, _pin), *_ = generate(run)
    session_id = open_radius_session(committed, vault, number.replace(" ", ""))

    out = run("hotspot", "set", "cafe", "--tariff", "winter", "--max-rate", "50000", "--idle-timeout", "10m").output

    assert "tariff standard -> winter" in out and "max_rate_kbps 1000000 -> 50000" in out
    assert "idle_timeout None -> 600" in out
    (row,) = json.loads(run("hotspot", "list", "--format", "json").output)
    assert (row["tariff"], row["max_rate_kbps"], row["idle_timeout"], row["heartbeat"]) == ("winter", 50000, 600, "off")
    standard = scalar(committed, "SELECT id FROM tariffs WHERE name = 'standard'")
    assert scalar(committed, "SELECT tariff_id FROM sessions WHERE id = :id", id=session_id) == standard
    assert "idle_timeout 600 -> None" in run("hotspot", "set", "cafe", "--idle-timeout", "off").output
    assert "nothing changed" in run("hotspot", "set", "cafe", "--heartbeat", "off").output

    refused(run("hotspot", "set", "cafe", "--heartbeat-timeout", "5s", ok=False), "at least 10 s")
    refused(run("hotspot", "set", "cafe", "--tariff", "gold", ok=False), "no tariff 'gold'")
    refused(run("hotspot", "set", "cafe", "--timezone", "Mars/Olympus", ok=False), "unknown time zone")
    refused(run("hotspot", "set", "moon", "--max-rate", "5", ok=False), "no hotspot 'moon'")
    refused(run("hotspot", "set", "cafe", ok=False), "nothing to change")
    assert json.loads(run("hotspot", "list", "--format", "json").output)[0]["idle_timeout"] is None


def test_remove_is_refused_while_anything_refers_to_the_row(run, committed: Engine) -> None:  # type: ignore[no-untyped-def]
    setup_world(run)
    run("nas", "add", "nas1", "--hotspot", "cafe", "--ip", NAS_IP, "--secret", "s")
    generate(run)

    refused(run("hotspot", "remove", "cafe", ok=False), r"hotspot 'cafe' is still referred to by .*card_batches.*nas")
    refused(run("tariff", "remove", "standard", ok=False), r"tariff 'standard' is still referred to by .*hotspots")
    refused(run("nas", "remove", "nope", ok=False), "no NAS named 'nope'")
    assert scalar(committed, "SELECT count(*) FROM hotspots") == 1

    run("tariff", "add", "draft", "--per-hour", "1", "--band", "00:00=1", "--free-net", "10.9.0.0/16")
    run("hotspot", "add", "typo", "--timezone", "UTC", "--tariff", "draft")
    run("nas", "add", "spare", "--hotspot", "typo", "--ip", "192.0.2.77", "--secret", "s")
    assert "NAS spare removed" in run("nas", "remove", "spare").output
    assert "hotspot typo removed" in run("hotspot", "remove", "typo").output
    assert "tariff draft removed" in run("tariff", "remove", "draft").output  # its bands and networks go with it
    assert scalar(committed, "SELECT count(*) FROM tariff_bands") == 2  # standard's two
    assert [r["name"] for r in json.loads(run("hotspot", "list", "--format", "json").output)] == ["cafe"]


def test_nas_set_and_a_nas_with_history_stays(run, committed: Engine, vault: PinVault) -> None:  # type: ignore[no-untyped-def]
    setup_world(run)
    run("hotspot", "add", "hall", "--timezone", "UTC", "--tariff", "standard")
    run("nas", "add", "nas1", "--hotspot", "cafe", "--ip", "192.0.2.1", "--secret", "s")
    run("nas", "add", "nas2", "--hotspot", "cafe", "--ip", "192.0.2.2", "--secret", "s")

    out = run("nas", "set", "nas1", "--ip", NAS_IP, "--secret", "n3w", "--vendor", "mikrotik").output

    assert "changed ip_address, secret, vendor" in out and "radius clients" in out
    assert "n3w" not in out
    assert scalar(committed, "SELECT secret FROM nas WHERE name = 'nas1'") == "n3w"
    assert "changed hotspot" in run("nas", "set", "nas2", "--hotspot", "hall").output
    assert "nothing changed" in run("nas", "set", "nas2", "--coa-port", "3799").output
    refused(run("nas", "set", "nas2", "--ip", NAS_IP, ok=False), "already has that name or address")
    refused(run("nas", "set", "nas2", "--ip", "300.0.0.1", ok=False), "bad NAS address")
    refused(run("nas", "set", "nas2", "--hotspot", "moon", ok=False), "no hotspot 'moon'")
    assert scalar(committed, "SELECT host(ip_address) FROM nas WHERE name = 'nas2'") == "192.0.2.2"

    (number, _pin), *_ = generate(run)
    open_radius_session(committed, vault, number.replace(" ", ""))
    refused(run("nas", "remove", "nas1", ok=False), r"NAS 'nas1' is still referred to by 1 row\(s\) of sessions")


def test_message_authenticator_is_required_unless_an_admin_turns_it_off_for_one_nas(  # type: ignore[no-untyped-def]
    run, committed: Engine
) -> None:
    """BlastRADIUS (docs/radius.md): on by default, off only by hand, with a warning; the client blocks
    FreeRADIUS reads say which, and the change is on the audit trail."""
    setup_world(run)
    run("nas", "add", "modern", "--hotspot", "cafe", "--ip", "192.0.2.1", "--secret", "s")
    added = run("nas", "add", "legacy", "--hotspot", "cafe", "--ip", "192.0.2.2", "--secret", "s",
                "--no-require-message-authenticator")  # fmt: skip
    assert "NAS legacy added" in added.output and "warning: FreeRADIUS will accept" in added.output

    listed = {row["name"]: row for row in json.loads(run("nas", "list", "--format", "json").output)}
    assert listed["modern"]["require_message_authenticator"] is True
    assert listed["legacy"]["require_message_authenticator"] is False
    assert "require_message_authenticator" in run("nas", "list").output.splitlines()[0]
    blocks = run("radius", "clients").output
    assert 'client modern {\n\tipaddr = 192.0.2.1\n\tsecret = "s"\n\trequire_message_authenticator = yes\n' in blocks
    assert 'client legacy {\n\tipaddr = 192.0.2.2\n\tsecret = "s"\n\trequire_message_authenticator = no\n' in blocks

    changed = run("--operator", "alice", "nas", "set", "legacy", "--require-message-authenticator").output
    assert "changed require_message_authenticator" in changed and "radius clients" in changed
    assert "warning" not in changed
    assert "nothing changed" in run("nas", "set", "legacy", "--require-message-authenticator").output
    assert "warning: FreeRADIUS will accept" in run("nas", "set", "modern", "--no-require-message-authenticator").output
    assert scalar(committed, "SELECT require_message_authenticator FROM nas WHERE name = 'legacy'") is True
    assert scalar(committed, "SELECT require_message_authenticator FROM nas WHERE name = 'modern'") is False
    audited = scalar(
        committed,
        "SELECT detail FROM audit_trail WHERE action = 'cli.nas.set' AND staff_name = 'alice' AND subject = 'legacy'",
    )
    assert audited["require_message_authenticator"] is True  # type: ignore[index]


def test_tariff_set_changes_limits_and_refuses_prices(run, committed: Engine) -> None:  # type: ignore[no-untyped-def]
    setup_world(run)

    assert (
        "changed rate_down_kbps, simultaneous_use"
        in run("tariff", "set", "standard", "--sim-use", "2", "--rate-down", "20000").output
    )
    row = json.loads(run("tariff", "list", "--format", "json").output)[0]
    assert (row["sim_use"], row["rate_down_kbps"], row["rate_up_kbps"]) == (2, 20000, None)
    assert "changed rate_down_kbps" in run("tariff", "set", "standard", "--rate-down", "0").output
    assert json.loads(run("tariff", "list", "--format", "json").output)[0]["rate_down_kbps"] is None

    refused(run("tariff", "set", "standard", "--per-hour", "9", ok=False), r"--per-hour: a tariff's prices cannot")
    refused(run("tariff", "set", "standard", "--band", "22:00=1", ok=False), "hotspot set HOTSPOT --tariff standard-2")
    refused(run("tariff", "set", "standard", "--sim-use", "0", ok=False), "at least 1")
    refused(run("tariff", "set", "gold", "--sim-use", "2", ok=False), "no tariff 'gold'")
    assert scalar(committed, "SELECT time_price FROM tariffs WHERE name = 'standard'") == 120


def test_sessions_list_and_end_through_the_worker(  # type: ignore[no-untyped-def]
    run, committed: Engine, vault: PinVault
) -> None:
    setup_world(run)  # cafe: RADIUS, Europe/Moscow
    run("hotspot", "add", "lounge", "--timezone", "UTC", "--tariff", "standard", "--mode", "standalone")
    run("nas", "add", "nas1", "--hotspot", "cafe", "--ip", NAS_IP, "--secret", "s")
    (number, _pin), *_ = generate(run)
    radius_id = open_radius_session(committed, vault, number.replace(" ", ""))
    portal_card, portal_pin = cards_of(run, "lounge")[0]
    with Session(committed) as db:
        lounge = catalog.get_hotspot(db, "lounge").id
        open_portal_session(
            db, vault, TariffCache(), POLICY, card_text=portal_card, pin=portal_pin, hotspot_id=lounge,
            client_ip="10.77.0.2", client_mac=None, now=datetime.now(UTC),
        )  # fmt: skip
        db.commit()
    portal_id = int(scalar(committed, "SELECT id FROM sessions WHERE source = 'portal'"))

    listed = json.loads(run("sessions", "list", "--online", "--format", "json").output)
    assert {(r["id"], r["hotspot"], r["status"]) for r in listed} == {
        (radius_id, "cafe", "open"),
        (portal_id, "lounge", "open"),
    }
    cafe = next(r for r in listed if r["hotspot"] == "cafe")
    assert cafe["started"].endswith("+03:00") and cafe["nas"] == "nas1" and cafe["ip"] == "10.1.0.5"
    only_cafe = json.loads(run("sessions", "list", "--hotspot", "cafe", "--format", "json").output)
    assert [r["id"] for r in only_cafe] == [radius_id]
    refused(run("sessions", "list", "--hotspot", "moon", ok=False), "no hotspot 'moon'")

    assert "Disconnect-Request will go to NAS nas1" in run("sessions", "end", str(radius_id)).output
    assert "gate will be closed" in run("sessions", "end", str(portal_id)).output
    run("sessions", "end", str(radius_id))  # asked twice: still one request
    pending = "SELECT count(*) FROM disconnects WHERE session_id = :id AND reason = 'admin' AND done_at IS NULL"
    assert scalar(committed, pending, id=radius_id) == 1

    run("worker", "--once", "--gate", "none")  # closes the gate; nothing answers at the NAS's CoA port

    closed = "SELECT status || ' ' || terminate_cause FROM sessions WHERE id = :id"
    assert scalar(committed, closed, id=portal_id) == "closed Admin-Reset"
    assert scalar(committed, "SELECT attempts FROM disconnects WHERE session_id = :id", id=radius_id) == 1
    refused(run("sessions", "end", str(portal_id), ok=False), r"has already ended \(Admin-Reset")
    refused(run("sessions", "end", "999999", ok=False), "no session 999999")
    offline = json.loads(run("sessions", "list", "--format", "json").output)
    assert next(r for r in offline if r["id"] == portal_id)["cause"] == "Admin-Reset"


def test_a_redeemed_card_shows_its_own_state_not_the_balance_it_went_into(run) -> None:  # type: ignore[no-untyped-def]
    setup_world(run)
    (target, _), (source, source_pin), *_ = generate(run)
    run("cards", "topup", target, source, "--pin", source_pin)

    shown = run("cards", "show", source).output

    assert "status:     redeemed" in shown and f"its value added to {target}" in shown
    assert "balance:" not in shown
    assert "balance:    10.00 EUR" in run("cards", "show", target).output
    listed = {row["number"]: row for row in json.loads(run("cards", "list", "--format", "json").output)}
    assert listed[source.replace(" ", "")]["state"] == "redeemed"
    assert listed[source.replace(" ", "")]["balance"] == ""
    assert listed[target.replace(" ", "")]["balance"] == "10.00 EUR"


def test_lockout_list_in_local_time_and_clear_says_when_there_is_nothing(  # type: ignore[no-untyped-def]
    run, committed: Engine
) -> None:
    setup_world(run)
    (locked, _), (fine, _), *_ = generate(run)
    with committed.begin() as conn:
        for _ in range(5):
            conn.execute(
                text(
                    "INSERT INTO login_attempts (at, card_number, client, source, outcome) "
                    "VALUES (now(), :n, 'cc-dd', 'portal', 'wrong_pin')"
                ),
                {"n": locked.replace(" ", "")},
            )

    listed = json.loads(run("lockout", "list", "--timezone", "Europe/Moscow", "--format", "json").output)

    assert {row["last_attempt"][-6:] for row in listed} == {"+03:00"}
    assert "nothing to clear: card" in run("lockout", "clear", fine).output
    assert "nothing to clear: client ee-ff" in run("lockout", "clear", "--client", "ee-ff").output
    assert scalar(committed, "SELECT count(*) FROM lockout_clears") == 0
    assert "lockout lifted for card" in run("lockout", "clear", locked).output
    refused(run("lockout", "list", "--timezone", "Mars/Olympus", ok=False), "unknown time zone")

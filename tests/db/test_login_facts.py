"""One login snapshot in three places: SQL's composite type login_facts, the JSON array radius_login_json
hands radiusd (sql/024), and `LoginSnapshot`. A field added, dropped or moved in one of them must fail here,
by name, rather than shift every later value into the wrong field of a RADIUS login."""

from __future__ import annotations

from dataclasses import fields
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from rlm_hotspot.db import sessions as sessions_db
from rlm_hotspot.db.sessions import LoginSnapshot
from rlm_hotspot.pins import PinVault
from rlm_hotspot.services import cards
from rlm_hotspot.services.access import LoginRequest, radius_login_call
from tests.conftest import NOW
from tests.db.test_sessions import NAS_IP, POLICY, radius_login, radius_world

CLIENT = "02:00:00:00:00:0a"


def test_login_facts_lists_the_fields_of_login_snapshot_in_its_order(db: Session) -> None:
    columns = db.execute(
        text(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'login_facts'::regclass AND attnum > 0 "
            "AND NOT attisdropped ORDER BY attnum"
        )
    ).scalars()
    assert list(columns) == [field.name for field in fields(LoginSnapshot)]


def test_the_radius_json_array_carries_each_field_of_the_snapshot_under_its_name(db: Session, vault: PinVault) -> None:
    """The array radiusd hands the module, parsed by position, equals the snapshot read by column name."""
    batch = radius_world(
        db,
        vault,
        valid_from=NOW - timedelta(days=2),
        use_before=NOW + timedelta(days=3),
        validity=timedelta(hours=5),
        expires_at=NOW + timedelta(days=7),
    )
    number = batch.numbers[0]
    radius_login(db, vault, number, token="first", client=CLIENT)  # a live (pending) session
    cards.activate(db, cards.find_card(db, number, lock=True), NOW)  # an account and a balance
    db.execute(
        text(
            "INSERT INTO login_attempts (at, card_number, client, source, outcome) "
            "VALUES (:at, :number, 'elsewhere', 'portal', 'wrong_pin')"
        ),
        {"at": NOW, "number": number},
    )
    later = NOW + timedelta(seconds=5)
    by_name = sessions_db.login_snapshot(
        db,
        number=number,
        nas_ip=NAS_IP,
        hotspot_id=None,
        client=CLIENT,
        now=later,
        lockout_window_s=POLICY.lockout_window_s,
        pending_ttl_s=POLICY.pending_session_ttl_s,
    )
    request = LoginRequest(card_text=number, source="radius", nas_ip=NAS_IP, client=CLIENT)
    call = radius_login_call(request, POLICY, token="second", username=number, calling_station_id=CLIENT, now=later)
    result = db.execute(text("SELECT radius_login_json(:call)"), {"call": call}).scalar_one()
    by_position = sessions_db.parse_radius_login(result)
    assert by_position.snapshot == by_name
    assert (by_name.number, by_name.nas_vendor, by_name.live_sessions) == (number, "mikrotik", 1)
    assert (by_name.status, by_name.activated_at, by_name.balance) == ("active", NOW, 500)
    assert (by_name.validity_seconds, by_name.card_failures, by_name.client_failures) == (5 * 3600, 1, 0)
    assert by_position.reserved_session_id is None  # the card's one slot is taken
    assert (by_position.number, by_position.at, by_position.token) == (number, later, "second")

"""An admin exports a batch with its PINs from the Setup page: the CLI's A4 sheet or CSV, a reason on the
audit trail (never a PIN), re-exports shown; other roles, hashed batches and huge ones refused."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from rlm_hotspot.pins import PinVault
from tests.console import test_cli
from tests.console.conftest import audit_actions, hashed_batch, post, sheet_facts, sign_in
from tests.portal.conftest import World

run = test_cli.run  # the fixture: hotspotctl through CliRunner on the test database


def export(client: FlaskClient, batch_id: int, fmt: str = "pdf", reason: str = "reprint for the lobby"):  # type: ignore[no-untyped-def]
    return post(client, f"/admin/batch/{batch_id}/export", format=fmt, reason=reason)


def exports(engine: Engine) -> list[tuple[str, str, dict[str, object]]]:
    """The audit rows of exports and refused exports: (who, action, detail)."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT staff_name, action, detail FROM audit_trail WHERE action LIKE 'batch.export%' ORDER BY id")
        )
        return [(r.staff_name, r.action, r.detail) for r in rows]


def trail_text(engine: Engine) -> str:
    with engine.connect() as conn:
        return str(conn.execute(text("SELECT string_agg(detail::text, ' ') FROM audit_trail")).scalar_one())


def test_an_admin_exports_the_clis_a4_sheet_with_every_pin_and_qr_codes_without_them(
    client: FlaskClient, committed: Engine, world: World, tmp_path: Path
) -> None:
    batch = world.cards.batch_id
    sign_in(client, "admin")
    setup = client.get("/admin/setup").get_data(as_text=True)
    assert f"/admin/batch/{batch}/export" in setup
    confirm = client.get(f"/admin/batch/{batch}/export")
    page = confirm.get_data(as_text=True)
    assert confirm.status_code == 200 and "never" in page and 'name="reason"' in page
    assert all(pin not in page for pin in world.cards.pins)

    response = export(client, batch)
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Content-Disposition"] == f'attachment; filename="batch{batch}.pdf"'
    words, scanned = sheet_facts(response.data, tmp_path)
    assert all(pin in words for pin in world.cards.pins) and "Series" in words
    assert sorted(scanned) == sorted(f"http://portal.example/?card={number}" for number in world.cards.numbers)

    [(who, action, detail)] = exports(committed)
    assert (who, action) == ("admin", "batch.export")
    assert detail == {"batch_id": batch, "format": "pdf", "cards": 6, "reason": "reprint for the lobby", "again": False}
    assert all(pin not in trail_text(committed) for pin in world.cards.pins)
    assert ("admin", "batch.export", str(batch)) in audit_actions(committed)


def test_the_csv_is_the_file_hotspotctl_writes_and_a_re_export_is_shown_before_it_is_made(
    client: FlaskClient, committed: Engine, world: World, run: Callable[..., Result], tmp_path: Path
) -> None:
    batch = world.cards.batch_id
    sign_in(client, "admin")
    response = export(client, batch, "csv", reason="mail merge for the hotel")
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == f'attachment; filename="batch{batch}.csv"'
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    batch_cards = sorted(zip(world.cards.numbers, world.cards.pins, strict=True))
    assert [(r["card_number"], r["pin"]) for r in rows] == batch_cards
    assert {(r["face_value"], r["deadline"]) for r in rows} == {("5.00 EUR", "")}
    cli_file = tmp_path / "cli.csv"
    assert run("--operator", "olga", "cards", "export", "--batch", str(batch), "--output", str(cli_file)).exit_code == 0
    assert cli_file.read_bytes() == response.data  # the same columns, the same bytes

    # the CLI's export was the last: the list and the confirmation say so, and the next row says "again"
    setup = client.get("/admin/setup").get_data(as_text=True)
    confirm = client.get(f"/admin/batch/{batch}/export").get_data(as_text=True)
    assert "olga (hotspotctl)" in setup and "exported before" in confirm and "by olga (hotspotctl)" in confirm
    assert "Export again" in confirm
    export(client, batch, "csv", reason="the hotel lost its copy")
    assert [(action, detail["again"]) for _, action, detail in exports(committed)] == [
        ("batch.export", False),
        ("batch.export", True),
    ]
    confirm = client.get(f"/admin/batch/{batch}/export").get_data(as_text=True)
    assert "by admin" in confirm


def test_a_cashier_and_a_manager_are_refused_and_nothing_is_exported(
    client: FlaskClient, committed: Engine, world: World
) -> None:
    batch = world.cards.batch_id
    for role in ("cashier", "manager"):
        sign_in(client, role)
        assert client.get(f"/admin/batch/{batch}/export").status_code == 403
        response = export(client, batch)
        assert response.status_code == 403 and all(pin.encode() not in response.data for pin in world.cards.pins)
        assert (role, "refused", f"/admin/batch/{batch}/export") in audit_actions(committed)
    assert exports(committed) == []


def test_a_pin_never_travels_in_a_get(client: FlaskClient, world: World) -> None:
    sign_in(client, "admin")
    response = client.get(f"/admin/batch/{world.cards.batch_id}/export?format=pdf&reason=x")
    page = response.get_data(as_text=True)
    assert response.mimetype == "text/html" and all(pin not in page for pin in world.cards.pins)


@pytest.mark.parametrize("reason", ["", "   "])
def test_the_reason_is_required(client: FlaskClient, committed: Engine, world: World, reason: str) -> None:
    batch = world.cards.batch_id
    sign_in(client, "admin")
    response = export(client, batch, reason=reason)
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/admin/batch/{batch}/export")
    assert "Give a reason" in client.get(f"/admin/batch/{batch}/export").get_data(as_text=True)
    assert exports(committed) == []


def test_a_hashed_batch_cannot_be_exported(
    client: FlaskClient, committed: Engine, vault: PinVault, world: World
) -> None:
    hashed = hashed_batch(committed, vault)
    sign_in(client, "admin")
    assert "PINs hashed: no export" in client.get("/admin/setup").get_data(as_text=True)
    confirm = client.get(f"/admin/batch/{hashed.batch_id}/export").get_data(as_text=True)
    assert "are hashed" in confirm and 'id="export"' not in confirm
    response = export(client, hashed.batch_id)
    assert response.status_code == 302 and response.mimetype != "application/pdf"
    assert "cannot be exported. Nothing was exported." in client.get("/admin/setup").get_data(as_text=True)
    [(who, action, detail)] = exports(committed)
    assert (who, action, detail["batch_id"]) == ("admin", "batch.export.refused", hashed.batch_id)


def test_a_batch_too_large_for_the_console_is_sent_to_hotspotctl(
    client: FlaskClient, committed: Engine, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("console.admin.MAX_BATCH_IN_CONSOLE", 5)  # the shop's batch has 6 cards
    batch = world.cards.batch_id
    sign_in(client, "admin")
    pointer = f"hotspotctl cards export --batch {batch} --output batch{batch}.pdf"
    assert pointer in client.get(f"/admin/batch/{batch}/export").get_data(as_text=True)
    assert export(client, batch).status_code == 302
    assert pointer in client.get("/admin/setup").get_data(as_text=True)
    assert [action for _, action, _ in exports(committed)] == ["batch.export.refused"]


def test_an_unknown_batch_is_not_found(client: FlaskClient, committed: Engine, world: World) -> None:
    sign_in(client, "admin")
    missing = world.cards.batch_id + 1000
    assert client.get(f"/admin/batch/{missing}/export").status_code == 404
    export(client, missing)
    assert f"There is no batch {missing}." in client.get("/admin/setup").get_data(as_text=True)


def test_the_export_speaks_russian(client: FlaskClient, committed: Engine, world: World) -> None:
    batch = world.cards.batch_id
    sign_in(client, "admin")
    client.get("/language/ru")
    export(client, batch)
    page = client.get(f"/admin/batch/{batch}/export").get_data(as_text=True)
    assert "Выгрузить ещё раз" in page and "Причина" in page
    assert "Export again" not in page

"""hotspotctl through click's CliRunner against the real database: happy paths and every user error."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from rlm_hotspot.cli.main import cli
from rlm_hotspot.pins import PinVault
from rlm_hotspot.services import catalog
from rlm_hotspot.services.sessions import open_portal_session, post_heartbeat
from rlm_hotspot.services.tariff_cache import TariffCache
from tests.db.helpers import assert_ledger_balanced
from tests.db.test_sessions import NAS_IP, POLICY, accounting, login, radius_login


@pytest.fixture
def run(committed: Engine, database_url: str, key_file: Path):  # type: ignore[no-untyped-def]
    runner = CliRunner()
    env = {"HOTSPOT_DATABASE_URL": database_url, "HOTSPOT_PIN_KEY_FILE": str(key_file), "HOTSPOT_CONFIG": os.devnull}

    def invoke(*args: str, ok: bool = True, input: str | None = None) -> Result:
        result = runner.invoke(cli, list(args), env=env, input=input)
        if ok:
            assert result.exit_code == 0, f"{args}: {result.output}"
        return result

    return invoke


def refused(result: Result, pattern: str) -> None:
    """A user error: exit status 1, one clear line, no traceback."""
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert re.search(pattern, result.output), result.output


def setup_world(run) -> None:  # type: ignore[no-untyped-def]
    run(
        "tariff",
        "add",
        "standard",
        "--per-hour",
        "1.20",
        "--increment",
        "1m",
        "--band",
        "22:00=0.60",
        "--band",
        "07:00=1.20",
        "--per-mb",
        "0.01",
        "--free-net",
        "10.99.0.0/24",
    )
    run("hotspot", "add", "cafe", "--timezone", "Europe/Moscow", "--tariff", "standard")


def generate(run, *extra: str) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    result = run("cards", "generate", "--count", "3", "--value", "5.00", "--hotspot", "cafe", "--show", *extra)
    return re.findall(r"^(\d{4} \d{4} \d+)\s+([0-9A-Z]+)$", result.output, re.MULTILINE)


def test_db_init_and_upgrade_are_repeatable(run) -> None:  # type: ignore[no-untyped-def]
    assert "EUR" in run("db", "init", "--currency", "EUR").output
    assert "up to date" in run("db", "upgrade").output
    assert "up to date" in run("db", "status").output
    refused(run("db", "init", "--currency", "USD", ok=False), "cannot change")


def test_a_whole_admin_day(run, committed: Engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    setup_world(run)
    run("nas", "add", "lobby", "--hotspot", "cafe", "--ip", "192.0.2.1", "--secret", "s3cret", "--vendor", "mikrotik")
    nas_rows = json.loads(run("nas", "list", "--format", "json").output)
    assert nas_rows[0]["vendor"] == "mikrotik" and "secret" not in nas_rows[0]
    cards = generate(run, "--validity", "30d")
    assert len(cards) == 3
    result = run("cards", "generate", "--count", "2", "--value", "5", "--hotspot", "cafe")
    assert "PIN entropy: 47.5 bits" in result.output

    listed = list(csv.DictReader(io.StringIO(run("cards", "list", "--format", "csv").output)))
    assert {row["state"] for row in listed} == {"new"} and len(listed) == 5

    (target, _), (source, source_pin) = cards[0], cards[1]
    out = run("cards", "topup", target, source, "--pin", source_pin).output
    assert "balance now 10.00 EUR" in out
    show = run("cards", "show", target).output
    assert "balance:    10.00 EUR" in show and "active" in show
    statement = run("account", "statement", target).output
    assert "card_load" in statement and "topup" in statement and "MSK" in statement

    run("cards", "block", cards[2][0])
    assert "blocked" in run("cards", "show", cards[2][0]).output
    assert "unblocked 1 card" in run("cards", "unblock", cards[2][0]).output

    sales = json.loads(run("report", "sales", "--by", "hotspot", "--format", "json").output)
    assert sales == [{"hotspot": "cafe", "cards_activated": 1, "topups": 1, "value_loaded": "10.00 EUR"}]
    assert "(nothing)" in run("report", "usage", "--by", "hotspot").output  # no sessions yet
    run("report", "revenue", "--by", "batch")
    shown = run("tariff", "show", "standard", "--balance", "1.20", "--timezone", "UTC").output
    assert "from now buys" in shown

    pdf, csv_file = tmp_path / "b.pdf", tmp_path / "b.csv"
    with committed.connect() as conn:
        first_batch = str(conn.execute(text("SELECT min(id) FROM card_batches")).scalar_one())
    run("cards", "export", "--batch", first_batch, "--output", str(pdf))
    run("cards", "export", "--batch", first_batch, "--output", str(csv_file))
    assert pdf.read_bytes().startswith(b"%PDF")
    exported = list(csv.DictReader(csv_file.open()))
    assert {(r["card_number"], r["pin"]) for r in exported} >= {(n.replace(" ", ""), p) for n, p in cards[2:]}
    with Session(committed) as session:
        assert_ledger_balanced(session)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("cards", "show", "0001 0000 0000"), "typo|check digit"),
        (("cards", "generate", "--count", "3", "--value", "abc"), "bad amount"),
        (("cards", "generate", "--count", "3", "--value", "-1"), "bad amount"),
        (("cards", "generate", "--count", "3", "--value", "1.234"), "decimals"),
        (("cards", "generate", "--count", "3", "--value", "5", "--use-before", "31/12/2026"), "bad date"),
        (("cards", "generate", "--count", "3", "--value", "5", "--validity", "forever"), "bad duration"),
        (("cards", "generate", "--count", "3", "--value", "5", "--tariff", "gold"), "no tariff 'gold'"),
        (("cards", "generate", "--count", "3", "--value", "5", "--hotspot", "moon"), "no hotspot 'moon'"),
        (("hotspot", "add", "x", "--timezone", "Mars/Olympus", "--tariff", "standard"), "unknown time zone"),
        (("hotspot", "add", "cafe", "--timezone", "UTC", "--tariff", "standard"), "already exists"),
        (("tariff", "add", "free"), "all prices are zero"),
        (("tariff", "add", "b", "--per-hour", "1", "--band", "25:00=1"), "bad band"),
        (
            ("tariff", "add", "d", "--per-hour", "1.20", "--band", "22:00=0.60"),
            "--per-hour 1.20 would be charged at no",
        ),
        (("tariff", "add", "t", "--per-mb", "0.02", "--band", "22:00=0/0.01"), "--per-mb 0.02 would be charged at no"),
        (("tariff", "add", "n", "--per-hour", "1", "--free-net", "10.0.0.0/33"), "10.0.0.0/33"),
        (("nas", "add", "n1", "--hotspot", "cafe", "--ip", "300.1.1.1", "--secret", "s"), "bad NAS address"),
        (("cards", "block"), "exactly one"),
        (("cards", "block", "--batch", "999"), "no batch 999"),
        (("cards", "export", "--batch", "999", "--output", "x.txt"), "csv or .pdf"),
        (("report", "sales", "--from", "2026-12-01", "--to", "2026-11-01"), "empty"),
    ],
)
def test_user_errors_are_one_clear_line(run, args: tuple[str, ...], message: str) -> None:  # type: ignore[no-untyped-def]
    setup_world(run)
    run("nas", "add", "dup", "--hotspot", "cafe", "--ip", "192.0.2.9", "--secret", "s")
    refused(run(*args, ok=False), message)


def test_duplicate_nas_is_refused_and_nothing_is_half_written(run, committed: Engine) -> None:  # type: ignore[no-untyped-def]
    setup_world(run)
    run("nas", "add", "lobby", "--hotspot", "cafe", "--ip", "192.0.2.1", "--secret", "s")
    refused(
        run("nas", "add", "lobby2", "--hotspot", "cafe", "--ip", "192.0.2.1", "--secret", "s", ok=False),
        "already exists",
    )
    refused(
        run(
            "cards",
            "generate",
            "--count",
            "3",
            "--value",
            "5",
            "--series",
            "1",
            "--hotspot",
            "cafe",
            "--output",
            "/nonexistent-dir/x.pdf",
            ok=False,
        ),
        "No such file|not found|nonexistent",
    )
    with committed.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM cards")).scalar_one() == 0
        assert conn.execute(text("SELECT count(*) FROM card_batches")).scalar_one() == 0


def test_unreachable_database_is_one_line(key_file: Path) -> None:
    env = {
        "HOTSPOT_DATABASE_URL": "postgresql+psycopg2://nobody@/x?host=/nonexistent&port=1",
        "HOTSPOT_PIN_KEY_FILE": str(key_file),
        "HOTSPOT_CONFIG": os.devnull,
    }
    result = CliRunner().invoke(cli, ["hotspot", "list"], env=env)
    refused(result, "cannot reach the database")


def test_missing_configuration_is_one_line() -> None:
    result = CliRunner().invoke(cli, ["hotspot", "list"], env={"HOTSPOT_CONFIG": "/nonexistent.toml"})
    refused(result, "not found")


def test_lockout_is_visible_and_can_be_cleared(run, committed: Engine) -> None:  # type: ignore[no-untyped-def]
    setup_world(run)
    cards = generate(run)
    number = cards[0][0].replace(" ", "")
    with committed.begin() as conn:
        for _ in range(5):
            conn.execute(
                text(
                    "INSERT INTO login_attempts (at, card_number, client, source, outcome) "
                    "VALUES (now(), :n, 'aa-bb', 'portal', 'wrong_pin')"
                ),
                {"n": number},
            )
    listed = json.loads(run("lockout", "list", "--format", "json").output)
    assert {(row["kind"], row["subject"], row["failures"]) for row in listed} == {
        ("card", number, 5),
        ("client", "aa-bb", 5),
    }
    assert f"lockout lifted for card {number}" in run("lockout", "clear", cards[0][0]).output
    assert [row["kind"] for row in json.loads(run("lockout", "list", "--format", "json").output)] == ["client"]
    assert "lockout lifted for client aa-bb" in run("lockout", "clear", "--client", "aa-bb").output
    assert json.loads(run("lockout", "list", "--format", "json").output) == []
    refused(run("lockout", "clear", ok=False), "exactly one")


def test_nas_uam_settings(run, committed: Engine) -> None:  # type: ignore[no-untyped-def]
    setup_world(run)
    run("nas", "add", "chilli1", "--hotspot", "cafe", "--ip", "192.0.2.7", "--secret", "s", "--vendor", "chilli")
    assert "settings saved" in run("nas", "uam", "chilli1", "--secret", "uam-s3cret").output
    with committed.connect() as conn:
        assert conn.execute(text("SELECT uam_secret FROM nas")).scalar_one() == "uam-s3cret"
    refused(run("nas", "uam", "chilli1", "--login-url", "ftp://x", ok=False), "http:// or https://")
    refused(run("nas", "uam", "nope", "--secret", "x", ok=False), "no NAS named 'nope'")
    assert "cleared" in run("nas", "uam", "chilli1").output


MOSCOW_2330 = datetime(2026, 11, 25, 20, 30, tzinfo=UTC)  # 23:30 in Moscow (UTC+3)
README_TARIFF = ("--per-hour", "1.20", "--increment", "1m", "--band", "22:00=0.60", "--band", "07:00=1.20")
README_DAY = "22:00-07:00 0.60 EUR/hour, 07:00-22:00 1.20 EUR/hour"


def cards_of(run, hotspot: str) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    shown = run("cards", "generate", "--count", "2", "--value", "5.00", "--hotspot", hotspot, "--show").output
    return re.findall(r"^(\d{4} \d{4} \d+)\s+([0-9A-Z]+)$", shown, re.MULTILINE)


def test_the_readme_tariff_charges_the_night_price_from_2330_to_0130(  # type: ignore[no-untyped-def]
    run, committed: Engine, vault: PinVault
) -> None:
    assert README_DAY in run("tariff", "add", "standard", *README_TARIFF).output
    run("hotspot", "add", "cafe", "--timezone", "Europe/Moscow", "--tariff", "standard")
    run("hotspot", "add", "lounge", "--timezone", "Europe/Moscow", "--tariff", "standard",
        "--mode", "standalone", "--traffic-meter", "netflow")  # fmt: skip
    run("nas", "add", "nas1", "--hotspot", "cafe", "--ip", NAS_IP, "--secret", "s")
    assert f"daily_prices: {README_DAY}" in run("tariff", "show", "standard").output
    assert json.loads(run("tariff", "list", "--format", "json").output)[0]["daily_prices"] == README_DAY
    (radius_card, _), (portal_card, portal_pin) = cards_of(run, "cafe")[0], cards_of(run, "lounge")[0]

    with Session(committed) as db:
        tariffs = TariffCache()
        # Session-Timeout: 5.00 from 23:30 buys 7.5 h of night (4.50) and 25 min of day (0.50)
        assert login(db, vault, radius_card, now=MOSCOW_2330).session_timeout == (450 + 25) * 60
        radius_login(db, vault, radius_card, token="night", now=MOSCOW_2330)
        ids = {"username": radius_card, "acct_session_id": "N1", "token": "night"}
        accounting(db, tariffs, "start", MOSCOW_2330, session_time=0, **ids)
        hour = timedelta(hours=1)
        interim = accounting(db, tariffs, "interim", MOSCOW_2330 + hour, session_time=3600, **ids)
        stop = accounting(db, tariffs, "stop", MOSCOW_2330 + 2 * hour, session_time=7200, **ids)
        assert (interim.debited, stop.debited) == (60, 60)  # 23:30-00:30 and 00:30-01:30 at 0.60/h

        lounge = catalog.get_hotspot(db, "lounge").id
        status = open_portal_session(
            db, vault, tariffs, POLICY, card_text=portal_card, pin=portal_pin, hotspot_id=lounge,
            client_ip="10.77.0.2", client_mac=None, now=MOSCOW_2330,
        )  # fmt: skip
        for minutes in (30, 90, 120):
            status = post_heartbeat(db, tariffs, status.token, MOSCOW_2330 + timedelta(minutes=minutes))
        assert status.balance == 500 - 120
        assert_ledger_balanced(db)


def test_hotspot_heartbeat_defaults_follow_the_mode_and_the_hidden_grace_is_set(run) -> None:  # type: ignore[no-untyped-def]
    setup_world(run)  # cafe: --mode radius by default
    run("hotspot", "add", "lobby", "--timezone", "UTC", "--tariff", "standard", "--mode", "standalone")
    run("hotspot", "add", "hall", "--timezone", "UTC", "--tariff", "standard", "--mode", "standalone",
        "--hidden-grace", "20m")  # fmt: skip
    listed = run("hotspot", "list", "--format", "csv").output.splitlines()
    rows = {line.split(",")[1]: line for line in listed[1:]}
    # a NAS meters time and ends idle sessions: no page needs to stay open there; the portal's gate needs one
    assert ",radius,radius,300,,off,90,600," in rows["cafe"]
    assert ",standalone,netflow,300,,on,90,600," in rows["lobby"]
    assert ",on,90,1200," in rows["hall"]
    refused(
        run("hotspot", "add", "x", "--timezone", "UTC", "--tariff", "standard", "--heartbeat-timeout", "5s", ok=False),
        "at least 10 s",
    )

"""Every change an admin makes with hotspotctl is on the audit trail, with who made it and never a secret."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from rlm_hotspot.services import audit
from tests.db import test_cli
from tests.db.test_cli import generate, setup_world
from tests.db.test_sessions import NAS_IP

run = test_cli.run  # the fixture: hotspotctl through CliRunner on the test database


def trail(engine: Engine) -> list[tuple[str, str, str | None, dict[str, object]]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT staff_name, action, subject, detail FROM audit_trail ORDER BY id"))
        return [(r.staff_name, r.action, r.subject, r.detail) for r in rows]


def test_changes_and_pins_shown_are_recorded_with_the_operator_and_nothing_secret(  # type: ignore[no-untyped-def]
    run, committed: Engine, tmp_path: Path
) -> None:
    setup_world(run)
    run("--operator", "alice", "nas", "add", "nas1", "--hotspot", "cafe", "--ip", NAS_IP, "--secret", "s3cret!")
    run("--operator", "alice", "hotspot", "set", "cafe", "--max-rate", "50000")
    generate(run)
    before = len(trail(committed))
    run("hotspot", "list")  # reads nothing but settings: not on the trail
    run("--operator", "bob", "quarantine", "list")
    assert len(trail(committed)) == before
    with committed.connect() as conn:  # ids are not reset between tests: ask which batch it was
        batch = conn.execute(text("SELECT max(id) FROM card_batches")).scalar_one()
    run("--operator", "bob", "cards", "export", "--batch", str(batch), "--output", str(tmp_path / "export.csv"))

    entries = trail(committed)
    nas_add = next(entry for entry in entries if entry[1] == "cli.nas.add")
    assert nas_add[:3] == ("alice", "cli.nas.add", "nas1") and nas_add[3]["ip_address"] == NAS_IP
    assert "s3cret!" not in json.dumps(entries) and "secret" not in nas_add[3]
    assert ("alice", "cli.hotspot.set", "cafe") in [entry[:3] for entry in entries]
    assert entries[-1][:2] == ("bob", "cli.cards.export")  # PINs shown: recorded although nothing changed
    assert "bob" in run("audit", "--who", "bob").output


def test_pins_written_or_shown_by_generate_are_an_export_of_its_batch(  # type: ignore[no-untyped-def]
    run, committed: Engine, tmp_path: Path
) -> None:
    """`cards generate --output/--show` lets the PINs out as `cards export` does: the console's "last exported"
    (and its warning before one more copy) counts it; a batch generated without either was never exported."""
    setup_world(run)

    def last_batch() -> int:
        with committed.connect() as conn:  # ids are not reset between tests: ask which batch it was
            return int(conn.execute(text("SELECT max(id) FROM card_batches")).scalar_one())

    def last_export(batch: int) -> tuple[str, str] | None:
        with Session(committed) as db:
            mark = audit.last_batch_exports(db, batch).get(batch)
        return None if mark is None else (mark.staff_name, mark.action)

    output = tmp_path / "new.pdf"
    run("--operator", "carol", "cards", "generate", "--count", "2", "--value", "5.00", "--output", str(output))
    written = last_batch()
    run("--operator", "dave", "cards", "generate", "--count", "2", "--value", "5.00", "--show")
    shown = last_batch()
    run("cards", "generate", "--count", "2", "--value", "5.00")
    kept = last_batch()

    assert last_export(written) == ("carol", "cli.cards.generate.export")
    assert last_export(shown) == ("dave", "cli.cards.generate.export")
    assert last_export(kept) is None
    row = next(entry for entry in trail(committed) if entry[3].get("batch_id") == written)
    assert row[2:] == (str(written), {"batch_id": written, "cards": 2, "output": str(output), "show": False})


def test_a_generate_that_does_not_commit_leaves_no_file_of_its_cards(  # type: ignore[no-untyped-def]
    run, committed: Engine, tmp_path: Path
) -> None:
    """The PIN file is written before the batch commits (a hashed-PIN batch's PINs exist nowhere else), but named
    as asked only once it did: a batch that fails at the last step (here its audit row) leaves no file of cards
    that do not exist for the operator to print and sell."""
    setup_world(run)
    output = tmp_path / "batch.csv"
    with committed.begin() as conn:
        batches = conn.execute(text("SELECT count(*) FROM card_batches")).scalar_one()
        conn.execute(text("CREATE FUNCTION refuse_export() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                          "RAISE EXCEPTION 'audit trail refused'; END $$"))  # fmt: skip
        conn.execute(text("CREATE TRIGGER refuse_export BEFORE INSERT ON audit_trail FOR EACH ROW WHEN "
                          "(NEW.action = 'cli.cards.generate.export') EXECUTE FUNCTION refuse_export()"))  # fmt: skip
    try:
        failed = run("cards", "generate", "--count", "2", "--value", "5.00", "--output", str(output), ok=False)
    finally:
        with committed.begin() as conn:
            conn.execute(text("DROP TRIGGER refuse_export ON audit_trail"))
            conn.execute(text("DROP FUNCTION refuse_export()"))
    assert failed.exit_code != 0 and "audit trail refused" in failed.output
    with committed.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM card_batches")).scalar_one() == batches
    assert list(tmp_path.iterdir()) == []

    run("cards", "generate", "--count", "2", "--value", "5.00", "--output", str(output))
    assert [path.name for path in tmp_path.iterdir()] == ["batch.csv"]
    assert output.stat().st_mode & 0o077 == 0  # PINs: the operator's alone
    assert len(output.read_text().splitlines()) == 3  # a header and the two cards

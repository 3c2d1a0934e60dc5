"""The restore drill of docs/operations.md: cards made, the database dumped with `pg_dump -Fc` and restored into
a new cluster. There a card logs in through the portal with the key file kept apart; without it, or with the
fresh key file a new host's `db init` makes, the portal says why and nothing in the database changes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, create_engine, text

from devtools.cluster import PrivateCluster, temporary_cluster
from portal import create_app
from rlm_hotspot.cli.main import cli
from rlm_hotspot.pins import PinKeyError, PinVault, create_key_file
from tests.conftest import prepare_database
from tests.portal.conftest import login, make_world, portal_settings


@pytest.fixture
def old_and_new() -> Iterator[tuple[PrivateCluster, PrivateCluster]]:
    """The clusters of the old host and the new one (two data directories, two sockets)."""
    with temporary_cluster("hotspot-old-pg-") as (old, _), temporary_cluster("hotspot-new-pg-") as (new, _):
        yield old, new


def hotspotctl(url: str, key_file: Path, *args: str):  # type: ignore[no-untyped-def]
    env = {"HOTSPOT_DATABASE_URL": url, "HOTSPOT_PIN_KEY_FILE": str(key_file), "HOTSPOT_CONFIG": os.devnull}
    return CliRunner().invoke(cli, list(args), env=env)


def state(engine: Engine) -> tuple[object, ...]:
    """What a login changes: the cards' states, sessions, login attempts (failed PINs count towards a lockout)."""
    with engine.connect() as conn:
        return (
            conn.execute(text("SELECT number, status, activated_at FROM cards ORDER BY number")).all(),
            conn.execute(text("SELECT count(*) FROM sessions")).scalar_one(),
            conn.execute(text("SELECT count(*) FROM login_attempts")).scalar_one(),
        )


def test_a_restored_database_logs_a_card_in_with_its_key_file_only(
    old_and_new: tuple[PrivateCluster, PrivateCluster], key_file: Path, vault: PinVault, tmp_path: Path
) -> None:
    old, new = old_and_new
    old_engine = create_engine(prepare_database(old, "hotspot"))
    cards = make_world(old_engine, vault, count=2).cards
    old_engine.dispose()
    dump = tmp_path / "hotspot.dump"
    old.dump("hotspot", dump)
    assert vault.keys[1].hex().encode() not in dump.read_bytes()  # nor a PIN: the dump is safe without the key
    assert all(pin.encode() not in dump.read_bytes() for pin in cards.pins)

    new.restore("hotspot", dump)
    url = new.url("hotspot")
    engine = create_engine(url)
    assert "up to date" in hotspotctl(url, key_file, "db", "status").output
    before = state(engine)

    # Without the key file: the portal does not start, and says why in one line.
    missing = tmp_path / "nowhere" / "pin.keys"
    refused = hotspotctl(url, missing, "portal", "run", "--hotspot", "cafe")
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    assert f"PIN key file {missing} not found" in refused.output
    with pytest.raises(PinKeyError):
        create_app(portal_settings(url, missing))

    # With another key file (a new host's `db init`): not a wrong PIN, a fault; no lockout counts it.
    create_key_file(foreign := tmp_path / "fresh.keys")
    assert "NO: wrong key file?" in hotspotctl(url, foreign, "pins", "status").output
    app = create_app(portal_settings(url, foreign))
    try:
        for _ in range(4):  # more than the lockout allows
            response = login(app.test_client(), cards.numbers[0], cards.pins[0])
            assert response.status_code == 500 and "went wrong on our side" in response.get_data(as_text=True)
    finally:
        app.extensions["hotspot_portal"].close()
    assert state(engine) == before

    # With the key file kept apart: the guest is online.
    app = create_app(portal_settings(url, key_file))
    try:
        response = login(app.test_client(), cards.numbers[0], cards.pins[0])
        assert response.status_code == 303 and response.headers["Location"] == "/status"
    finally:
        app.extensions["hotspot_portal"].close()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM sessions WHERE status = 'open'")).scalar_one() == 1
    engine.dispose()

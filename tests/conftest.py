"""Shared fixtures: a private PostgreSQL cluster started by the test run itself.

The cluster lives in a fresh temporary directory with its own unix socket, so the suite never touches a
server that happens to run on the machine (not even `make demo`'s), and it is destroyed at the end.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.orm import Session

from devtools.cluster import PrivateCluster, temporary_cluster
from rlm_hotspot.db import migrate
from rlm_hotspot.pins import PinVault, create_key_file
from rlm_hotspot.settings import Settings

# radiusd with rlm_hotspot, for every directory of tests that drives it (e2e, adversarial): one server and
# one database per test run; the Debian package, built in the background from the start of the run
pytest_plugins = ("tests.e2e.radius_harness", "tests.e2e.deb_build")

# No test reads the machine's own /etc/rlm-hotspot/hotspot.toml (the package test installs one for a
# minute; an installed rlm-hotspot has one): a test that wants a settings file names it.
os.environ["HOTSPOT_CONFIG"] = os.devnull

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

TESTS = Path(__file__).parent
# Every test here drives real external programs (radiusd, nfacctd, gunicorn, chromium, pgbouncer, patroni).
E2E_DIRECTORIES = frozenset({"e2e", "multinode", "ha"})


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by these marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tiers, so that `pytest -m "not db and not e2e"` runs with no PostgreSQL at all: `db` on every test whose
    fixtures reach the session's cluster (however indirectly), `e2e` on every test of the end-to-end directories."""
    for item in items:
        if "pg_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.db)
        if item.path.relative_to(TESTS).parts[0] in E2E_DIRECTORIES:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PrivateCluster]:
    with temporary_cluster("hotspot-pg-") as (cluster, _root):
        yield cluster


def prepare_database(cluster: PrivateCluster, name: str) -> str:
    """A migrated database with its installation row (EUR), on `cluster`; returns its URL."""
    cluster.create_database(name)
    url = cluster.url(name)
    engine = create_engine(url)
    migrate.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO installation (currency_code, currency_exponent) VALUES ('EUR', 2) ON CONFLICT DO NOTHING")
        )
        start_identities_apart(conn)
    engine.dispose()
    return url


def start_identities_apart(conn: Connection) -> None:
    """Every table's ids start at their own odd offset (101, 1101, 2101, ...), also after TRUNCATE ... RESTART
    IDENTITY: a test that assumes "the first batch is 1" or mixes up a hotspot's id with a batch's fails every
    time, not only when another test ran first (sequences are not rolled back with a test's transaction)."""
    names = conn.execute(text("SELECT sequencename FROM pg_sequences WHERE schemaname = 'public' ORDER BY 1"))
    for offset, name in enumerate(names.scalars()):
        conn.execute(text(f'ALTER SEQUENCE "{name}" START WITH {offset * 1000 + 101} RESTART'))


@pytest.fixture(scope="session")
def database_url(pg_cluster: PrivateCluster) -> str:
    return prepare_database(pg_cluster, "hotspot_test")


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_engine(database_url, pool_size=5)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "pin.keys"
    create_key_file(path)
    return path


@pytest.fixture(scope="session")
def vault(key_file: Path) -> PinVault:
    return PinVault.from_file(key_file)


@pytest.fixture(scope="session")
def settings(database_url: str, key_file: Path) -> Settings:
    return Settings(database_url=database_url, pin_key_file=key_file)


@pytest.fixture
def db(engine: Engine) -> Iterator[Session]:
    """A session inside a transaction that is rolled back after the test (services may use savepoints)."""
    with engine.connect() as connection:
        outer = connection.begin()
        session = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
        try:
            yield session
        finally:
            session.close()
            outer.rollback()


TABLES_TO_EMPTY = (
    "audit_trail, lockout_clears, login_attempts, ledger, disconnects, sessions, cards, accounts, card_batches, "
    "nas, hotspots, tariff_free_networks, tariff_bands, tariffs, radius_batches"
)


@pytest.fixture
def committed(engine: Engine) -> Iterator[Engine]:
    """For tests whose code commits (CLI, races): every table is emptied afterwards."""
    yield engine
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {TABLES_TO_EMPTY} RESTART IDENTITY CASCADE"))


@dataclass
class Clock:
    """The `now` a web app under test reads; tests move it."""

    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A browser on the directory's web app (tests/portal, tests/console: their `app` fixture)."""
    return app.test_client()

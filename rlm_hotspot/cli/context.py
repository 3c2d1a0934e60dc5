"""The CLI's context object, shared by every command group."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import click
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from rlm_hotspot.core.money import Currency
from rlm_hotspot.db.engine import make_engine
from rlm_hotspot.pins import PinVault
from rlm_hotspot.services.access import Policy
from rlm_hotspot.services.catalog import currency
from rlm_hotspot.settings import Settings, load_settings


class App:
    """The context object: settings, engine and PIN keys, each made on first use."""

    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self._settings: Settings | None = None
        self._engine: Engine | None = None
        self._vault: PinVault | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_path)
        return self._settings

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.settings, pool_size=1, application_name="hotspotctl")
        return self._engine

    @property
    def vault(self) -> PinVault:
        if self._vault is None:
            self._vault = PinVault.from_file(self.settings.pin_key_file)
        return self._vault

    @property
    def policy(self) -> Policy:
        return Policy(
            lockout_attempts=self.settings.lockout_attempts,
            lockout_window_s=self.settings.lockout_window_s,
            pending_session_ttl_s=self.settings.pending_session_ttl_s,
        )

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: commits when the command succeeds, rolls back on any error."""
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    def currency(self, session: Session) -> Currency:
        return currency(session)

    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


pass_app = click.make_pass_decorator(App)

"""What every request of one console process shares: settings, engine, PIN keys, policy and the clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from console.settings import ConsoleSettings
from rlm_hotspot.clock import utc_now
from rlm_hotspot.core.money import Currency
from rlm_hotspot.pins import PinVault
from rlm_hotspot.services.access import Policy
from rlm_hotspot.services.catalog import currency
from rlm_hotspot.services.policy import login_policy


@dataclass
class ConsoleContext:
    settings: ConsoleSettings
    engine: Engine
    vault: PinVault
    clock: Callable[[], datetime] = utc_now

    @property
    def policy(self) -> Policy:
        return login_policy(self.settings.core)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: commits when the block ends normally, rolls back on any error."""
        with Session(self.engine, expire_on_commit=False) as db, db.begin():
            yield db

    def currency(self, db: Session) -> Currency:
        return currency(db)

    def close(self) -> None:
        self.engine.dispose()


def console() -> ConsoleContext:
    context: ConsoleContext = current_app.extensions["hotspot_console"]  # Flask keeps extensions untyped
    return context

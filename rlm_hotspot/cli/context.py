"""The CLI's context object, shared by every command group."""

from __future__ import annotations

import getpass
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import click
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from rlm_hotspot.clock import utc_now
from rlm_hotspot.core.money import Currency
from rlm_hotspot.db.engine import make_engine
from rlm_hotspot.pins import PinVault
from rlm_hotspot.services import audit as audit_service
from rlm_hotspot.services.access import Policy
from rlm_hotspot.services.catalog import currency
from rlm_hotspot.services.policy import login_policy
from rlm_hotspot.settings import Settings, load_settings


class App:
    """The context object: settings, engine and PIN keys, each made on first use."""

    def __init__(self, config_path: str | None, operator: str | None = None) -> None:
        self.config_path = config_path
        self.operator = operator or getpass.getuser()
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
        return login_policy(self.settings)

    @contextmanager
    def transaction(self, *, audit: bool = False) -> Iterator[Session]:
        """One unit of work: commits when the command succeeds, rolls back on any error.

        A unit of work that changed anything (or that showed secrets: `audit`) is written to the audit
        trail with the command, its options (never a PIN, secret, password or key) and the operator, in
        the same transaction: the change and its record commit together or not at all.
        """
        with Session(self.engine, expire_on_commit=False) as db, db.begin():
            yield db
            if audit or audit_service.changed_anything(db):
                self._audit(db)

    def _audit(self, db: Session) -> None:
        context = click.get_current_context(silent=True)
        if context is None or context.command_path.split()[1:2] == ["console"]:  # the console audits its own
            return
        arguments = [p.name for p in context.command.params if isinstance(p, click.Argument)]
        subject = next((str(context.params[name]) for name in arguments if context.params.get(name)), None)
        detail = {name: value for name, value in context.params.items() if not _secret(name)}
        self.record(db, "", subject, **detail)

    def record(self, db: Session, what: str, subject: str | None = None, **detail: object) -> None:
        """A row of the audit trail by the operator of this command, its action the command's path (then
        `.what`, for a second act of one command), in the caller's transaction."""
        context = click.get_current_context()
        action = ".".join(["cli", *context.command_path.split()[1:], *([what] if what else [])])
        actor = audit_service.Actor(None, self.operator, f"hotspotctl@{socket.gethostname()}")
        audit_service.record(db, actor, action, self.now(), subject, **detail)

    def currency(self, db: Session) -> Currency:
        return currency(db)

    @staticmethod
    def now() -> datetime:
        return utc_now()

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


pass_app = click.make_pass_decorator(App)


def _secret(option: str) -> bool:
    """Options whose values the audit trail never keeps."""
    return any(word in option for word in ("pin", "secret", "password", "key"))

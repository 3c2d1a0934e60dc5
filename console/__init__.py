"""The front-desk web console (Flask) for the people who sell the cards: sell and print, help a guest,
see the place; managers read reports and the audit trail; admins manage staff and see the setup.

``create_app(settings)`` takes :class:`ConsoleSettings`, a flat mapping of setting names (tests), or None
(the settings file and environment, as under gunicorn). See docs/console.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from flask import Flask, g

from console import admin, auth, desk, manager, sell
from console.context import ConsoleContext
from console.errors import init_errors
from console.i18n import init_i18n
from console.security import init_security
from console.settings import ConsoleSettings, load_console_settings
from rlm_hotspot.clock import utc_now
from rlm_hotspot.db.engine import make_engine
from rlm_hotspot.pins import PinVault
from rlm_hotspot.services.staff import role_allows
from rlm_hotspot.web import share_templates

__all__ = ["ConsoleSettings", "create_app"]


def create_app(
    settings: ConsoleSettings | Mapping[str, object] | None = None, *, clock: Callable[[], datetime] = utc_now
) -> Flask:
    if settings is None:
        settings = load_console_settings()
    elif not isinstance(settings, ConsoleSettings):
        settings = ConsoleSettings.from_mapping(settings)
    app = Flask(__name__)
    app.config.update(SECRET_KEY=settings.secret_key)
    app.extensions["hotspot_console"] = ConsoleContext(
        settings=settings,
        engine=make_engine(settings.core, pool_size=2, application_name="hotspot-console"),
        vault=PinVault.from_file(settings.core.pin_key_file),
        clock=clock,
    )
    init_security(app, cookie_secure=settings.cookie_secure, proxy_hops=settings.proxy_hops)
    app.before_request(auth.load_staff)
    for blueprint in (auth.bp, desk.bp, sell.bp, manager.bp, admin.bp):
        app.register_blueprint(blueprint)
    init_i18n(app)
    init_errors(app)
    share_templates(app)
    app.jinja_env.globals.update(can=lambda role: g.get("staff") is not None and role_allows(g.staff.role, role))
    return app

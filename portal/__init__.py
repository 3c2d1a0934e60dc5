"""The captive portal (Flask): card + PIN login, a live status page whose heartbeat keeps the session
alive, top-ups, the RFC 8908 API — for one hotspot per process, on the shared billing services.

``create_app(settings)`` takes :class:`PortalSettings`, a flat mapping of setting names (tests, tools),
or None (the settings file and environment, as under gunicorn).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from flask import Flask

from portal import auth, captive, heartbeat_lifecycle, status
from portal.context import PortalContext
from portal.errors import init_errors
from portal.heartbeat_shortcut import HeartbeatShortcut
from portal.i18n import init_i18n
from portal.metrics import init_metrics
from portal.security import init_security, trust_proxies
from portal.settings import PortalSettings, load_portal_settings
from rlm_hotspot.clock import utc_now
from rlm_hotspot.db.engine import make_engine
from rlm_hotspot.nas.gates import make_gate
from rlm_hotspot.pins import PinVault
from rlm_hotspot.web import share_templates

__all__ = ["PortalSettings", "create_app"]


def create_app(
    settings: PortalSettings | Mapping[str, object] | None = None, *, clock: Callable[[], datetime] = utc_now
) -> Flask:
    """One portal process: its engine, PIN keys and gate are made here, once (gunicorn: per worker)."""
    if settings is None:
        settings = load_portal_settings()
    elif not isinstance(settings, PortalSettings):
        settings = PortalSettings.from_mapping(settings)
    app = Flask(__name__)
    app.config.update(SECRET_KEY=settings.secret_key)
    # No pre-ping (a round trip per request): a broken connection fails one request with the friendly 503
    # and is replaced for the next. Autocommit: see PortalContext.
    engine = make_engine(settings.core, pool_size=3, application_name="hotspot-portal", pre_ping=False, autocommit=True)
    app.extensions["hotspot_portal"] = PortalContext(
        settings=settings,
        engine=engine,
        vault=PinVault.from_file(settings.core.pin_key_file),
        gate=make_gate(settings.gate, settings.gate_options),
        clock=clock,
    )
    # The blueprints first: a request for another host (the firewall sent it here) is redirected to the
    # portal before the CSRF check, which would refuse a form posted to that other site.
    for blueprint in (auth.bp, status.bp, heartbeat_lifecycle.bp, captive.bp):
        app.register_blueprint(blueprint)
    init_security(app, cookie_secure=settings.cookie_secure)
    init_i18n(app)
    init_errors(app)
    share_templates(app)
    app.wsgi_app = HeartbeatShortcut(app)  # type: ignore[method-assign]  # Flask's way to add WSGI middleware
    trust_proxies(app, settings.proxy_hops)
    init_metrics(app)
    return app

"""The portal's Prometheus counters: requests by kind and status, logins by outcome, errors by kind.

One set per process (a gunicorn worker). `hotspotctl portal run --metrics-port` turns on prometheus_client's
multiprocess mode before the workers start, and gunicorn's master serves the sum over its workers
(rlm_hotspot.metrics.serve_workers); without it the counters only live in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from flask import Flask, current_app
from prometheus_client import CollectorRegistry, Counter

from portal.heartbeat_shortcut import PATH as HEARTBEAT_PATH
from rlm_hotspot.core.decisions import Refusal

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

EXTENSION = "hotspot_portal_metrics"


class PortalMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "hotspot_portal_requests", "Requests answered, by kind (heartbeat, page) and HTTP status.",
            ["kind", "status"], registry=self.registry,
        )  # fmt: skip
        self.logins = Counter(
            "hotspot_portal_logins", "Login attempts, by outcome (ok, or the refusal: wrong_pin, locked, ...).",
            ["outcome"], registry=self.registry,
        )  # fmt: skip
        self.errors = Counter(
            "hotspot_portal_errors", "Requests failed, by kind (database_unavailable, unexpected).", ["kind"],
            registry=self.registry,
        )  # fmt: skip


class CountedRequests:
    """Counts every answer by kind and status, the heartbeats the shortcut gives included: it wraps the
    outermost WSGI callable (`app.wsgi_app = CountedRequests(app.wsgi_app, metrics)`)."""

    def __init__(self, app: WSGIApplication, metrics: PortalMetrics) -> None:
        self.app = app
        self._requests = metrics.requests

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        kind = "heartbeat" if environ.get("PATH_INFO") == HEARTBEAT_PATH else "page"

        def counted(
            status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
        ) -> Callable[[bytes], object]:
            self._requests.labels(kind=kind, status=status[:3]).inc()
            return start_response(status, headers, exc_info)

        return self.app(environ, counted)


def init_metrics(app: Flask) -> None:
    metrics = PortalMetrics()
    app.extensions[EXTENSION] = metrics
    app.wsgi_app = CountedRequests(app.wsgi_app, metrics)  # type: ignore[method-assign]  # Flask's way to add WSGI middleware


def count_login(refusal: Refusal | None) -> None:
    _metrics().logins.labels(outcome=str(refusal) if refusal else "ok").inc()


def count_error(kind: str) -> None:
    _metrics().errors.labels(kind=kind).inc()


def _metrics() -> PortalMetrics:
    metrics: PortalMetrics = current_app.extensions[EXTENSION]  # Flask keeps extensions untyped
    return metrics

"""The console under gunicorn, for `hotspotctl console run`: an app built in each worker process (an
engine per process, never shared by a fork)."""

from __future__ import annotations

from console import ConsoleSettings, create_app
from rlm_hotspot.web import GunicornServer


def serve(settings: ConsoleSettings, *, bind: str, workers: int) -> None:
    """Serve the console with gunicorn until stopped (SIGTERM finishes the requests in flight)."""
    options: dict[str, object] = {
        "bind": bind,
        "workers": workers,
        "threads": 2,
        "worker_class": "gthread",
        "proc_name": "hotspot-console",
        "errorlog": "-",
        "logger_class": "rlm_hotspot.web.GunicornLogs",  # its lines in the process's --log-format
        "accesslog": None,  # paths carry card numbers at most, never a PIN; still, no log of staff clicks
        "graceful_timeout": 10,
        "control_socket_disable": True,
    }
    GunicornServer(lambda: create_app(settings), options).run()

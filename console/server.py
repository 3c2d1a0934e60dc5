"""The console under gunicorn, for `hotspotctl console run`: an app built in each worker process (an
engine per process, never shared by a fork)."""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication

from console import ConsoleSettings, create_app


class ConsoleServer(BaseApplication):  # type: ignore[misc]
    """gunicorn with the console built in each worker."""

    def __init__(self, settings: ConsoleSettings, options: dict[str, object]) -> None:
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return create_app(self.settings)


def serve(settings: ConsoleSettings, *, bind: str, workers: int) -> None:
    """Serve the console with gunicorn until stopped (SIGTERM finishes the requests in flight)."""
    options: dict[str, object] = {
        "bind": bind,
        "workers": workers,
        "threads": 2,
        "worker_class": "gthread",
        "proc_name": "hotspot-console",
        "errorlog": "-",
        "accesslog": None,  # paths carry card numbers at most, never a PIN; still, no log of staff clicks
        "graceful_timeout": 10,
        "control_socket_disable": True,
    }
    ConsoleServer(settings, options).run()

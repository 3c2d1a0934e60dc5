"""What the portal's and the console's test-client fixtures share: the settings every web app needs on
the test database, the app itself (its engine closed afterwards) and the CSRF token a browser would find
in a page's form."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def web_settings(database_url: str, key_file: Path, secret_key: str, **own: object) -> dict[str, object]:
    """A flat settings mapping: the test database and PIN keys, a cookie secret, plain HTTP, then the app's own."""
    return {
        "database_url": database_url,
        "pin_key_file": key_file,
        "secret_key": secret_key,
        "cookie_secure": False,
        **own,
    }


def running_app(
    create_app: Callable[..., Flask], settings: dict[str, object], clock: Callable[[], datetime], extension: str
) -> Iterator[Flask]:
    """The app for one test; its context (`app.extensions[extension]`) is closed afterwards."""
    app = create_app(settings, clock=clock)
    yield app
    app.extensions[extension].close()


def csrf_of(client: FlaskClient, path: str) -> str:
    """The token a real browser would find in the page's form."""
    match = _CSRF.search(client.get(path).get_data(as_text=True))
    assert match, f"no CSRF field on {path}"
    return match.group(1)

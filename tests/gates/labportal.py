"""The real portal in a gate lab, and the guest's browser that uses it.

`start_portal` serves ``portal.create_app`` with ``flask run`` (werkzeug, threaded) inside a lab
namespace, configured the way an operator does it: a settings file with ``[database]``, ``[pins]`` and
``[portal]`` (gate and gate options), the cookie secret from the environment. `Guest` is curl in the
guest's namespace with a cookie jar: it opens the login page and sends the form back with its CSRF
token and the session cookie, as a browser would.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from tests.gates.netlab import NetLab

HOTSPOT = "cafe"  # the name labdb.standalone_card gives the hotspot
SECRET_KEY = "lab-portal-cookie-secret-of-at-least-32-characters"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def start_portal(
    lab: NetLab,
    role: str,
    public_url: str,
    *,
    database_url: str,
    key_file: Path,
    gate: str,
    gate_options: Mapping[str, str] | None = None,
) -> None:
    """Serve the portal from namespace `role` on the address and port of `public_url`, and wait for it."""
    address = urlsplit(public_url)
    assert address.hostname and address.port, public_url
    settings = [
        "[database]",
        f"url = {json.dumps(database_url)}",
        "[pins]",
        f"key_file = {json.dumps(str(key_file))}",
        "[portal]",
        f"url = {json.dumps(public_url)}",
        f"hotspot = {json.dumps(HOTSPOT)}",
        f"gate = {json.dumps(gate)}",
        "cookie_secure = false",
        "[portal.gate_options]",
        *(f"{key} = {json.dumps(value)}" for key, value in (gate_options or {}).items()),
    ]
    config = lab.workdir / "hotspot.toml"
    config.write_text("\n".join(settings) + "\n")
    command = [sys.executable, "-m", "flask", "--app", "portal", "run", "--host", address.hostname]
    env = {"HOTSPOT_CONFIG": str(config), "HOTSPOT_PORTAL_SECRET_KEY": SECRET_KEY}
    lab.spawn(role, [*command, "--port", str(address.port)], "portal", env)
    lab.wait_for_listener(role, address.port, "portal")


@dataclass(frozen=True)
class Answer:
    status: int  # 0: no answer
    location: str  # where a redirect points ('' otherwise)
    body: str


class Guest:
    """The guest's browser: curl in `cl`, keeping cookies, never following redirects by itself."""

    def __init__(self, lab: NetLab) -> None:
        self.lab = lab
        self.cookies = lab.workdir / "guest-cookies.txt"

    def get(self, url: str, *options: str, timeout: float = 5) -> Answer:
        shown = self.lab.run(
            "cl",
            "curl", "-s", "-m", str(timeout), "-b", str(self.cookies), "-c", str(self.cookies),
            "-w", "\n%{http_code} %{redirect_url}", *options, url,
            check=False, timeout=timeout + 5,
        ).stdout  # fmt: skip
        body, _, status_line = shown.rpartition("\n")
        status, _, location = status_line.partition(" ")
        return Answer(int(status or 0), location, body)

    def post(self, url: str, form: Mapping[str, str]) -> Answer:
        fields = [option for key, value in form.items() for option in ("--data-urlencode", f"{key}={value}")]
        return self.get(url, *fields)

    def log_in(self, login_page: str, card: str, pin: str) -> Answer:
        """Open the login page, then send its form with the card, the PIN and the page's CSRF token."""
        page = self.get(login_page)
        assert page.status == 200, page
        token = _CSRF.search(page.body)
        assert token, f"no CSRF field on {login_page}"
        return self.post(urljoin(login_page, "/login"), {"card": card, "pin": pin, "csrf_token": token.group(1)})

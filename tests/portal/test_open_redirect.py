"""The language switch's `?next=` goes back to a page of this site, never elsewhere and never a 500.

Each value is sent as the raw query string a link would carry: the test client decodes it as the
server does (so `%09` reaches the portal as a tab, which browsers drop from a Location)."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from portal.security import same_site_path
from tests.portal.conftest import World

BYPASSES = [
    "//evil.example/phish",  # scheme-relative
    "/%09/evil.example/phish",  # tab, dropped by browsers: //evil.example
    "%09//evil.example/",
    "/%0d%0aSet-Cookie:%20x=y",  # CR/LF: header injection (was a 500)
    "/%0aevil.example",
    "/%0d/evil.example",
    "/%00/evil.example",
    "/%2f/evil.example",  # an encoded slash, decoded once: //evil.example
    "%2f%2fevil.example",
    "/%252f%252fevil.example",  # double-encoded
    "/\\evil.example",  # backslash: browsers read /\ as //
    "/%5c/evil.example",
    "%5c%5cevil.example",
    "\\\\evil.example",
    "https://evil.example/",
    "http:evil.example",
    "javascript:alert(1)",
    "data:text/html,phish",
    "//user:pass@evil.example/",
    "https://portal.lan@evil.example/",
    "/@evil.example",
    "%20//evil.example",  # leading space
    "/%E3%80%82evil.example",  # ideographic full stop
    "/%EF%BC%8F%EF%BC%8Fevil.example",  # fullwidth solidus
    "//evil%E3%80%82example",
    "evil.example",  # not a path
    "",
    "/" + "a" * 300,  # longer than any page of ours
]


@pytest.mark.parametrize("next_value", BYPASSES)
def test_every_known_bypass_goes_to_the_login_page(client: FlaskClient, world: World, next_value: str) -> None:
    response = client.get(f"/lang/en?next={next_value}")
    assert (response.status_code, response.headers["Location"]) == (303, "/")
    assert "lang=en" in response.headers["Set-Cookie"]  # the language is still set


@pytest.mark.parametrize("path", ["/", "/status", "/terms", "/status/"])
def test_the_portals_own_pages_are_kept(client: FlaskClient, world: World, path: str) -> None:
    assert client.get(f"/lang/ru?next={path}").headers["Location"] == path


def test_no_next_goes_to_the_login_page(client: FlaskClient, world: World) -> None:
    assert client.get("/lang/ru").headers["Location"] == "/"


@pytest.mark.parametrize("text", ["/\t/evil", "/\r\n", "/\uff45vil", "/a//b", "/a/../..//evil", None])
def test_decoded_values_that_are_not_plain_paths(text: str | None) -> None:
    assert same_site_path(text) == "/"

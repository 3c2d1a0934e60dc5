"""Staff sign-in: scrypt hashes, roles enforced on every page, idle timeout, throttling, CSRF, headers."""

from __future__ import annotations

import logging
import re

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from console import ConsoleSettings, create_app
from rlm_hotspot.services.staff import FAILED_LOGINS_PER_NAME, hash_password, verify_password
from rlm_hotspot.settings import SettingsError
from rlm_hotspot.totp import code_at
from tests.console.conftest import audit_actions, console_settings, csrf_of, post, sign_in
from tests.portal.conftest import Clock

ADMIN_PAGES = ("/admin/staff", "/admin/setup")
MANAGER_PAGES = ("/reports/sales", "/audit")


def test_passwords_are_scrypt_hashes_that_verify_only_the_right_password() -> None:
    stored = hash_password("correct horse battery")
    assert stored.startswith("scrypt$32768$8$1$")
    assert verify_password("correct horse battery", stored)
    assert not verify_password("correct horse batterY", stored)
    assert hash_password("correct horse battery") != stored  # salted


def test_every_page_needs_a_sign_in(client: FlaskClient) -> None:
    for path in ("/", "/sell", "/card?number=1", "/online", *MANAGER_PAGES, *ADMIN_PAGES):
        response = client.get(path)
        assert response.status_code == 302 and response.location.endswith("/login"), path


def test_a_cashier_is_refused_manager_and_admin_pages_and_the_refusal_is_audited(
    client: FlaskClient, committed: Engine
) -> None:
    assert sign_in(client, "cashier").status_code == 302
    assert client.get("/").status_code == 200
    for path in (*MANAGER_PAGES, *ADMIN_PAGES):
        assert client.get(path).status_code == 403, path
    assert post(client, "/admin/staff", name="mallory", role="admin", password="a-long-password").status_code == 403
    with committed.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM staff WHERE name = 'mallory'")).scalar_one() == 0
    refused = [subject for _, action, subject in audit_actions(committed) if action == "refused"]
    assert refused == [*MANAGER_PAGES, *ADMIN_PAGES, "/admin/staff"]


def test_a_manager_reaches_reports_but_not_admin_pages(client: FlaskClient) -> None:
    sign_in(client, "manager")
    for path in MANAGER_PAGES:
        assert client.get(path).status_code == 200, path
    for path in ADMIN_PAGES:
        assert client.get(path).status_code == 403, path


def test_an_admin_reaches_everything(client: FlaskClient) -> None:
    sign_in(client, "admin")
    for path in ("/", "/sell", "/online", "/lockouts", *MANAGER_PAGES, *ADMIN_PAGES):
        assert client.get(path).status_code == 200, path


def test_a_wrong_password_is_refused_and_audited_with_the_address(client: FlaskClient, committed: Engine) -> None:
    response = sign_in(client, "cashier", "not-the-password")
    assert response.status_code == 401
    assert "Wrong name or password." in response.get_data(as_text=True)
    assert client.get("/").status_code == 302
    with committed.connect() as conn:
        row = conn.execute(text("SELECT staff_id, staff_name, action, client FROM audit_trail")).one()
    assert tuple(row) == (None, "cashier", "login.failed", "127.0.0.1")


def test_sign_in_is_throttled_per_name_even_with_the_right_password(client: FlaskClient, clock: Clock) -> None:
    for _ in range(FAILED_LOGINS_PER_NAME):
        assert sign_in(client, "cashier", "guess-guess").status_code == 401
    refused = sign_in(client, "cashier")
    assert refused.status_code == 401 and "Too many failed sign-ins" in refused.get_data(as_text=True)
    clock.advance(16 * 60)  # the window passed
    assert sign_in(client, "cashier").status_code == 302


def test_an_idle_session_is_over(client: FlaskClient, clock: Clock) -> None:
    sign_in(client, "cashier")
    clock.advance(14 * 60)
    assert client.get("/").status_code == 200  # use moves the idle deadline
    clock.advance(14 * 60)
    assert client.get("/").status_code == 200
    clock.advance(15 * 60 + 1)
    assert client.get("/").status_code == 302


def test_sign_out_ends_the_session_on_the_server(client: FlaskClient, committed: Engine) -> None:
    sign_in(client, "cashier")
    cookie = client.get_cookie("hotspot_console")
    assert cookie is not None
    assert post(client, "/logout").status_code == 302
    client.set_cookie("hotspot_console", cookie.value)  # the old cookie, replayed
    assert client.get("/").status_code == 302
    with committed.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM staff_sessions WHERE ended_at IS NULL")).scalar_one() == 0


def test_a_disabled_account_is_signed_out_at_once(client: FlaskClient) -> None:
    sign_in(client, "cashier")
    admin = client.application.test_client()
    sign_in(admin, "admin")
    assert post(admin, "/admin/staff/cashier", role="cashier", active="0").status_code == 302
    assert client.get("/").status_code == 302
    assert sign_in(client, "cashier").status_code == 401


def test_a_form_without_the_csrf_token_is_refused(client: FlaskClient) -> None:
    sign_in(client, "admin")
    response = client.post("/admin/staff", data={"name": "eve", "role": "admin", "password": "a-long-password"})
    assert response.status_code == 400
    assert client.post("/login", data={"name": "admin", "password": "admin-password-12"}).status_code == 400


def test_failures_are_the_desks_short_pages_in_its_language(client: FlaskClient, committed: Engine) -> None:
    response = client.post("/login", data={"name": "admin", "password": "admin-password-12"})
    assert "This page was open too long. Please go back, reload it" in response.get_data(as_text=True)
    sign_in(client, "admin")
    client.get("/language/ru")
    missing = client.get("/no-such-page")
    assert missing.status_code == 404 and "Такой страницы нет." in missing.get_data(as_text=True)


def test_a_database_outage_is_a_short_503_and_one_log_line(database_url: str, key_file, caplog) -> None:  # type: ignore[no-untyped-def]
    broken = database_url.replace("hotspot_test", "no_such_database")
    app = create_app(console_settings(broken, key_file))
    desk = app.test_client()
    form = {"name": "anna", "password": "a-long-password", "csrf_token": csrf_of(desk)}
    with caplog.at_level(logging.ERROR, logger="console.errors"):
        response = desk.post("/login", data=form)
    (line,) = [record for record in caplog.records if record.name == "console.errors"]
    assert line.exc_info is None and "no_such_database" in line.getMessage()
    assert response.status_code == 503 and response.headers["Retry-After"] == "10"
    page = response.get_data(as_text=True)
    assert "The database cannot be reached." in page and "Traceback" not in page and "psycopg2" not in page
    app.extensions["hotspot_console"].close()


def test_pages_carry_the_portals_strict_headers_and_cookie_flags(client: FlaskClient) -> None:
    csrf_of(client)
    response = sign_in(client, "cashier")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    page = client.get("/")
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["Cache-Control"] == "no-store"
    assert "<script>" not in page.get_data(as_text=True)  # no inline script: the CSP would refuse it


def test_the_console_speaks_russian(client: FlaskClient) -> None:
    client.get("/language/ru")
    sign_in(client, "cashier")
    assert "Продать" in client.get("/").get_data(as_text=True)


def test_a_second_factor_is_set_up_with_a_code_then_asked_at_every_sign_in(
    client: FlaskClient, committed: Engine, clock: Clock
) -> None:
    sign_in(client, "manager")
    page = client.get("/account").get_data(as_text=True)
    secret = re.search(r'data-field="totp-secret">([A-Z2-7]+)<', page).group(1)  # type: ignore[union-attr]
    step = int(clock().timestamp()) // 30
    wrong = "000000" if code_at(secret, step) != "000000" else "111111"
    assert post(client, "/account", code=wrong).status_code == 400
    assert post(client, "/account", code=code_at(secret, step)).status_code == 302
    assert "every sign-in asks for the code" in client.get("/account").get_data(as_text=True)
    with committed.connect() as conn:
        stored = conn.execute(text("SELECT totp_secret FROM staff WHERE name = 'manager'")).scalar_one()
    assert secret.encode() not in bytes(stored)  # sealed under the key file, not in the clear

    other = client.application.test_client()
    assert sign_in(other, "manager").status_code == 401  # the password alone no longer does
    clock.advance(30)
    code = code_at(secret, step + 1)
    assert sign_in(other, "manager", code=code).status_code == 302
    assert sign_in(client.application.test_client(), "manager", code=code).status_code == 401  # used once
    assert "Wrong code" in sign_in(client.application.test_client(), "manager", code="12345").get_data(as_text=True)

    admin = client.application.test_client()
    sign_in(admin, "admin")
    post(admin, "/admin/staff/manager", role="manager", active="1", clear_totp="1")
    assert sign_in(client.application.test_client(), "manager").status_code == 302
    actions = [a for _, a, _ in audit_actions(committed)]
    assert "staff.totp_on" in actions and actions.count("login.failed") == 3


def test_settings_refuse_what_cannot_work(database_url: str, key_file) -> None:  # type: ignore[no-untyped-def]
    for bad, message in (
        ({"secret_key": "short"}, "at least 32 characters"),
        ({"idle_timeout_s": 10}, "idle_timeout_s"),
        ({"timezone": "Mars/Olympus"}, "not a time zone"),
        ({"colour": "blue"}, "unknown console setting"),
    ):
        with pytest.raises(SettingsError, match=message):
            ConsoleSettings.from_mapping({**console_settings(database_url, key_file), **bad})

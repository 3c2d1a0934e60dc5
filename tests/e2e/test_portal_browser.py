"""The captive portal in real headless Chromium as a phone (tests/e2e/browser.py), as a guest would use it:
every page it shows is checked to fit the phone's screen, in English and in Russian.

The app runs in a werkzeug server thread on 127.0.0.1 against the private test PostgreSQL, with a 2 s
heartbeat, a 10 s heartbeat timeout (the schema's minimum) and a time tariff of 0.10 per second, so
the balance visibly falls between two heartbeats. Screenshots of the login and status pages are saved
in $PORTAL_SCREENSHOTS (default: the test's temporary directory).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from rlm_hotspot.core.heartbeat import CLOSED_PAGE_SLACK_S
from rlm_hotspot.db.ledger import post_entry
from rlm_hotspot.pins import PinVault
from rlm_hotspot.services.access import Policy
from rlm_hotspot.worker.cycle import Worker
from tests.e2e.browser import assert_fits_the_phone, chromium, needs_chromium, portal_server, wait_for
from tests.portal.conftest import World, make_world, portal_settings

pytestmark = needs_chromium
HEARTBEAT_TIMEOUT_S = 10
WRITE_DELAY_S = 0.5  # the portal's default heartbeat_write_delay_ms


@pytest.fixture
def shop(committed: Engine, vault: PinVault) -> World:
    """5.00 cards; 6.00 per minute = 0.10 per second; heartbeats required, 10 s timeout."""
    return make_world(committed, vault, count=8, per_minute=600, face_value=500, heartbeat_timeout=HEARTBEAT_TIMEOUT_S)


@pytest.fixture
def portal_url(database_url: str, key_file: Path, shop: World) -> Iterator[str]:
    with portal_server(
        lambda url: portal_settings(database_url, key_file, heartbeat_interval_s=2, portal_url=url)
    ) as url:
        yield url


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    driver = chromium(tmp_path)
    yield driver
    driver.quit()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("PORTAL_SCREENSHOTS") or tmp_path / "screens")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def log_in(driver: WebDriver, url: str, number: str, pin: str) -> None:
    driver.get(url)
    card = driver.find_element(By.ID, "card")
    card.clear()
    card.send_keys(f"{number[:4]} {number[4:8]} {number[8:]}")  # typed with spaces, as printed
    driver.find_element(By.ID, "pin").send_keys(pin)
    driver.find_element(By.CSS_SELECTOR, "form.card-form button[type=submit]").click()


def balance_text(driver: WebDriver) -> str:
    return driver.find_element(By.CSS_SELECTOR, "[data-field=balance]").text


def balance_in_db(engine: Engine, number: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT a.balance FROM cards c JOIN accounts a ON a.id = c.account_id WHERE c.number = :n"),
                {"n": number},
            ).scalar_one()
        )


def test_log_in_watch_the_balance_fall_top_up_and_log_out(
    browser: WebDriver, portal_url: str, shop: World, screenshots: Path
) -> None:
    numbers, pins = shop.cards.numbers, shop.cards.pins
    browser.get(portal_url)
    assert browser.find_element(By.TAG_NAME, "h1").text == "Connect to the Internet"
    assert_fits_the_phone(browser)
    browser.save_screenshot(str(screenshots / "login-en.png"))
    log_in(browser, portal_url + "?url=http://example.com/", numbers[0], pins[0])
    wait_for(browser, lambda d: d.current_url.endswith("/status"))
    first = balance_text(browser)
    wait_for(browser, lambda d: balance_text(d) != first)  # the heartbeat (every 2 s) billed time
    assert browser.find_element(By.PARTIAL_LINK_TEXT, "example.com").get_attribute("rel") == "noopener noreferrer"
    assert_fits_the_phone(browser)
    browser.save_screenshot(str(screenshots / "status-en.png"))

    browser.find_element(By.LINK_TEXT, "Add another card").click()  # the top-up has a page of its own
    wait_for(browser, lambda d: d.current_url.endswith("/topup"))
    assert_fits_the_phone(browser)
    browser.find_element(By.ID, "topup-card").send_keys(numbers[1])
    browser.find_element(By.ID, "topup-pin").send_keys(pins[1])
    browser.find_element(By.CSS_SELECTOR, "form[action='/topup'] button[type=submit]").click()
    added = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".alert.success"))
    assert "Added €5.00" in added[0].text  # type: ignore[index]
    assert browser.find_element(By.TAG_NAME, "h1").text == "You are online"

    browser.find_element(By.CSS_SELECTOR, "form[action='/logout'] button").click()
    wait_for(browser, lambda d: "You have logged out" in d.page_source)
    assert browser.find_element(By.TAG_NAME, "h1").text == "Connect to the Internet"


def test_typos_wrong_pins_and_lockout(browser: WebDriver, portal_url: str, shop: World, committed: Engine) -> None:
    number, pin = shop.cards.numbers[2], shop.cards.pins[2]
    browser.get(portal_url)
    card = browser.find_element(By.ID, "card")
    card.send_keys(number[:-1] + str((int(number[-1]) + 1) % 10))
    browser.find_element(By.ID, "pin").click()  # leaving the field checks the digit at once, in the page
    problem = browser.find_element(By.ID, "card-problem")
    wait_for(browser, lambda d: problem.is_displayed())
    assert "typo" in problem.text and card.get_attribute("aria-invalid") == "true"
    for _ in range(5):
        log_in(browser, portal_url, number, "WRONGPIN")
        error = wait_for(browser, lambda d: d.find_elements(By.ID, "login-error"))
        assert "Wrong PIN" in error[0].text  # type: ignore[index]
    log_in(browser, portal_url, number, pin)
    error = wait_for(browser, lambda d: d.find_elements(By.ID, "login-error"))
    assert "Too many wrong PINs" in error[0].text  # type: ignore[index]
    assert_fits_the_phone(browser)
    with committed.connect() as conn:
        outcomes = conn.execute(text("SELECT outcome, count(*) FROM login_attempts GROUP BY outcome")).all()
    assert dict(outcomes) == {"wrong_pin": 5, "locked_out": 1}  # the typo never reached the database


def test_russian_guest(tmp_path: Path, portal_url: str, shop: World, screenshots: Path) -> None:
    driver = chromium(tmp_path, language="ru")
    try:
        driver.get(portal_url)
        assert driver.find_element(By.TAG_NAME, "h1").text == "Подключение к Интернету"
        assert_fits_the_phone(driver)
        driver.save_screenshot(str(screenshots / "login-ru.png"))
        log_in(driver, portal_url, shop.cards.numbers[3], "WRONGPIN")
        error = wait_for(driver, lambda d: d.find_elements(By.ID, "login-error"))
        assert error[0].text.startswith("Неверный PIN-код")  # type: ignore[index]
        log_in(driver, portal_url, shop.cards.numbers[3], shop.cards.pins[3])
        wait_for(driver, lambda d: d.current_url.endswith("/status"))
        assert driver.find_element(By.TAG_NAME, "h1").text == "Вы в сети"
        assert "€" in balance_text(driver) and "," in balance_text(driver)
        assert_fits_the_phone(driver)
        driver.save_screenshot(str(screenshots / "status-ru.png"))
        driver.find_element(By.LINK_TEXT, "English").click()
        wait_for(driver, lambda d: d.find_element(By.TAG_NAME, "h1").text == "You are online")
    finally:
        driver.quit()


ENDED_PAGE = {  # language: (how the guest's card ended, the page's title, what it says)
    "en": ("Card-Blocked", "Session ended", "this card has been blocked. Please ask at the desk."),
    "ru": ("Balance-Exhausted", "Сеанс завершён", "деньги на карте закончились"),
}


@pytest.mark.parametrize("language", ["en", "ru"])
def test_the_ended_page_says_why_and_shows_no_debt(
    tmp_path: Path, portal_url: str, shop: World, committed: Engine, screenshots: Path, language: str
) -> None:
    """The session ends elsewhere (the desk blocks the card; the worker finds it overshot zero): the open
    status page learns it from its next heartbeat and shows why, with an empty card as zero, on the phone."""
    cause, title, told = ENDED_PAGE[language]
    driver = chromium(tmp_path, language=language)
    try:
        number = shop.cards.numbers[0 if language == "en" else 1]
        log_in(driver, portal_url, number, shop.cards.pins[0 if language == "en" else 1])
        wait_for(driver, lambda d: d.current_url.endswith("/status"))
        with Session(committed) as db, db.begin():
            account_id = db.execute(text("SELECT account_id FROM cards WHERE number = :n"), {"n": number}).scalar_one()
            post_entry(
                db, account_id=account_id, amount=-502, cause="time", key=f"overshoot-{language}", now=datetime.now(UTC)
            )
            db.execute(
                text("UPDATE sessions SET status = 'closed', stopped_at = now(), terminate_cause = :cause"),
                {"cause": cause},
            )
        wait_for(driver, lambda d: d.find_element(By.TAG_NAME, "h1").text == title)
        assert told in driver.find_element(By.ID, "ended").text
        assert balance_in_db(committed, number) < 0
        assert balance_text(driver).replace("\u00a0", " ") in ("€0.00", "0,00 €")  # never a debt
        assert_fits_the_phone(driver)
        driver.save_screenshot(str(screenshots / f"ended-{language}.png"))
    finally:
        driver.quit()


def worker_at(engine: Engine, at: float | None = None) -> tuple[Worker, list[str]]:
    """`hotspotctl worker` on the test database (its clock `at` seconds from now, else the real one),
    and the client addresses whose gate it closes."""

    @contextmanager
    def transaction() -> Iterator[Session]:
        with Session(engine) as session, session.begin():
            yield session

    closed_gates: list[str] = []
    clock = (lambda: datetime.now(UTC) + timedelta(seconds=at)) if at is not None else (lambda: datetime.now(UTC))
    worker = Worker(transaction, Policy(), lambda ip, mac: closed_gates.append(ip), clock=clock)
    return worker, closed_gates


def session_in_db(engine: Engine) -> tuple[str, str | None, str | None, int]:
    with engine.connect() as conn:
        row = conn.execute(text("SELECT status, terminate_cause, page_state, seconds FROM sessions")).one()
    return row.status, row.terminate_cause, row.page_state, row.seconds


def test_closing_the_tab_ends_the_session_within_seconds_billed_to_the_cut(
    browser: WebDriver, portal_url: str, shop: World, committed: Engine
) -> None:
    number = shop.cards.numbers[4]
    browser.switch_to.new_window("tab")
    guest_tab = browser.current_window_handle
    log_in(browser, portal_url, number, shop.cards.pins[4])
    wait_for(browser, lambda d: d.current_url.endswith("/status"))
    first = balance_text(browser)
    wait_for(browser, lambda d: balance_text(d) != first)
    browser.close()  # the guest closes the tab (the other tab keeps the browser alive): pagehide, a beacon
    browser.switch_to.window(next(h for h in browser.window_handles if h != guest_tab))
    deadline = time.monotonic() + 5
    while session_in_db(committed)[2] != "closed" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert session_in_db(committed)[:3] == ("open", None, "closed")  # the page said it was closed

    worker, closed_gates = worker_at(committed)
    worker.run_cycle()
    assert session_in_db(committed)[0] == "open" and closed_gates == []  # a reload could still speak
    worker, closed_gates = worker_at(committed, at=CLOSED_PAGE_SLACK_S + 1)  # the next cycles
    worker.run_cycle()
    status, cause, _, seconds = session_in_db(committed)
    assert (status, cause, closed_gates) == ("closed", "Page-Closed", ["127.0.0.1"])
    with committed.connect() as conn:
        opened = conn.execute(text("SELECT stopped_at - started_at FROM sessions")).scalar_one()
    assert seconds == int(opened.total_seconds())  # billed to the cut: the gate was open until then
    assert balance_in_db(committed, number) == 500 - 10 * seconds


def test_a_page_in_the_background_keeps_its_session_for_the_hidden_grace(
    browser: WebDriver, portal_url: str, shop: World, committed: Engine, screenshots: Path
) -> None:
    with committed.begin() as conn:
        conn.execute(text("UPDATE hotspots SET hidden_grace = 15"))  # the card buys 50 s
    number = shop.cards.numbers[6]
    log_in(browser, portal_url, number, shop.cards.pins[6])
    wait_for(browser, lambda d: d.current_url.endswith("/status"))
    note = browser.find_element(By.ID, "what-keeps-you-online").text
    assert "in the background this page keeps your session for at least 15 s" in note
    browser.save_screenshot(str(screenshots / "status-lifecycle-en.png"))
    first = balance_text(browser)
    wait_for(browser, lambda d: balance_text(d) != first)

    browser.execute_cdp_cmd("Page.setWebLifecycleState", {"state": "frozen"})  # what a phone does to it
    wait_for(browser, lambda d: session_in_db(committed)[2] == "hidden")
    time.sleep(HEARTBEAT_TIMEOUT_S + 1)  # its heartbeats stopped: past the 10 s timeout, within the grace
    worker, closed_gates = worker_at(committed)
    worker.run_cycle()
    assert session_in_db(committed)[:2] == ("open", None) and closed_gates == []
    browser.execute_cdp_cmd("Page.setWebLifecycleState", {"state": "active"})
    browser.minimize_window()
    browser.maximize_window()  # the guest comes back to it: visible again
    wait_for(browser, lambda d: session_in_db(committed)[2] is None)
    back = balance_text(browser)
    wait_for(browser, lambda d: balance_text(d) != back)  # beating again
    assert browser.find_element(By.TAG_NAME, "h1").text == "You are online"

    browser.execute_cdp_cmd("Page.setWebLifecycleState", {"state": "frozen"})
    wait_for(browser, lambda d: session_in_db(committed)[2] == "hidden")
    worker, closed_gates = worker_at(committed, at=15 + 1)  # the grace has run out
    worker.run_cycle()
    status, cause, _, seconds = session_in_db(committed)
    assert (status, cause, closed_gates) == ("closed", "Page-Hidden", ["127.0.0.1"])
    assert balance_in_db(committed, number) == 500 - 10 * seconds  # the grace was billed: the gate was open
    browser.execute_cdp_cmd("Page.setWebLifecycleState", {"state": "active"})
    browser.minimize_window()
    browser.maximize_window()
    wait_for(browser, lambda d: d.find_element(By.TAG_NAME, "h1").text == "Session ended")
    assert "stayed in the background for more than 15 s" in browser.find_element(By.ID, "ended").text
    assert_fits_the_phone(browser)


def test_the_same_phone_in_its_real_browser_takes_the_session_over_with_the_pin(
    browser: WebDriver, tmp_path: Path, portal_url: str, shop: World, committed: Engine
) -> None:
    number, pin = shop.cards.numbers[7], shop.cards.pins[7]
    log_in(browser, portal_url, number, pin)  # the captive-portal window
    wait_for(browser, lambda d: d.current_url.endswith("/status"))
    status_url = browser.find_element(By.CSS_SELECTOR, "#what-keeps-you-online a").get_attribute("href")
    real = chromium(tmp_path, language="ru")  # the phone's own browser: no cookie of the portal
    try:
        real.get(status_url)
        wait_for(real, lambda d: d.find_elements(By.ID, "card"))  # sent to the login page
        log_in(real, portal_url, number, "WRONGPIN")
        error = wait_for(real, lambda d: d.find_elements(By.ID, "login-error"))
        assert error[0].text.startswith("Неверный PIN-код")  # type: ignore[index]
        log_in(real, portal_url, number, pin)
        wait_for(real, lambda d: d.current_url.endswith("/status"))
        assert real.find_element(By.TAG_NAME, "h1").text == "Вы в сети"
        assert_fits_the_phone(real)
        first = balance_text(real)
        wait_for(real, lambda d: balance_text(d) != first)
    finally:
        real.quit()
    with committed.connect() as conn:
        assert conn.execute(text("SELECT count(*), min(status) FROM sessions")).one() == (1, "open")


def test_without_javascript_the_page_refreshes_itself(
    tmp_path: Path, portal_url: str, shop: World, committed: Engine, screenshots: Path
) -> None:
    driver = chromium(tmp_path, javascript=False)
    try:
        number, pin = shop.cards.numbers[5], shop.cards.pins[5]
        log_in(driver, portal_url, number[:-1] + str((int(number[-1]) + 1) % 10), pin)
        error = wait_for(driver, lambda d: d.find_elements(By.ID, "login-error"))
        assert "typo" in error[0].text  # type: ignore[index]  # the server's check digit, no JS
        log_in(driver, portal_url, number, pin)
        wait_for(driver, lambda d: d.current_url.endswith("/status"))
        first = balance_text(driver)
        wait_for(driver, lambda d: balance_text(d) != first)  # meta-refresh every 2 s is the heartbeat
        assert_fits_the_phone(driver)
        driver.save_screenshot(str(screenshots / "status-nojs.png"))
        driver.find_element(By.CSS_SELECTOR, "form[action='/logout'] button").click()
        wait_for(driver, lambda d: "You have logged out" in d.page_source)
    finally:
        driver.quit()
    with committed.connect() as conn:
        assert conn.execute(text("SELECT terminate_cause FROM sessions")).scalar_one() == "User-Request"


def test_the_language_switch_does_not_lead_to_another_site(browser: WebDriver, portal_url: str, shop: World) -> None:
    browser.get(portal_url + "lang/ru?next=/%09/evil.example/phish")  # Chromium drops the tab: //evil.example
    assert browser.current_url == portal_url
    assert browser.find_element(By.TAG_NAME, "h1").text == "Подключение к Интернету"

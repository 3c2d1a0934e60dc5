"""A receptionist's day in real headless Chromium: sign in, sell five cards on a receipt, help a guest
whose card "doesn't work" (locked out after wrong PINs), end a session, read today's sales — and be
refused an admin page; every action leaves its audit row. The printing path (a receipt as Chromium prints
it, the A4 sheet as a download), an admin's export of a whole batch and the second factor. Then
`hotspotctl console run` under gunicorn.

The console runs in a werkzeug server thread on 127.0.0.1 against the private test PostgreSQL.
Screenshots go to $CONSOLE_SCREENSHOTS (default: the test's temporary directory).
"""

from __future__ import annotations

import base64
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.expected_conditions import staleness_of
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session
from werkzeug.serving import make_server

from console import create_app
from rlm_hotspot.core.cardcode import display_card_number
from rlm_hotspot.pins import PinVault
from rlm_hotspot.services.access import Policy
from rlm_hotspot.services.errors import CardRefused
from rlm_hotspot.services.sessions import open_portal_session
from rlm_hotspot.services.tariff_cache import TariffCache
from rlm_hotspot.totp import code_at
from tests.console.conftest import PASSWORDS, SECRET, console_settings, staff_accounts
from tests.e2e.browser import assert_fits_the_tablet, chromium, needs_chromium, wait_for
from tests.portal.conftest import World, make_world


@pytest.fixture
def people(committed: Engine) -> Iterator[dict[str, int]]:
    yield from staff_accounts(committed)


@pytest.fixture
def shop(committed: Engine, vault: PinVault, people: dict[str, int]) -> World:
    return make_world(committed, vault, count=8)


@pytest.fixture
def console_url(database_url: str, key_file: Path, shop: World) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, None, threaded=True)  # type: ignore[arg-type]
    app = create_app(console_settings(database_url, key_file))
    server.app = app
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    app.extensions["hotspot_console"].close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    driver = chromium(tmp_path, phone=False)  # a tablet-sized window at the desk
    yield driver
    driver.quit()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("CONSOLE_SCREENSHOTS") or tmp_path / "screens")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def guest_login(engine: Engine, vault: PinVault, shop: World, number: str, pin: str) -> None:
    with Session(engine) as db, db.begin():
        open_portal_session(
            db, vault, TariffCache(), Policy(), card_text=number, pin=pin, hotspot_id=shop.hotspot_id,
            client_ip="10.0.0.7", client_mac=None, now=datetime.now(UTC),
        )  # fmt: skip


def wrong_pins(engine: Engine, vault: PinVault, shop: World, number: str) -> None:
    """A guest types wrong PINs on the portal until the card is locked out."""
    for _ in range(Policy().lockout_attempts):
        with Session(engine) as db, db.begin(), pytest.raises(CardRefused):
            open_portal_session(
                db, vault, TariffCache(), Policy(), card_text=number, pin="WRONGPIN", hotspot_id=shop.hotspot_id,
                client_ip="10.0.0.8", client_mac=None, now=datetime.now(UTC),
            )  # fmt: skip


def find_card(driver: WebDriver, url: str, typed: str) -> None:
    """Look the card up and wait for the answer's page: the next lookup must not find the form's page."""
    driver.get(f"{url}/card")
    field = driver.find_element(By.ID, "number")
    field.clear()
    field.send_keys(typed)
    form_page = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    wait_for(driver, staleness_of(form_page))


def text_of(driver: WebDriver, selector: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, selector).text


@needs_chromium
def test_a_receptionists_day(
    console_url: str, browser: WebDriver, committed: Engine, vault: PinVault, shop: World, screenshots: Path
) -> None:
    url, driver = console_url, browser
    driver.get(f"{url}/")
    driver.find_element(By.ID, "name").send_keys("cashier")
    driver.find_element(By.ID, "password").send_keys(PASSWORDS["cashier"])
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait_for(driver, lambda d: "cashier" in d.find_element(By.CSS_SELECTOR, "[data-field=staff]").text)

    # an admin page is not for a cashier
    driver.get(f"{url}/admin/staff")
    assert "Your role does not open this page" in driver.page_source

    # sell five cards on an 80 mm receipt: the PINs are on the printout
    driver.get(f"{url}/sell")
    count = driver.find_element(By.CSS_SELECTOR, "#batches input[name=count]")  # the shop's one batch
    count.clear()
    count.send_keys("5")
    driver.find_element(By.CSS_SELECTOR, "input[name=format][value=receipt-80]").click()
    driver.find_element(By.ID, "sell").click()
    wait_for(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "[data-field=pin]")) == 5)
    driver.save_screenshot(str(screenshots / "console-receipt.png"))
    numbers = [e.text.replace(" ", "") for e in driver.find_elements(By.CSS_SELECTOR, "[data-field=number]")]
    pins = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "[data-field=pin]")]
    by_number = dict(zip(shop.cards.numbers, shop.cards.pins, strict=True))
    assert [by_number[n] for n in numbers] == pins

    # two guests: one surfs, the other's card "doesn't work" (too many wrong PINs)
    surfing, locked = numbers[0], numbers[1]
    guest_login(committed, vault, shop, surfing, by_number[surfing])
    wrong_pins(committed, vault, shop, locked)

    # help: a typo is caught, then the card is found and its lockout lifted
    typo = locked[:-1] + str((int(locked[-1]) + 1) % 10)
    find_card(driver, url, display_card_number(typo))
    wait_for(driver, lambda d: "typo" in text_of(d, ".alert.error"))  # the answer to the form, not the form
    find_card(driver, url, display_card_number(locked))
    wait_for(driver, lambda d: "locked out" in text_of(d, "[data-field=lockout]"))
    assert "(Europe/Moscow)" in text_of(driver, "[data-field=sold]")
    driver.save_screenshot(str(screenshots / "console-card.png"))
    driver.find_element(By.ID, "clear-lockout").click()
    wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".alert.success"))
    assert not driver.find_elements(By.CSS_SELECTOR, "[data-field=lockout]")
    guest_login(committed, vault, shop, locked, by_number[locked])  # the guest gets in now

    # end the first guest's session: queued for the worker
    find_card(driver, url, surfing)
    driver.find_element(By.CSS_SELECTOR, "#sessions button.danger").click()
    wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-field=ending]"))
    with committed.connect() as conn:
        ended = conn.execute(
            text("SELECT d.reason FROM disconnects d JOIN sessions s ON s.id = d.session_id "
                 "JOIN cards c ON c.id = s.card_id WHERE c.number = :n"), {"n": surfing}
        ).scalar_one()  # fmt: skip
    assert ended == "logout"

    # today's sales on the overview, with who is online
    driver.get(f"{url}/")
    assert text_of(driver, "[data-field=cards-today]") == "5"
    assert text_of(driver, "[data-field=takings-today]") == "€25.00"
    assert "cashier" in text_of(driver, "#sales-today")
    assert locked in text_of(driver, "#online")
    driver.save_screenshot(str(screenshots / "console-overview.png"))

    with committed.connect() as conn:
        trail = [
            tuple(r) for r in conn.execute(text("SELECT staff_name, action, subject FROM audit_trail ORDER BY id"))
        ]
    assert [action for _, action, _ in trail] == [
        "login", "refused", "card.sell",
        "card.view", "lockout.clear", "card.view",  # found, lockout lifted, the page again
        "card.view", "session.end", "card.view",
    ]  # fmt: skip
    assert all(name == "cashier" for name, _, _ in trail)


def sign_in_as(driver: WebDriver, url: str, name: str, password: str) -> None:
    driver.delete_all_cookies()
    driver.get(f"{url}/login")
    driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-field=staff]"))


@needs_chromium
def test_online_now_refreshes_itself_under_the_strict_csp(
    console_url: str, browser: WebDriver, committed: Engine, vault: PinVault, shop: World
) -> None:
    sign_in_as(browser, console_url, "cashier", PASSWORDS["cashier"])
    browser.get(f"{console_url}/online")
    assert "Nobody is online." in text_of(browser, "#online")
    guest_login(committed, vault, shop, shop.cards.numbers[0], shop.cards.pins[0])
    wait_for(browser, lambda d: shop.cards.numbers[0] in text_of(d, "#online"), seconds=15)  # no reload


@needs_chromium
def test_an_admin_adds_a_cashier_and_a_manager_corrects_a_balance_and_reads_the_trail(
    console_url: str, browser: WebDriver, committed: Engine, vault: PinVault, shop: World, screenshots: Path
) -> None:
    url, driver = console_url, browser
    sign_in_as(driver, url, "admin", PASSWORDS["admin"])
    driver.get(f"{url}/admin/staff")
    driver.find_element(By.ID, "new-name").send_keys("vera")
    driver.find_element(By.ID, "new-password").send_keys("vera-password-1")
    driver.find_element(By.CSS_SELECTOR, "form[action$='/admin/staff'] button[type=submit]").click()
    wait_for(driver, lambda d: "Account vera created." in text_of(d, ".alert.success"))
    sign_in_as(driver, url, "vera", "vera-password-1")
    assert "vera (cashier)" in text_of(driver, "[data-field=staff]")

    number = shop.cards.numbers[0]
    guest_login(committed, vault, shop, number, shop.cards.pins[0])
    sign_in_as(driver, url, "manager", PASSWORDS["manager"])
    find_card(driver, url, number)
    driver.find_element(By.ID, "amount").send_keys("-1.25")
    driver.find_element(By.ID, "reason").send_keys("charged twice for the same hour")
    driver.find_element(By.CSS_SELECTOR, "form[action$='/adjust'] button[type=submit]").click()
    wait_for(driver, lambda d: "€3.75" in text_of(d, "[data-field=balance]"))
    driver.get(f"{url}/audit")
    trail = text_of(driver, "#audit")
    assert "balance.adjust" in trail and "staff.add" in trail and "charged twice" in trail
    driver.save_screenshot(str(screenshots / "console-audit.png"))


# The desk's key pages and, on each, the actions that must be on screen without scrolling sideways.
TABLET_PAGES = {
    "/": [".main-nav a", "[data-field=staff]", "button.link"],
    "/sell": ["#sell", "input[name=format]", "input[name=count]"],
    "/card?number={number}": ["#block", "#sessions button", "#topup button", "#reprint", "#refund button"],
    "/online": ["#online"],
    "/lockouts": ["main h1"],
    "/hours": ["main svg"],
    "/reports/sales": ["button[value=csv]"],
    "/audit": ["#audit"],
    "/admin/staff": ["form[action$='/admin/staff'] button[type=submit]"],
    "/admin/setup": ["#generate button", "#add-tariff button", "#change-hotspot button", "#add-nas button"],
    "/admin/batch/{batch}/export": ["#export button"],
}
# what the first screen shows, without scrolling down: where the work starts
FIRST_SCREEN = {
    "/": ".main-nav a:last-child",
    "/sell": "#sell-form input[name=count]",
    "/card?number={number}": "#block",
}


@needs_chromium
def test_the_key_pages_fit_the_desks_tablet_with_their_actions_in_reach(
    console_url: str, browser: WebDriver, committed: Engine, vault: PinVault, shop: World, screenshots: Path
) -> None:
    number = shop.cards.numbers[0]
    guest_login(committed, vault, shop, number, shop.cards.pins[0])  # a live session: its End button shows
    sign_in_as(browser, console_url, "admin", PASSWORDS["admin"])  # every page and every action
    for path, actions in TABLET_PAGES.items():
        browser.get(console_url + path.format(number=number, batch=shop.cards.batch_id))
        wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "main h1"))
        page = path.split("?")[0].replace("/{batch}", "").replace("/", "-")
        browser.save_screenshot(str(screenshots / f"console-tablet{page}.png"))
        assert_fits_the_tablet(browser)
        for selector in actions:
            shown = [e for e in browser.find_elements(By.CSS_SELECTOR, selector) if e.is_displayed()]
            assert shown, f"{path}: nothing shown for {selector}"
        if path in FIRST_SCREEN:
            bottom, screen = browser.execute_script(
                "return [document.querySelector(arguments[0]).getBoundingClientRect().bottom, window.innerHeight]",
                FIRST_SCREEN[path],
            )
            assert bottom <= screen, f"{path}: {FIRST_SCREEN[path]} below the first screen ({bottom} > {screen} px)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_console_run_serves_under_gunicorn_on_loopback(
    database_url: str,
    key_file: Path,
    people: dict[str, int],
    tmp_path: Path,
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "HOTSPOT_CONFIG": os.devnull,
        "HOTSPOT_DATABASE_URL": database_url,
        "HOTSPOT_PIN_KEY_FILE": str(key_file),
        "HOTSPOT_CONSOLE_SECRET_KEY": SECRET,
    }
    hotspotctl = str(Path(sys.executable).with_name("hotspotctl"))
    server = subprocess.Popen(
        [hotspotctl, "console", "run", "--bind", f"127.0.0.1:{port}", "--workers", "1", "--plain-http"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, server.stderr.read().decode() if server.stderr else "exited"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the console did not start listening"
                time.sleep(0.2)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/")
        home = connection.getresponse()
        home.read()
        assert home.status == 302 and home.getheader("Location", "").endswith("/login")
        connection.request("GET", "/login")
        login = connection.getresponse()
        assert login.status == 200 and b'name="csrf_token"' in login.read()
        assert "default-src 'none'" in login.getheader("Content-Security-Policy", "")
    finally:
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=30)
    assert server.returncode == 0, err.decode()
    assert f"console on http://127.0.0.1:{port}/" in out.decode()


def sell_in_browser(driver: WebDriver, url: str, count: int, print_format: str) -> None:
    driver.get(f"{url}/sell")
    field = driver.find_element(By.CSS_SELECTOR, "#batches input[name=count]")  # the shop's one batch
    field.clear()
    field.send_keys(str(count))
    driver.find_element(By.CSS_SELECTOR, f"input[name=format][value={print_format}]").click()
    driver.find_element(By.ID, "sell").click()


def pdf_facts(pdf: Path) -> tuple[str, str]:
    """(the text, pdfinfo's report) of a PDF, through poppler as a person's viewer would read it."""
    words = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True)
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True)
    return words.stdout, info.stdout


@needs_chromium
def test_a_58_mm_receipt_prints_one_slip_per_card_and_the_a4_sheet_downloads_as_a_pdf(
    console_url: str, browser: WebDriver, shop: World, tmp_path: Path, screenshots: Path
) -> None:
    url, driver = console_url, browser
    by_number = dict(zip(shop.cards.numbers, shop.cards.pins, strict=True))
    sign_in_as(driver, url, "cashier", PASSWORDS["cashier"])

    # the receipt: its Print button (bound by console.js under the strict CSP) calls the browser's print
    sell_in_browser(driver, url, 2, "receipt-58")
    wait_for(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "[data-field=pin]")) == 2)
    driver.execute_script("window.printed = 0; window.print = function () { window.printed += 1; };")
    driver.find_element(By.CSS_SELECTOR, "[data-print]").click()
    assert driver.execute_script("return window.printed") == 1
    # and what the printer gets: Chromium's own print of the page, at the receipt's paper size
    printed = driver.execute_cdp_cmd("Page.printToPDF", {"preferCSSPageSize": True, "printBackground": False})
    receipt = tmp_path / "receipt.pdf"
    receipt.write_bytes(base64.b64decode(printed["data"]))
    words, info = pdf_facts(receipt)
    sold = shop.cards.numbers[:2]
    for number in sold:
        assert display_card_number(number) in words and by_number[number] in words
    assert "Print" not in words  # the button is not on the paper
    width_pt = float(info.split("Page size:")[1].split()[0])
    assert abs(width_pt - 58 / 25.4 * 72) < 1.5, info  # 58 mm wide
    assert "Pages:           2" in info  # one slip per card
    driver.save_screenshot(str(screenshots / "console-receipt-58.png"))

    # the A4 scratch-card sheet: a download, the CLI's layout with each card's PIN
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    sell_in_browser(driver, url, 3, "pdf")
    wait_for(driver, lambda d: [p for p in downloads.glob("*.pdf")], seconds=15)
    sheet = next(downloads.glob("*.pdf"))
    words, info = pdf_facts(sheet)
    assert sheet.name == "cards-0001.pdf" and "A4" in info
    for number in shop.cards.numbers[2:5]:
        assert by_number[number] in words


@needs_chromium
def test_an_admin_exports_a_batchs_a4_sheet_with_a_reason_and_sees_it_before_exporting_again(
    console_url: str, browser: WebDriver, committed: Engine, shop: World, tmp_path: Path, screenshots: Path
) -> None:
    url, driver, batch = console_url, browser, shop.cards.batch_id
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    sign_in_as(driver, url, "admin", PASSWORDS["admin"])
    driver.get(f"{url}/admin/setup")
    driver.find_element(By.CSS_SELECTOR, f"#batches a[href$='/admin/batch/{batch}/export']").click()
    wait_for(driver, lambda d: d.find_elements(By.ID, "export"))
    assert text_of(driver, "[data-field=last-export]") == "never"
    driver.find_element(By.CSS_SELECTOR, "#export button[type=submit]").click()  # no reason yet: the browser asks
    assert driver.execute_script("return document.getElementById('export-reason').validity.valueMissing")
    driver.find_element(By.ID, "export-reason").send_keys("sheet for the hotel's front desk")
    driver.find_element(By.CSS_SELECTOR, "#export button[type=submit]").click()
    wait_for(driver, lambda d: list(downloads.glob("*.pdf")), seconds=15)
    sheet = next(downloads.glob("*.pdf"))
    words, info = pdf_facts(sheet)
    assert sheet.name == f"batch{batch}.pdf" and "A4" in info
    assert all(pin in words for pin in shop.cards.pins)

    driver.get(f"{url}/admin/batch/{batch}/export")  # the next export is one more copy: the page says so
    assert "admin" in text_of(driver, "[data-field=last-export]")
    assert "exported before" in text_of(driver, "#exported-before")
    driver.save_screenshot(str(screenshots / "console-export-again.png"))
    with committed.connect() as conn:
        trail = conn.execute(
            text("SELECT staff_name, action, detail FROM audit_trail WHERE action LIKE 'batch.%' ORDER BY id")
        ).all()
    assert [(r.staff_name, r.action, r.detail["reason"]) for r in trail] == [
        ("admin", "batch.export", "sheet for the hotel's front desk")
    ]


@needs_chromium
def test_a_manager_sets_up_a_second_factor_and_signs_in_with_it(
    console_url: str, browser: WebDriver, committed: Engine
) -> None:
    url, driver = console_url, browser
    sign_in_as(driver, url, "manager", PASSWORDS["manager"])
    driver.get(f"{url}/account")
    secret = text_of(driver, "[data-field=totp-secret]")
    step = int(time.time()) // 30
    driver.find_element(By.ID, "code").send_keys(code_at(secret, step))
    driver.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-field=totp]"))

    def sign_in_with(code: str) -> None:
        driver.delete_all_cookies()
        driver.get(f"{url}/login")
        driver.find_element(By.ID, "name").send_keys("manager")
        driver.find_element(By.ID, "password").send_keys(PASSWORDS["manager"])
        driver.find_element(By.ID, "code").send_keys(code)
        driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()

    def refused() -> None:
        """Wait for the refusal page: the click submits asynchronously, the audit row comes with the answer."""
        wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "p.alert.error"))
        assert not driver.find_elements(By.CSS_SELECTOR, "[data-field=staff]")

    sign_in_with("")  # the password alone no longer does
    refused()
    next_code = code_at(secret, step + 1)  # the next step: within the allowed drift, and not used yet
    sign_in_with(next_code)
    wait_for(driver, lambda d: "manager" in text_of(d, "[data-field=staff]"))
    sign_in_with(next_code)  # a code signs in once
    refused()
    with committed.connect() as conn:
        actions = [r.action for r in conn.execute(text("SELECT action FROM audit_trail ORDER BY id"))]
    assert actions == ["login", "staff.totp_on", "login.failed", "login", "login.failed"]

"""Headless Debian Chromium as a phone for the browser tests (Selenium with Debian's chromedriver).

Every guest test runs as a phone: 390x844 CSS pixels at 3x, a touch screen and a phone's user agent
(chromedriver's device emulation), since that is what reaches a captive portal.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait
from werkzeug.serving import make_server

from portal import create_app

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
PHONE = (390, 844)
PHONE_USER_AGENT = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Mobile Safari/537.36"
)
needs_chromium = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="needs Debian's chromium and chromium-driver (make setup installs them)",
)


TABLET = (1024, 768)  # the front desk's console (a window of this size, no phone emulation)


def chromium(tmp_path: Path, *, javascript: bool = True, language: str = "en", phone: bool = True) -> WebDriver:
    """Headless Debian Chromium: a phone (guests), or with `phone` False a desk's tablet-sized window."""
    size = PHONE if phone else TABLET
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--window-size={size[0]},{size[1]}",
        f"--lang={language}",
        f"--user-data-dir={tmp_path / f'chromium-{language}-{javascript}'}",
    ):
        options.add_argument(flag)
    if phone:
        options.add_experimental_option(
            "mobileEmulation",
            {
                # a touch screen only with JavaScript: chromedriver's emulated tap never returns without it
                "deviceMetrics": {"width": PHONE[0], "height": PHONE[1], "pixelRatio": 3.0, "touch": javascript},
                "userAgent": PHONE_USER_AGENT,
            },
        )
    prefs: dict[str, object] = {"intl.accept_languages": language}
    if not javascript:
        prefs["profile.managed_default_content_settings.javascript"] = 2
    options.add_experimental_option("prefs", prefs)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(20)
    return driver


def assert_fits_the_phone(driver: WebDriver) -> None:
    """The page is a phone's: its viewport is the phone's, nothing makes it scroll sideways, and every
    button and field lies within the screen's width."""
    _assert_fits(driver, PHONE, "phone", "button, input, a.button, h1, .alert")


def assert_fits_the_tablet(driver: WebDriver) -> None:
    """The page is the desk tablet's: nothing makes it scroll sideways, and every button, field, link,
    table and chart lies within the screen's width."""
    _assert_fits(driver, TABLET, "tablet", "button, input, select, textarea, a, h1, .alert, table, svg")


def _assert_fits(driver: WebDriver, screen: tuple[int, int], name: str, selectors: str) -> None:
    width = driver.execute_script("return window.innerWidth")
    assert width == screen[0], f"not at {name} size: {width} CSS px wide"
    overflow = driver.execute_script(
        "return [document.documentElement.scrollWidth].concat("
        f"Array.from(document.querySelectorAll('{selectors}'))"
        ".filter(e => e.getClientRects().length > 0 && e.type !== 'hidden')"
        ".map(e => Math.ceil(e.getBoundingClientRect().right)))"
    )
    viewport = driver.execute_script("return document.documentElement.clientWidth")
    assert max(overflow) <= viewport, f"wider than the {name} ({viewport} px): {overflow}"


def wait_for(driver: WebDriver, condition: Callable[[WebDriver], object], seconds: float = 10) -> object:
    """Wait until `condition` holds; an element that a reload replaced while it was read is looked up again
    (chromedriver says so as a stale element, or — when the page went between finding and reading it — as
    "Node with given id does not belong to the document")."""

    def holds(d: WebDriver) -> object:
        try:
            return condition(d)
        except WebDriverException as exc:
            if "does not belong to the document" in str(exc.msg):
                return False
            raise

    return WebDriverWait(
        driver, seconds, poll_frequency=0.2, ignored_exceptions=[StaleElementReferenceException]
    ).until(holds)


@contextmanager
def portal_server(settings: Callable[[str], Mapping[str, object]], host: str = "127.0.0.1") -> Iterator[str]:
    """The portal in a werkzeug server thread on a free port of `host`; `settings` gets its URL."""
    server = make_server(host, 0, None, threaded=True)  # type: ignore[arg-type]
    url = f"http://{host}:{server.server_port}/"
    app = create_app(settings(url))
    server.app = app
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield url
    finally:
        server.shutdown()
        app.extensions["hotspot_portal"].close()

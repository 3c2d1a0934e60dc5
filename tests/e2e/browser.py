"""Headless Debian Chromium at phone size for the browser tests (Selenium with Debian's chromedriver)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait
from werkzeug.serving import make_server

from portal import create_app

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
PHONE = (390, 844)
needs_chromium = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="needs Debian's chromium and chromium-driver (make setup installs them)",
)


def chromium(tmp_path: Path, *, javascript: bool = True, language: str = "en") -> WebDriver:
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
        f"--window-size={PHONE[0]},{PHONE[1]}",
        f"--lang={language}",
        f"--user-data-dir={tmp_path / f'chromium-{language}-{javascript}'}",
    ):
        options.add_argument(flag)
    prefs: dict[str, object] = {"intl.accept_languages": language}
    if not javascript:
        prefs["profile.managed_default_content_settings.javascript"] = 2
    options.add_experimental_option("prefs", prefs)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(20)
    return driver


def wait_for(driver: WebDriver, condition: Callable[[WebDriver], object], seconds: float = 10) -> object:
    """Wait until `condition` holds; an element that a reload replaced while it was read is looked up again."""
    return WebDriverWait(
        driver, seconds, poll_frequency=0.2, ignored_exceptions=[StaleElementReferenceException]
    ).until(condition)


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

"""UAM handoffs against stand-in NAS login endpoints that do the real RADIUS exchange with the real radiusd.

The stand-ins speak the NAS side of each protocol as ../shared/notes/gateway-lab.md describes it:
CoovaChilli's /logon decodes the PAP password (or takes the CHAP response, sending CHAP-Challenge = key)
and redirects back to the portal signed with md, with RADIUS's Reply-Message in `reply=` on a reject —
or, like CoovaChilli 1.9, drops the connection on a reject; MikroTik's /login takes the CHAP-MD5 password
built from chap-id and chap-challenge, and its login page passes a reject's Reply-Message on as `error=`.
A stand-in may send the guest back before its Accounting-Start (`start_delay_s`), and something may
happen between the portal's check and the NAS's Access-Request (`before_radius`).
"""

from __future__ import annotations

import http.client
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from pyrad import packet
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from portal.uam import (
    Handoff,
    LoginOutcome,
    UamError,
    chilli_key,
    handoff,
    login_outcome,
    parse_chilli_redirect,
    parse_mikrotik_login,
)
from rlm_hotspot.pins import PinVault
from rlm_hotspot.services.cards import set_blocked
from rlm_hotspot.services.uam import nas_uam, set_nas_uam
from tests.e2e.browser import assert_fits_the_phone, chromium, needs_chromium, portal_server, wait_for
from tests.e2e.radius_harness import NAS_BY_VENDOR, RadiusServer, build_world
from tests.portal.conftest import portal_settings
from tests.uam_nas import chilli_pap_decode, sign_chilli_url

PORTAL = "http://portal.lan/uam/"
STATUS = "http://portal.lan/status"
UAM_SECRET = "uam-s3cret"
CLIENT_MAC, CLIENT_IP = "02-00-00-77-00-02", "10.1.0.2"


class StandInNas:
    """An HTTP login endpoint on loopback whose requests become Access-Requests to radiusd."""

    def __init__(
        self,
        radius: RadiusServer,
        nas_ip: str,
        routes: dict[str, Callable[[BaseHTTPRequestHandler, dict[str, str]], None]],
        portal: str,
    ) -> None:
        self.radius, self.nas_ip, self.portal = radius, nas_ip, portal
        self.before_radius: Callable[[], None] | None = None  # what happens after the portal's check
        self.start_delay_s = 0.0  # > 0: the guest is sent back first, the Accounting-Start follows
        self.late_starts: list[threading.Thread] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._route(dict(parse_qsl(urlsplit(self.path).query)))

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                self._route(dict(parse_qsl(body)))

            def _route(self, params: dict[str, str]) -> None:
                path = urlsplit(self.path).path
                routes.get(path, routes["*"])(self, params)  # "*": any page the guest opens

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def access_request(self, username: str, **credentials: bytes) -> packet.Packet:
        if self.before_radius is not None:
            self.before_radius()
        client = self.radius.client()
        request = client.CreateAuthPacket(code=packet.AccessRequest, User_Name=username, NAS_IP_Address=self.nas_ip)
        request["Service-Type"] = 1  # Login-User
        request["Framed-IP-Address"] = CLIENT_IP
        request["Calling-Station-Id"] = CLIENT_MAC
        request["NAS-Port-Type"] = 19  # Wireless-802.11
        for name, value in credentials.items():
            request[name.replace("_", "-")] = request.PwCrypt(value.decode()) if name == "User_Password" else value
        return client.SendPacket(request)

    def start_accounting(self, username: str, accept: packet.Packet, acct_session_id: str) -> None:
        """What a NAS does right after an Access-Accept: the Accounting-Start that opens the session."""
        started = self.radius.account(
            "start",
            nas_ip=self.nas_ip,
            User_Name=username,
            Acct_Session_Id=acct_session_id,
            Class=accept["Class"][0],
            Acct_Session_Time=0,
            Framed_IP_Address=CLIENT_IP,
            Calling_Station_Id=CLIENT_MAC,
        )
        assert started is not None, "radiusd did not acknowledge the Accounting-Start"

    def log_in(
        self, handler: BaseHTTPRequestHandler, back: str, username: str, accept: packet.Packet, acct_id: str
    ) -> None:
        """After an Access-Accept: the Accounting-Start, and the guest sent `back` — in this order, or (with
        `start_delay_s`) the other way round, as a NAS whose Start reaches radiusd late."""
        if not self.start_delay_s:
            self.start_accounting(username, accept, acct_id)
            redirect(handler, back)
            return
        redirect(handler, back)
        late = threading.Timer(self.start_delay_s, self.start_accounting, (username, accept, acct_id))
        late.start()
        self.late_starts.append(late)

    def hang_up(self, handler: BaseHTTPRequestHandler) -> None:
        """No HTTP answer at all: the connection is closed (CoovaChilli 1.9 on a reject)."""
        handler.close_connection = True

    def close(self) -> None:
        for late in self.late_starts:
            late.join()
        self.server.shutdown()
        self.server.server_close()


def redirect(handler: BaseHTTPRequestHandler, location: str) -> None:
    handler.send_response(302)
    handler.send_header("Location", location)
    handler.send_header("Content-Length", "0")
    handler.end_headers()


class StandInChilli(StandInNas):
    """CoovaChilli: redirects signed with the uamsecret, /logon with PAP or CHAP; `drops_rejects` = 1.9.

    Any other page (like /prelogin) redirects to the portal with a challenge; one that has expired
    (`expire_challenge`, as after `challengetimeout`) fails the next /logon without asking RADIUS, and is
    replaced."""

    def __init__(self, radius: RadiusServer, *, drops_rejects: bool, portal: str = PORTAL) -> None:
        super().__init__(radius, NAS_BY_VENDOR["chilli"], {"/logon": self.logon, "*": self.captive}, portal)
        self.challenge = os.urandom(16)
        self.challenge_expired = False
        self.drops_rejects = drops_rejects
        self.sessions_started = 0
        self.logons_refused_unasked = 0  # without asking RADIUS

    def expire_challenge(self) -> None:
        self.challenge_expired = True

    def captive(self, handler: BaseHTTPRequestHandler, params: dict[str, str]) -> None:
        if self.challenge_expired:
            self.challenge, self.challenge_expired = os.urandom(16), False
        redirect(handler, self.portal_redirect())

    def portal_redirect(self, result: str = "notyet", **extra: str) -> str:
        query = {
            "res": result,
            "uamip": "127.0.0.1",
            "uamport": str(self.port),
            "challenge": self.challenge.hex(),
            "called": "02-00-00-00-00-01",
            "mac": CLIENT_MAC,
            "ip": CLIENT_IP,
            "nasid": "chilli",
            "sessionid": self.session_id,
            "userurl": "http://example.org/",
            **extra,
        }
        return sign_chilli_url(f"{self.portal}?{urlencode(query)}", UAM_SECRET)

    @property
    def session_id(self) -> str:
        return f"5f3a{self.sessions_started + 1:08d}"

    def refuse(self, handler: BaseHTTPRequestHandler, reply_message: str | None = None) -> None:
        """1.8: back to the portal with res=failed&reason=reject, and RADIUS's Reply-Message in `reply`
        when it asked RADIUS and got one; 1.9 hangs up."""
        if self.drops_rejects:
            self.hang_up(handler)
        else:
            reply = {"reply": reply_message} if reply_message else {}
            redirect(handler, self.portal_redirect("failed", reason="reject", **reply))

    def logon(self, handler: BaseHTTPRequestHandler, params: dict[str, str]) -> None:
        if self.challenge_expired:  # every /logon fails until a redirect carries a new challenge
            self.logons_refused_unasked += 1
            self.refuse(handler)
            return
        key = chilli_key(self.challenge, UAM_SECRET)
        if "response" in params:
            reply = self.access_request(
                params["username"], CHAP_Challenge=key, CHAP_Password=b"\x00" + bytes.fromhex(params["response"])
            )
        else:
            pin = chilli_pap_decode(params["password"], key)
            reply = self.access_request(params["username"], User_Password=pin.encode())
        if reply.code == packet.AccessAccept:
            timeout = str(reply["Session-Timeout"][0])
            back = self.portal_redirect("success", uid=params["username"], timeleft=timeout)
            self.log_in(handler, back, params["username"], reply, self.session_id)
            self.sessions_started += 1
        else:
            self.challenge = os.urandom(16)  # 1.9 keeps a challenge until a reject
            self.refuse(handler, str(reply["Reply-Message"][0]) if "Reply-Message" in reply else None)


def documented_login_html() -> str:
    """The login.html docs/portal-gates.md tells an ISP to install on its MikroTik hotspot."""
    doc = (Path(__file__).parents[2] / "docs" / "portal-gates.md").read_text()
    section = doc.split("## Wiring a MikroTik hotspot", 1)[1]
    return section.split("```html\n", 1)[1].split("```", 1)[0]


class StandInMikrotik(StandInNas):
    """MikroTik hotspot with HTTP CHAP: /login takes username + MD5(chap-id + PIN + chap-challenge).

    Its login page sends the guest to the portal with its variables: the documented login.html when
    given (`login_html`, what RouterOS serves with the $(...) filled in), else a plain redirect."""

    def __init__(self, radius: RadiusServer, portal: str = PORTAL, login_html: str | None = None) -> None:
        routes = {"/login": self.login, "/favicon.ico": self.no_icon, "*": self.captive}
        super().__init__(radius, NAS_BY_VENDOR["mikrotik"], routes, portal)
        self.chap_id, self.challenge = os.urandom(1), os.urandom(16)
        self.login_html = login_html

    def no_icon(self, handler: BaseHTTPRequestHandler, params: dict[str, str]) -> None:
        """What a browser showing its login page also asks for: not a page, so no new challenge."""
        handler.send_response(404)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def captive(self, handler: BaseHTTPRequestHandler, params: dict[str, str]) -> None:
        """Its login page (the one an ISP points at the external portal), with a fresh challenge."""
        self.chap_id, self.challenge = os.urandom(1), os.urandom(16)
        self.show_login_page(handler)

    def show_login_page(self, handler: BaseHTTPRequestHandler, error: str | None = None) -> None:
        variables = self.login_page_variables(error)
        if self.login_html is None:
            redirect(handler, f"{self.portal}?{urlencode(variables)}")
            return
        page = self.login_html.replace("http://portal.example/", self.portal)
        for name, value in {**variables, "error": error or ""}.items():
            page = page.replace(f"$({name})", value)
        assert "$(" not in page, "a variable of the documented login.html that RouterOS would fill in"
        body = page.encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html; charset=utf-8")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    @property
    def login_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/login"

    def login_page_variables(self, error: str | None = None) -> dict[str, str]:
        """What its login page hands to the external portal: $(chap-id) etc. are octal-escaped strings."""
        octal = lambda raw: "".join(f"\\{byte:03o}" for byte in raw)  # noqa: E731
        variables = {
            "link-login-only": self.login_url,
            "link-orig": "http://example.org/",
            "chap-id": octal(self.chap_id),
            "chap-challenge": octal(self.challenge),
            "mac": CLIENT_MAC.replace("-", ":"),
            "ip": CLIENT_IP,
            "identity": "mikrotik",
        }
        return {**variables, "error": error} if error else variables

    def login(self, handler: BaseHTTPRequestHandler, params: dict[str, str]) -> None:
        if "username" not in params:  # a GET of its login URL: its login page
            self.captive(handler, params)
            return
        reply = self.access_request(
            params["username"],
            CHAP_Password=self.chap_id + bytes.fromhex(params["password"]),
            CHAP_Challenge=self.challenge,
        )
        if reply.code == packet.AccessAccept:
            self.log_in(handler, params["dst"], params["username"], reply, "mt-00000001")
        else:  # its login page again, which sends the guest back to the portal with $(error)
            self.show_login_page(handler, str(reply["Reply-Message"][0]))


def browse(step: Handoff) -> str | None:
    """The guest's browser following the handoff: the Location it is sent to, None if the NAS hung up."""
    target = urlsplit(step.url)
    connection = http.client.HTTPConnection(target.hostname or "", target.port, timeout=5)
    try:
        path = f"{target.path}?{target.query}" if target.query else target.path
        if step.method == "POST":
            body = urlencode(dict(step.fields))
            connection.request("POST", path, body, {"Content-Type": "application/x-www-form-urlencoded"})
        else:
            connection.request("GET", path)
        answer = connection.getresponse()
        return answer.getheader("Location")
    except (http.client.RemoteDisconnected, ConnectionError):
        return None
    finally:
        connection.close()


@pytest.fixture
def chilli(radius_server: RadiusServer, request: pytest.FixtureRequest) -> Iterator[StandInChilli]:
    nas = StandInChilli(radius_server, drops_rejects=getattr(request, "param", False))
    yield nas
    nas.close()


@pytest.fixture
def mikrotik(radius_server: RadiusServer) -> Iterator[StandInMikrotik]:
    nas = StandInMikrotik(radius_server)
    yield nas
    nas.close()


def configure_nas(engine: Engine, name: str, **uam: str | None) -> None:
    with Session(engine) as session, session.begin():
        set_nas_uam(session, name, uam_secret=uam.get("uam_secret"), uam_login_url=uam.get("uam_login_url"))


def chilli_login(nas: StandInChilli, engine: Engine, number: str, pin: str, *, chap: bool) -> LoginOutcome | None:
    """The portal's part: find the NAS, check its redirect, hand off, read the result (None: it hung up)."""
    with Session(engine) as session:
        settings = nas_uam(session, "chilli")
    ctx = parse_chilli_redirect(nas.portal_redirect(), settings.uam_secret)
    back = browse(handoff(ctx, number, pin, status_url=STATUS, chap=chap))
    if back is None:
        return None  # CoovaChilli 1.9 hung up: a reject
    return login_outcome(parse_chilli_redirect(back, settings.uam_secret))


@pytest.mark.parametrize("chap", [False, True], ids=["pap", "chap"])
@pytest.mark.parametrize("chilli", [False, True], ids=["chilli-1.8", "chilli-1.9"], indirect=True)
def test_coovachilli_handoff(chilli: StandInChilli, radius_db: Engine, vault: PinVault, chap: bool) -> None:
    batch = build_world(radius_db, vault)
    configure_nas(radius_db, "chilli", uam_secret=UAM_SECRET)
    accepted = chilli_login(chilli, radius_db, batch.numbers[0], batch.pins[0], chap=chap)
    assert accepted == LoginOutcome(True, None)
    refused = chilli_login(chilli, radius_db, batch.numbers[1], "WRONGPIN7", chap=chap)
    assert refused == (None if chilli.drops_rejects else LoginOutcome(False, "Wrong PIN."))


def test_coovachilli_success_carries_the_session_timeout(
    chilli: StandInChilli, radius_db: Engine, vault: PinVault
) -> None:
    batch = build_world(radius_db, vault)
    ctx = parse_chilli_redirect(chilli.portal_redirect(), UAM_SECRET)
    back = browse(handoff(ctx, batch.numbers[0], batch.pins[0], status_url=STATUS))
    assert back is not None
    result = parse_chilli_redirect(back, UAM_SECRET)
    assert (result.result, result.time_left) == ("success", 250 * 60)  # 5.00 at 1.20/hour


def test_a_forged_coovachilli_redirect_is_refused(chilli: StandInChilli) -> None:
    genuine = chilli.portal_redirect()
    with pytest.raises(UamError):
        parse_chilli_redirect(genuine.replace("uamip=127.0.0.1", "uamip=127.0.0.2"), UAM_SECRET)
    with pytest.raises(UamError):
        parse_chilli_redirect(genuine.rpartition("&md=")[0], UAM_SECRET)


def test_mikrotik_handoff(mikrotik: StandInMikrotik, radius_db: Engine, vault: PinVault) -> None:
    batch = build_world(radius_db, vault)
    configure_nas(radius_db, "mikrotik", uam_login_url=mikrotik.login_url)
    with Session(radius_db) as session:
        login_url = nas_uam(session, "mikrotik").uam_login_url or ""
    ctx = parse_mikrotik_login(mikrotik.login_page_variables(), login_url)
    assert browse(handoff(ctx, batch.numbers[0], batch.pins[0], status_url=STATUS)) == STATUS

    back = browse(handoff(ctx, batch.numbers[1], "WRONGPIN7", status_url=STATUS))
    assert back is not None and back.startswith(PORTAL)
    refused = login_outcome(parse_mikrotik_login(dict(parse_qsl(urlsplit(back).query)), login_url))
    assert refused == LoginOutcome(False, "Wrong PIN.")
    with pytest.raises(UamError):  # a login link that is not this NAS's
        parse_mikrotik_login(
            {**mikrotik.login_page_variables(), "link-login-only": "http://127.0.0.2/login"}, login_url
        )


# -- in a real browser: the portal and the NAS on two origins ------------------------------------------

RADIUS_HOTSPOT = {"mode": "radius", "traffic_meter": "radius"}
EXPIRED_NOTICE = {"en": "did not complete your login", "ru": "не завершила вход"}
ONLINE = {"en": "You are online", "ru": "Вы в сети"}


@pytest.fixture
def guest_browser(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[WebDriver]:
    """A phone's browser in the language the test is parametrized with (`language`, else English)."""
    driver = chromium(tmp_path, language=request.node.callspec.params.get("language", "en"))
    yield driver
    driver.quit()


@contextmanager
def radius_portal(database_url: str, key_file: Path, *, pin_mode: str = "encrypted") -> Iterator[str]:
    """The portal of the RADIUS hotspot 'cafe', on radiusd's database, at its own loopback port."""
    with portal_server(lambda url: portal_settings(database_url, key_file, portal_url=url, pin_mode=pin_mode)) as url:
        yield url


@contextmanager
def nas_sending_to_portal(
    vendor: str,
    radius: RadiusServer,
    engine: Engine,
    database_url: str,
    key_file: Path,
    *,
    drops_rejects: bool = False,
    pin_mode: str = "encrypted",
) -> Iterator[tuple[StandInNas, str]]:
    """The RADIUS hotspot's portal at its own port, and a CoovaChilli (1.9 with `drops_rejects`, else 1.8)
    or a MikroTik sending guests to it, configured in the database; the NAS and its portal's URL."""
    with radius_portal(database_url, key_file, pin_mode=pin_mode) as portal:
        nas: StandInNas
        if vendor == "chilli":
            configure_nas(engine, "chilli", uam_secret=UAM_SECRET)
            nas = StandInChilli(radius, drops_rejects=drops_rejects, portal=portal)
        else:
            nas = StandInMikrotik(radius, portal=portal, login_html=documented_login_html())
            configure_nas(engine, "mikrotik", uam_login_url=nas.login_url)
        try:
            yield nas, portal
        finally:
            nas.close()


def open_any_page(driver: WebDriver, nas: StandInNas, path: str = "/any/page") -> None:
    """The guest opens a page behind the NAS, which sends them to the portal's login page."""
    driver.get(f"http://127.0.0.1:{nas.port}{path}")


def wait_for_status_page(driver: WebDriver, portal: str) -> None:
    wait_for(driver, lambda d: d.current_url == f"{portal}status")


def type_card_and_pin(driver: WebDriver, number: str, pin: str) -> None:
    """On the login page the NAS sent the guest to (it fits the phone): the card number (unless filled in),
    the PIN, Connect."""
    wait_for(driver, lambda d: d.find_elements(By.ID, "pin"))
    assert_fits_the_phone(driver)
    card = driver.find_element(By.ID, "card")
    if not card.get_attribute("value"):
        card.send_keys(number)
    driver.find_element(By.ID, "pin").send_keys(pin)
    driver.find_element(By.CSS_SELECTOR, "form.card-form button[type=submit]").click()


def sessions_of(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [
            tuple(row)
            for row in conn.execute(
                text("SELECT c.number, s.acct_session_id, s.status FROM sessions s JOIN cards c ON c.id = s.card_id")
            )
        ]


def wrong_pins(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM login_attempts WHERE outcome = 'wrong_pin'")).scalar_one())


@needs_chromium
@pytest.mark.parametrize(("chap", "language"), [(True, "en"), (False, "ru")], ids=["chap-en", "pap-ru"])
def test_a_guest_logs_in_at_coovachilli_in_a_browser(
    guest_browser: WebDriver,
    radius_server: RadiusServer,
    radius_db: Engine,
    radius_database: str,
    key_file: Path,
    vault: PinVault,
    chap: bool,
    language: str,
) -> None:
    pin_mode = "encrypted" if chap else "hashed"  # hashed PINs can only be checked with PAP
    batch = build_world(radius_db, vault, hotspot=RADIUS_HOTSPOT, pin_mode=pin_mode)
    with nas_sending_to_portal(
        "chilli", radius_server, radius_db, radius_database, key_file, drops_rejects=True, pin_mode=pin_mode
    ) as (nas, portal):
        open_any_page(guest_browser, nas)
        type_card_and_pin(guest_browser, batch.numbers[0], batch.pins[0])
        wait_for_status_page(guest_browser, portal)
        assert guest_browser.find_element(By.TAG_NAME, "h1").text == ONLINE[language]
        assert_fits_the_phone(guest_browser)
    assert sessions_of(radius_db) == [(batch.numbers[0], "5f3a00000001", "open")]


@needs_chromium
@pytest.mark.parametrize("language", ["en", "ru"])
def test_a_guest_logs_in_at_mikrotik_in_a_browser(
    guest_browser: WebDriver,
    radius_server: RadiusServer,
    radius_db: Engine,
    radius_database: str,
    key_file: Path,
    vault: PinVault,
    language: str,
) -> None:
    batch = build_world(radius_db, vault, hotspot=RADIUS_HOTSPOT)
    with nas_sending_to_portal("mikrotik", radius_server, radius_db, radius_database, key_file) as (nas, portal):
        open_any_page(guest_browser, nas)
        type_card_and_pin(guest_browser, batch.numbers[0], batch.pins[0])  # then the auto-posted form
        wait_for_status_page(guest_browser, portal)
        assert guest_browser.find_element(By.TAG_NAME, "h1").text == ONLINE[language]
        link = guest_browser.find_element(By.PARTIAL_LINK_TEXT, "example.org")  # where the guest was going
        assert link.get_attribute("href") == "http://example.org/"
        assert_fits_the_phone(guest_browser)
    assert sessions_of(radius_db) == [(batch.numbers[0], "mt-00000001", "open")]


@needs_chromium
@pytest.mark.parametrize(
    ("drops_rejects", "language"), [(False, "en"), (True, "ru")], ids=["chilli-1.8-en", "chilli-1.9-ru"]
)
def test_an_expired_challenge_restarts_from_a_fresh_redirect(
    tmp_path: Path,
    radius_server: RadiusServer,
    radius_db: Engine,
    radius_database: str,
    key_file: Path,
    vault: PinVault,
    drops_rejects: bool,
    language: str,
) -> None:
    """The guest waited on the login page until CoovaChilli's challenge expired: 1.8 answers res=failed,
    1.9 hangs up (the browser shows its own error page until the guest opens any page again). Either way
    the guest is told, comes back to the login page with a fresh challenge and the card number filled in,
    and logs in — and no wrong PIN was counted anywhere."""
    batch = build_world(radius_db, vault, hotspot=RADIUS_HOTSPOT)
    guest_browser = chromium(tmp_path, language=language)
    try:
        with nas_sending_to_portal(
            "chilli", radius_server, radius_db, radius_database, key_file, drops_rejects=drops_rejects
        ) as (nas, portal):
            assert isinstance(nas, StandInChilli)
            open_any_page(guest_browser, nas)
            wait_for(guest_browser, lambda d: d.find_elements(By.ID, "pin"))
            nas.expire_challenge()
            type_card_and_pin(guest_browser, batch.numbers[0], batch.pins[0])
            if drops_rejects:
                wait_for(guest_browser, lambda d: "ERR_EMPTY_RESPONSE" in d.page_source)
                open_any_page(guest_browser, nas, "/another/page")
            notice = wait_for(guest_browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".alert.error"))
            assert EXPIRED_NOTICE[language] in notice[0].text  # type: ignore[index]
            assert_fits_the_phone(guest_browser)
            assert guest_browser.find_element(By.ID, "card").get_attribute("value") == batch.numbers[0]
            assert sessions_of(radius_db) == []
            type_card_and_pin(guest_browser, batch.numbers[0], batch.pins[0])
            wait_for_status_page(guest_browser, portal)
    finally:
        guest_browser.quit()
    assert sessions_of(radius_db) == [(batch.numbers[0], "5f3a00000001", "open")]
    assert wrong_pins(radius_db) == 0
    assert nas.logons_refused_unasked >= 1  # the failure was the NAS's, not a PIN RADIUS refused


CONFIRMING = {"en": "Confirming your login…", "ru": "Подтверждаем вход…"}


@needs_chromium
@pytest.mark.parametrize(
    ("vendor", "language", "javascript"),
    [("chilli", "en", True), ("mikrotik", "ru", False)],
    ids=["chilli-en", "mikrotik-ru-nojs"],
)
def test_a_login_back_before_its_accounting_start_waits_for_it(
    tmp_path: Path,
    radius_server: RadiusServer,
    radius_db: Engine,
    radius_database: str,
    key_file: Path,
    vault: PinVault,
    vendor: str,
    language: str,
    javascript: bool,
) -> None:
    """The NAS sends the guest back on success (CoovaChilli res=success, MikroTik's dst) 3 s before its
    Accounting-Start reaches radiusd (the Access-Accept left the session pending): the guest reads that the
    login is being confirmed, and the page turns into the status page by itself once the NAS's Start has
    opened the session — with or without JavaScript."""
    batch = build_world(radius_db, vault, hotspot=RADIUS_HOTSPOT)
    driver = chromium(tmp_path, language=language, javascript=javascript)
    try:
        with nas_sending_to_portal(vendor, radius_server, radius_db, radius_database, key_file) as (nas, portal):
            nas.start_delay_s = 3
            open_any_page(driver, nas)
            if not javascript and vendor == "mikrotik":  # its login.html does not post itself either
                driver.find_element(By.CSS_SELECTOR, "noscript button, button").click()
            type_card_and_pin(driver, batch.numbers[0], batch.pins[0])
            if not javascript and vendor == "mikrotik":  # the handoff form does not post itself
                continue_button = wait_for(
                    driver, lambda d: d.find_elements(By.CSS_SELECTOR, "form[data-autosubmit] button")
                )
                assert_fits_the_phone(driver)  # the portal's "Connecting…" page
                continue_button[0].click()  # type: ignore[index]
            wait_for(driver, lambda d: d.find_element(By.TAG_NAME, "h1").text == CONFIRMING[language])
            assert sessions_of(radius_db) == [(batch.numbers[0], None, "pending")]  # the Accept's, no Start yet
            assert_fits_the_phone(driver)
            wait_for(driver, lambda d: d.find_element(By.TAG_NAME, "h1").text == ONLINE[language])
            assert driver.current_url == f"{portal}status"
    finally:
        driver.quit()
    assert [(row[0], row[2]) for row in sessions_of(radius_db)] == [(batch.numbers[0], "open")]


REFUSED = {
    "en": "The hotspot refused the login: This card is blocked. Please ask the staff. Nothing was charged.",
    "ru": "Точка доступа отказала во входе: Карта заблокирована. Обратитесь к персоналу. Деньги не списаны.",
}


@needs_chromium
@pytest.mark.parametrize(
    ("vendor", "language"), [("chilli", "en"), ("mikrotik", "ru")], ids=["chilli-1.8-en", "mikrotik-ru"]
)
def test_a_radius_refusal_during_the_handoff_is_told(
    tmp_path: Path,
    radius_server: RadiusServer,
    radius_db: Engine,
    radius_database: str,
    key_file: Path,
    vault: PinVault,
    vendor: str,
    language: str,
) -> None:
    """The desk blocks the card between the portal's check and the NAS's Access-Request: radiusd rejects
    it with its Reply-Message, which the NAS passes back (CoovaChilli reply=, MikroTik error=). The guest
    reads that reason in their language on the login page (a fresh redirect, the card number kept), not
    "did not complete your login" — and it is not counted as a wrong PIN."""
    batch = build_world(radius_db, vault, hotspot=RADIUS_HOTSPOT)
    driver = chromium(tmp_path, language=language)

    def the_desk_blocks_the_card() -> None:
        with Session(radius_db) as db, db.begin():
            set_blocked(db, blocked=True, number=batch.numbers[0])

    try:
        with nas_sending_to_portal(vendor, radius_server, radius_db, radius_database, key_file) as (nas, _):
            nas.before_radius = the_desk_blocks_the_card
            open_any_page(driver, nas)
            type_card_and_pin(driver, batch.numbers[0], batch.pins[0])
            notice = wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".alert.error"))
            assert notice[0].text == REFUSED[language]  # type: ignore[index]
            assert driver.find_element(By.ID, "card").get_attribute("value") == batch.numbers[0]
            assert_fits_the_phone(driver)
    finally:
        driver.quit()
    assert sessions_of(radius_db) == []
    assert wrong_pins(radius_db) == 0
    with radius_db.connect() as conn:
        outcomes = conn.execute(text("SELECT outcome FROM login_attempts")).scalars().all()
    assert "blocked" in outcomes  # RADIUS recorded its refusal as what it was

"""UAM handoffs for hotspots in RADIUS mode: the NAS sends the guest here, we send the credentials back.

The NAS (CoovaChilli, MikroTik) redirects an unauthenticated guest to the portal with its parameters;
the portal checks them (:func:`parse_chilli_redirect`, :func:`parse_mikrotik_login`), takes card number
and PIN, and returns the guest's browser to the NAS's login endpoint (:func:`handoff`), which asks
FreeRADIUS. The PIN never travels in clear: CoovaChilli gets it XOR-encoded with MD5(challenge +
uamsecret) (PAP) or as a CHAP response, MikroTik as MD5(chap-id + PIN + chap-challenge).

Protocol facts: ../shared/notes/gateway-lab.md ("CoovaChilli UAM"), MikroTik's hotspot login page.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit

from rlm_hotspot.pins import chap_response

CHILLI_RESULTS = ("notyet", "success", "failed", "logoff", "already", "logup")
_HEX_CHALLENGE = re.compile(r"^[0-9a-fA-F]{32}$")
_OCTAL_BYTE = re.compile(r"\\([0-7]{3})")


class UamError(ValueError):
    """A redirect the portal must not act on: malformed, or not from a NAS it trusts (forged)."""


@dataclass(frozen=True)
class NasContext:
    """What the NAS told the portal about the guest, checked; everything the handoff needs."""

    vendor: str  # 'chilli' or 'mikrotik'
    login_url: str  # where the guest's browser sends the credentials
    restart_url: str  # where the NAS gives the browser a fresh redirect (a new challenge) to the portal
    challenge: bytes
    client_ip: str | None
    client_mac: str | None
    original_url: str | None  # where the guest wanted to go (userurl / link-orig)
    nas_id: str | None = None  # CoovaChilli nasid (NAS-Identifier)
    session_id: str | None = None  # CoovaChilli: the Acct-Session-Id the session will get
    result: str = "notyet"  # CoovaChilli res=: notyet, success, failed, logoff, ...
    message: str | None = None  # Reply-Message / reject reason / MikroTik error
    time_left: int | None = None  # CoovaChilli timeleft (Session-Timeout) after success
    chap_id: bytes | None = None  # MikroTik
    key: bytes = field(default=b"", repr=False)  # CoovaChilli: MD5(challenge + uamsecret)


@dataclass(frozen=True)
class Handoff:
    """Where the guest's browser goes next: a GET of `url`, or a POST of `fields` to `url`."""

    method: str
    url: str
    fields: Mapping[str, str] = field(default_factory=dict)


# -- CoovaChilli --------------------------------------------------------------------------------------


def parse_chilli_redirect(url: str, uamsecret: str | None) -> NasContext:
    """Check and read a CoovaChilli redirect (``res=notyet`` before login, ``success``/``failed``/... after).

    `url` must be the redirect URL exactly as the guest's browser requested it (scheme, host, path and
    the raw query string): CoovaChilli signs it with ``md`` = uppercase hex MD5(URL up to ``&md=`` +
    uamsecret), and a redirect with a missing or wrong ``md`` is refused when a uamsecret is configured.
    """
    signed, sep, md = url.rpartition("&md=")
    if uamsecret:
        if not sep or "&" in md:
            raise UamError("CoovaChilli redirect without its md signature")
        if not hmac.compare_digest(md.upper(), _chilli_md(signed, uamsecret)):
            raise UamError("CoovaChilli redirect with a wrong md signature (forged, or another uamsecret)")
    params = dict(parse_qsl(urlsplit(signed).query))
    result = params.get("res", "")
    if result not in CHILLI_RESULTS:
        raise UamError(f"CoovaChilli redirect with unknown res={result!r}")
    challenge = params.get("challenge", "")
    uamip, uamport = params.get("uamip", ""), params.get("uamport", "")
    if not (_HEX_CHALLENGE.match(challenge) and uamip and uamport.isdigit()):
        raise UamError("CoovaChilli redirect without a valid challenge, uamip and uamport")
    raw = bytes.fromhex(challenge)
    time_left = params.get("timeleft", "")
    return NasContext(
        vendor="chilli",
        login_url=f"http://{uamip}:{int(uamport)}/logon",
        restart_url=f"http://{uamip}:{int(uamport)}/prelogin",
        challenge=raw,
        client_ip=params.get("ip") or None,
        client_mac=params.get("mac") or None,
        original_url=params.get("userurl") or None,
        nas_id=params.get("nasid") or None,
        session_id=params.get("sessionid") or None,
        result=result,
        message=params.get("reply") or None,  # RADIUS's Reply-Message (reason=reject says only that)
        time_left=int(time_left) if time_left.isdigit() else None,
        key=chilli_key(raw, uamsecret),
    )


def _chilli_md(url: str, uamsecret: str) -> str:
    return hashlib.md5((url + uamsecret).encode(), usedforsecurity=False).hexdigest().upper()


def chilli_key(challenge: bytes, uamsecret: str | None) -> bytes:
    """The key both encodings use: MD5(challenge + uamsecret), or the bare challenge without a secret."""
    if not uamsecret:
        return challenge
    return hashlib.md5(challenge + uamsecret.encode(), usedforsecurity=False).digest()


def chilli_pap_password(pin: str, key: bytes) -> str:
    """PAP for /logon: each PIN byte XOR the key (cycled), in hex — as long as the PIN, no RFC 2865 chaining."""
    return bytes(byte ^ key[i % len(key)] for i, byte in enumerate(pin.encode())).hex()


def chilli_chap_response(pin: str, key: bytes) -> str:
    """CHAP for /logon: hex MD5(0x00 + PIN + key); the NAS sends CHAP-Challenge = key, CHAP-Password = 0x00 + it."""
    return chap_response(0, pin, key).hex()


# -- MikroTik -----------------------------------------------------------------------------------------


def parse_mikrotik_login(params: Mapping[str, str], login_url: str) -> NasContext:
    """Read the variables a MikroTik login page passes on (link-login-only, link-orig, chap-id,
    chap-challenge, mac, ip, error).

    MikroTik does not sign them, so ``link-login-only`` must be the NAS's configured `login_url`: a
    forged one would have the guest post a CHAP hash of the PIN to someone who could brute-force it.
    """
    target = params.get("link-login-only", "")
    if not login_url or target != login_url:
        raise UamError(f"MikroTik login link {target!r} is not this NAS's login URL")
    chap_id, challenge = params.get("chap-id", ""), params.get("chap-challenge", "")
    if not chap_id or not challenge:
        raise UamError("MikroTik login without chap-id and chap-challenge (enable HTTP CHAP on the hotspot)")
    error = params.get("error") or None
    return NasContext(
        vendor="mikrotik",
        login_url=target,
        restart_url=target,  # a GET of the login URL shows its login page, which sends the guest here anew
        challenge=mikrotik_octets(challenge),
        chap_id=_one_octet(mikrotik_octets(chap_id), "chap-id"),
        client_ip=params.get("ip") or None,
        client_mac=params.get("mac") or None,
        original_url=params.get("link-orig") or None,
        result="failed" if error else "notyet",
        message=error,
    )


def mikrotik_octets(text: str) -> bytes:
    """MikroTik's ``$(chap-id)``/``$(chap-challenge)`` are strings of octal escapes like ``\\123\\045``."""
    if _OCTAL_BYTE.sub("", text):
        raise UamError(f"not a MikroTik octal-escaped string: {text[:40]!r}")
    return bytes(int(octal, 8) for octal in _OCTAL_BYTE.findall(text))


def _one_octet(value: bytes, name: str) -> bytes:
    if len(value) != 1:
        raise UamError(f"MikroTik {name} is {len(value)} octets, not one")
    return value


def mikrotik_chap_password(pin: str, chap_id: bytes, challenge: bytes) -> str:
    """What MikroTik's login page computes: hex MD5(chap-id + PIN + chap-challenge)."""
    return chap_response(chap_id[0], pin, challenge).hex()


# -- the handoff --------------------------------------------------------------------------------------


def handoff(ctx: NasContext, username: str, pin: str, *, status_url: str, chap: bool = True) -> Handoff:
    """Where to send the guest's browser with the credentials (CHAP unless `chap` is False: PAP only
    suits PINs stored hashed, which CHAP cannot verify).

    MikroTik sends the guest to `dst` after the login: the portal's status page (`status_url`), whose
    heartbeats keep the session alive and which links to the page the guest first asked for. CoovaChilli
    always comes back to the portal (its uamserver), with `userurl`.
    """
    if ctx.vendor == "mikrotik":
        assert ctx.chap_id is not None
        fields = {
            "username": username,
            "password": mikrotik_chap_password(pin, ctx.chap_id, ctx.challenge),
            "dst": status_url,
        }
        return Handoff("POST", ctx.login_url, fields)
    query = {"username": username}
    if chap:
        query["response"] = chilli_chap_response(pin, ctx.key)
    else:
        query["password"] = chilli_pap_password(pin, ctx.key)
    if ctx.original_url:
        query["userurl"] = ctx.original_url
    return Handoff("GET", f"{ctx.login_url}?{urlencode(query)}")


@dataclass(frozen=True)
class LoginOutcome:
    accepted: bool
    message: str | None = None


def login_outcome(ctx: NasContext) -> LoginOutcome:
    """The result redirect the NAS sent back: CoovaChilli res=success/already is a login; anything else is
    not (res=failed, or a MikroTik page back with an error). CoovaChilli 1.9 sends no result on a reject:
    it drops the /logon connection (portal/nas_login.py says how the portal notices)."""
    return LoginOutcome(ctx.result in ("success", "already"), ctx.message)

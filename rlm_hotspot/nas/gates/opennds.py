"""The `opennds` gate: the portal is openNDS's FAS (Forwarding Authentication Service, levels 0 and 1).

openNDS sends an unauthenticated client to the portal with ``?fas=<base64>`` (level 1) or
``?authaction=...&tok=...`` (level 0). After a good login the portal either sends the client's browser
to openNDS's ``/opennds_auth/`` with the token (:meth:`OpenNdsGate.auth_redirect`), or authorises the
client itself with ``ndsctl auth`` (:meth:`OpenNdsGate.open`); ``ndsctl deauth`` cuts it off at once.
The FAS is the only gatekeeper: a BinAuth script's ``exit 1`` does not deny anyone.

Options: ``ndsctl`` (the command, e.g. ``nsenter -t <opennds pid> -m -n ndsctl`` when openNDS runs in
its own namespaces; default ``ndsctl``), ``faskey`` (level 1), ``gateway_address`` (``ip:port`` of
openNDS; a FAS request naming another gateway is refused, so the portal is no open redirector),
``client_address_check`` (``yes`` by default: a FAS request must come from the client it names — set
``no`` only when the portal sees guests through NAT, e.g. a FAS on the Internet), ``timeout`` (seconds
per ndsctl call).

Levels 0 and 1 are not signed: a guest could write someone else's address into ``fas``. openNDS itself
authenticates only the client whose token it was given, and the address check keeps the session (which
the worker later cuts by that address) bound to the client that logged in.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from rlm_hotspot.nas.gates.base import GateError, Options, client_ip, client_mac, positive_seconds, run_command


class FasRequestError(GateError):
    """The FAS query is not one openNDS produced for this gateway (malformed, or names another gateway)."""


@dataclass(frozen=True)
class FasRequest:
    """A client openNDS sent to the portal, with what is needed to authenticate it."""

    client_ip: str
    client_mac: str | None  # level 0 gives none
    gateway_address: str  # ip:port of openNDS's web server
    origin_url: str | None  # where the guest wanted to go
    hid: str | None = None  # level 1: the per-redirect hash id (the token is sha256(hid + faskey))
    tok: str | None = None  # level 0: the token itself, in clear


class OpenNdsGate:
    """Authorises clients in openNDS through ndsctl, and speaks the FAS side of its redirect protocol."""

    def __init__(self, options: Mapping[str, str]) -> None:
        opts = Options(
            "opennds", options, known=("ndsctl", "faskey", "gateway_address", "client_address_check", "timeout")
        )
        self._ndsctl = opts.words("ndsctl", "ndsctl")
        self._faskey = opts.text("faskey")
        self._gateway_address = opts.text("gateway_address")
        self._check_client_address = opts.flag("client_address_check", default=True)
        self._timeout = opts.timeout()

    def open(self, ip: str, mac: str | None, seconds: int) -> None:
        """`ndsctl auth` for whole minutes; openNDS knows only clients that already hit its redirect."""
        minutes = str(math.ceil(positive_seconds(seconds) / 60))
        done = run_command([*self._ndsctl, "auth", self._client(ip, mac), minutes], timeout=self._timeout)
        if "authenticated" not in done.stdout.lower():
            raise GateError(f"opennds gate: ndsctl did not authenticate {ip}: {done.stdout.strip() or 'no output'}")

    def close(self, ip: str, mac: str | None) -> None:
        """`ndsctl deauth`; a client openNDS no longer lists is already cut off."""
        done = run_command([*self._ndsctl, "deauth", self._client(ip, mac)], timeout=self._timeout, ok_codes=(0, 1))
        if done.returncode != 0 and "not found" not in (done.stdout + done.stderr).lower():
            raise GateError(f"opennds gate: ndsctl deauth {ip} failed: {(done.stdout + done.stderr).strip()}")

    def is_open(self, ip: str, mac: str | None) -> bool:
        done = run_command([*self._ndsctl, "json", self._client(ip, mac)], timeout=self._timeout)
        try:
            state: object = json.loads(done.stdout or "{}").get("state")
        except (ValueError, AttributeError):
            raise GateError(f"opennds gate: ndsctl json gave no JSON: {done.stdout.strip()[:200]}") from None
        return state == "Authenticated"

    def fas_request(self, query: Mapping[str, str], seen_from: str | None = None) -> FasRequest:
        """The client openNDS redirected here, from the FAS query string (level 1 or level 0); `seen_from`
        is the address the request came from, which must be the client's unless the check is off."""
        if "fas" in query:
            request = _level1(query["fas"])
        elif "authaction" in query:
            request = _level0(query)
        else:
            raise FasRequestError("not an openNDS FAS request (no 'fas' or 'authaction' parameter)")
        if self._gateway_address and request.gateway_address != self._gateway_address:
            raise FasRequestError(f"FAS request for gateway {request.gateway_address}, not {self._gateway_address}")
        if self._check_client_address and seen_from is not None and seen_from != request.client_ip:
            raise FasRequestError(f"FAS request names client {request.client_ip} but came from {seen_from}")
        return request

    def auth_redirect(self, request: FasRequest, redir: str, custom: str | None = None) -> str:
        """Where to send the client's browser so that openNDS authenticates it and then sends it to `redir`."""
        if request.hid is not None:
            if not self._faskey:
                raise GateError("opennds gate: FAS level 1 needs the 'faskey' option")
            token = hashlib.sha256((request.hid + self._faskey).encode()).hexdigest()
        elif request.tok is not None:
            token = request.tok
        else:
            raise FasRequestError("FAS request carries neither hid nor tok")
        params = {"tok": token, "redir": redir}
        if custom is not None:
            params["custom"] = base64.b64encode(custom.encode()).decode()
        return f"http://{request.gateway_address}/opennds_auth/?{urlencode(params)}"

    @staticmethod
    def _client(ip: str, mac: str | None) -> str:
        """openNDS keys clients by MAC; the IP is used when the MAC is unknown (level 0)."""
        return client_mac(mac) or client_ip(ip)


def _level1(encoded: str) -> FasRequest:
    """Decode ``fas=``: base64 (padding may be missing) of ``key=value, key=value`` with URL-encoded values."""
    try:
        text = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=False).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise FasRequestError("FAS level 1: 'fas' is not base64 text") from None
    fields = {}
    for item in text.split(", "):
        key, sep, value = item.partition("=")
        if sep:
            fields[key.strip()] = unquote(value.strip())
    missing = [key for key in ("hid", "clientip", "gatewayaddress") if not fields.get(key)]
    if missing:
        raise FasRequestError(f"FAS level 1: missing {', '.join(missing)}")
    return FasRequest(
        client_ip=_ip(fields["clientip"]),
        client_mac=_mac(fields.get("clientmac")),
        gateway_address=fields["gatewayaddress"],
        origin_url=fields.get("originurl") or None,
        hid=fields["hid"],
    )


def _level0(query: Mapping[str, str]) -> FasRequest:
    """Level 0: ``authaction`` holds ``http://gw:port/opennds_auth/?clientip=IP``; ``tok`` and ``redir`` sit
    beside it because openNDS does not escape the nested ``?``."""
    action = urlsplit(query["authaction"])
    tok = query.get("tok")
    client = dict(parse_qsl(action.query)).get("clientip")
    if not (action.netloc and action.path.rstrip("/").endswith("opennds_auth") and tok and client):
        raise FasRequestError("FAS level 0: authaction, tok or clientip missing or malformed")
    return FasRequest(
        client_ip=_ip(client),
        client_mac=None,
        gateway_address=action.netloc,
        origin_url=query.get("redir") or None,
        tok=tok,
    )


def _ip(value: str) -> str:
    try:
        return client_ip(value)
    except GateError as exc:
        raise FasRequestError(str(exc)) from None


def _mac(value: str | None) -> str | None:
    try:
        return client_mac(value)
    except GateError as exc:
        raise FasRequestError(str(exc)) from None

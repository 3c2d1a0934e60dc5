"""RADIUS attribute lists, as rlm_python3 passes them, decoded into typed requests.

rlm_python3 hands every value over as text (integers in decimal, enums by name, octets as "0x…" hex),
keeps packet order and repeats repeated attributes. Everything a NAS sends is validated here; a value
that does not fit raises MalformedPacket, whose message names the attribute, for the log line.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property

from rlm_hotspot.core.clients import client_identity
from rlm_hotspot.pins import ChapAnswer
from rlm_hotspot.radius.encode import CLASS_PREFIX
from rlm_hotspot.services.sessions import AccountingUpdate

MAX_TEXT = 253  # an attribute holds at most 253 octets
MAX_UINT32 = 2**32 - 1
MAX_ACCT_DELAY_S = 86400  # an older delay is a broken NAS clock, not a retransmit queue
CHAP_PASSWORD_OCTETS = 17  # the ident, then the MD5 response
RAW_TEXT_PREFIX = "Hotspot-Raw-"  # freeradius-config/policy.d/hotspot, hotspot_readable_text

ACCT_STATUS = {
    "Start": "start",
    "Stop": "stop",
    "Interim-Update": "interim",
    "Alive": "interim",
    "Accounting-On": "on",
    "Accounting-Off": "off",
    # numbers, for a dictionary that lacks the names
    "1": "start",
    "2": "stop",
    "3": "interim",
    "7": "on",
    "8": "off",
}
# CoovaChilli counts from the client's view by default (input = the client's downloads) and says so.
CLIENT_VIEW_POINT = ("Client-View-Point", "2")


class MalformedPacket(ValueError):
    """A request the NAS built wrongly (missing or invalid attribute); the message says which."""


@dataclass(frozen=True)
class Attributes:
    """One attribute list in packet order, repeated attributes kept."""

    pairs: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, pairs: Iterable[tuple[str, ...]] | None) -> Attributes:
        """From rlm_python3's tuple of (name, value) pairs; `None` is an empty list. A text attribute that
        the virtual server handed over as raw octets (Hotspot-Raw-<name>: the request carried text that is
        not UTF-8) is read back as <name>, each byte that is not UTF-8 written as "\\xNN"."""
        return cls(tuple(readable(str(item[0]), str(item[-1])) for item in pairs or ()))

    def values(self, name: str) -> list[str]:
        return [value for key, value in self.pairs if key == name]

    @cached_property
    def _firsts(self) -> dict[str, str]:
        """Each name's first value: a packet is asked for a dozen names (the list reversed, the first wins)."""
        return dict(reversed(self.pairs))

    def first(self, name: str) -> str | None:
        return self._firsts.get(name)

    def text(self, name: str) -> str | None:
        value = self.first(name)
        if value is not None and (len(value.encode()) > MAX_TEXT or not value.isprintable()):
            raise MalformedPacket(f"{name} is not printable text of at most {MAX_TEXT} octets")
        return value

    def integer(self, name: str) -> int | None:
        value = self.first(name)
        if value is None:
            return None
        if not value.isdigit() or int(value) > MAX_UINT32:
            raise MalformedPacket(f"{name} = {value[:40]!r} is not a 32-bit unsigned integer")
        return int(value)

    def octets(self, name: str) -> bytes | None:
        value = self.first(name)
        if value is None:
            return None
        octets = _hex_octets(value)
        if octets is None:
            raise MalformedPacket(f"{name} = {value[:40]!r} is not an octet string")
        return octets

    def address(self, name: str) -> str | None:
        value = self.first(name)
        if value is None:
            return None
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise MalformedPacket(f"{name} = {value[:40]!r} is not an IP address") from None

    def counter64(self, octets: str, gigawords: str) -> int | None:
        """A 64-bit byte counter from its 32-bit octets and its gigawords (count of 2^32 wraps)."""
        low = self.integer(octets)
        if low is None:
            return None
        return ((self.integer(gigawords) or 0) << 32) | low


@dataclass(frozen=True)
class LoginPacket:
    """An Access-Request as the billing needs it."""

    card_text: str
    nas_ip: str
    client: str | None  # the lockout's name for the client (rlm_hotspot.core.clients): its MAC, else its IP
    calling_station_id: str | None
    password: str | None  # PAP: the cleartext the guest typed
    chap: ChapAnswer | None


def decode_login(attributes: Attributes) -> LoginPacket:
    """The card, the NAS and the credentials of an Access-Request."""
    card_text = attributes.text("User-Name")
    if not card_text:
        raise MalformedPacket("the Access-Request has no User-Name (card number)")
    password = attributes.first("User-Password")
    chap = _chap_answer(attributes)
    if password is None and chap is None:
        raise MalformedPacket("the Access-Request carries neither User-Password nor CHAP-Password")
    if password is not None and len(password.encode()) > 128:
        raise MalformedPacket("User-Password is longer than 128 octets")
    calling_station_id = attributes.text("Calling-Station-Id")
    framed_ip = attributes.address("Framed-IP-Address")
    return LoginPacket(
        card_text=card_text,
        nas_ip=_nas_address(attributes),
        client=client_identity(calling_station_id, framed_ip),
        calling_station_id=calling_station_id,
        password=None if chap else password,
        chap=chap,
    )


def _chap_answer(attributes: Attributes) -> ChapAnswer | None:
    """CHAP-Password (ident + 16-octet response) and its challenge: CHAP-Challenge, which the site copies
    from the Request Authenticator when the NAS sends none (RFC 2865 5.3)."""
    password = attributes.octets("CHAP-Password")
    if password is None:
        return None
    if len(password) != CHAP_PASSWORD_OCTETS:
        raise MalformedPacket(f"CHAP-Password has {len(password)} octets, not {CHAP_PASSWORD_OCTETS}")
    challenge = attributes.octets("CHAP-Challenge")
    if not challenge:
        raise MalformedPacket("CHAP-Password without a challenge (CHAP-Challenge)")
    return ChapAnswer(ident=password[0], response=password[1:], challenge=challenge)


def decode_accounting(attributes: Attributes) -> AccountingUpdate:
    """An Accounting-Request as cumulative 64-bit counters in the NAS's view (bytes in = from the client)."""
    raw_status = attributes.first("Acct-Status-Type")
    status = ACCT_STATUS.get(raw_status or "")
    if status is None:
        raise MalformedPacket(f"Acct-Status-Type {raw_status!r} is not one that is billed")
    input_octets = attributes.counter64("Acct-Input-Octets", "Acct-Input-Gigawords")
    output_octets = attributes.counter64("Acct-Output-Octets", "Acct-Output-Gigawords")
    if attributes.first("CoovaChilli-Acct-View-Point") in CLIENT_VIEW_POINT:
        input_octets, output_octets = output_octets, input_octets
    return AccountingUpdate(
        status=status,
        nas_ip=_nas_address(attributes),
        username=attributes.text("User-Name"),
        acct_session_id=attributes.text("Acct-Session-Id"),
        token=token_from_classes(attributes.values("Class")),
        session_time=attributes.integer("Acct-Session-Time"),
        input_octets=input_octets,
        output_octets=output_octets,
        framed_ip=attributes.address("Framed-IP-Address"),
        calling_station_id=attributes.text("Calling-Station-Id"),
        terminate_cause=attributes.text("Acct-Terminate-Cause"),
    )


def event_time(attributes: Attributes, received_at: datetime) -> datetime:
    """When the accounting event happened: receipt minus the NAS's Acct-Delay-Time (retransmit queue)."""
    delay = min(attributes.integer("Acct-Delay-Time") or 0, MAX_ACCT_DELAY_S)
    return received_at - timedelta(seconds=delay)


def token_from_classes(classes: list[str]) -> str | None:
    """Our session token from the Class attributes the NAS echoes (octets arrive as "0x…" hex)."""
    for value in classes:
        text = value
        if value.startswith("0x"):
            octets = _hex_octets(value)
            if octets is None or not octets.isascii():
                continue
            text = octets.decode("ascii")
        if text.startswith(CLASS_PREFIX) and len(text) > len(CLASS_PREFIX):
            return text[len(CLASS_PREFIX) :]
    return None


def readable(name: str, value: str) -> tuple[str, str]:
    """An attribute as the billing reads it: Hotspot-Raw-<name>'s octets back as <name> (see `Attributes.of`)."""
    if not name.startswith(RAW_TEXT_PREFIX):
        return name, value
    octets = _hex_octets(value) if value else b""  # the virtual server makes them: never anything else
    assert octets is not None, f"{name} = {value[:40]!r} is not an octet string"
    return name.removeprefix(RAW_TEXT_PREFIX), octets.decode("utf-8", "backslashreplace")


def _hex_octets(value: str) -> bytes | None:
    """An octets value as rlm_python3 passes it ("0x" and hex digits); None when it is not one."""
    if not value.startswith("0x"):
        return None
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        return None


def _nas_address(attributes: Attributes) -> str:
    """The NAS: NAS-IP-Address (the virtual server fills it from the packet source when absent)."""
    address = attributes.address("NAS-IP-Address") or attributes.address("NAS-IPv6-Address")
    if address is None:
        raise MalformedPacket("the request has no NAS-IP-Address")
    return address

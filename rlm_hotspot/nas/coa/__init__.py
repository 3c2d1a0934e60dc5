"""RFC 5176 client (pyrad): ask a NAS to end one guest session (Disconnect-Request) or to apply new
limits to it (CoA-Request: the limits of an Access-Accept, restated in full).

Used by the worker only — never from a RADIUS hook, where network I/O would stall radiusd. The request
identifies the session the way NAS vendors match it (User-Name + Acct-Session-Id, plus NAS-IP-Address
and Framed-IP-Address when known) and carries a Message-Authenticator (BlastRADIUS countermeasure).
A NAS answers ACK (session ended), NAK with an Error-Cause (e.g. 503 Session-Context-Not-Found), or
nothing at all (down, or it does not know our secret: RFC 5176 says drop silently).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources

from pyrad import packet
from pyrad.client import Client, Timeout
from pyrad.dictionary import Dictionary

ERROR_CAUSES = {
    201: "Residual-Session-Context-Removed",
    401: "Unsupported-Attribute",
    402: "Missing-Attribute",
    403: "NAS-Identification-Mismatch",
    404: "Invalid-Request",
    405: "Unsupported-Service",
    406: "Unsupported-Extension",
    407: "Invalid-Attribute-Value",
    501: "Administratively-Prohibited",
    502: "Request-Not-Routable",
    503: "Session-Context-Not-Found",
    504: "Session-Context-Not-Removable",
    505: "Other-Proxy-Processing-Error",
    506: "Resources-Unavailable",
    507: "Request-Initiated",
    508: "Multiple-Session-Selection-Unsupported",
}
SESSION_CONTEXT_NOT_FOUND = 503


def error_cause_name(code: int | None) -> str:
    if code is None:
        return "no Error-Cause"
    return f"{code} {ERROR_CAUSES.get(code, 'Unknown-Error-Cause')}"


@cache
def dictionary() -> Dictionary:
    """The small attribute dictionary shipped with the package (pyrad cannot encode without one)."""
    with resources.as_file(resources.files(__package__) / "dictionary") as path:
        return Dictionary(str(path))


@dataclass(frozen=True)
class NasAddress:
    """Where a NAS listens for RFC 5176 requests, and the secret it shares with us."""

    host: str
    port: int
    secret: str


@dataclass(frozen=True)
class SessionIdentity:
    """The attributes that tell the NAS which session to end."""

    user_name: str
    acct_session_id: str | None = None
    nas_ip: str | None = None
    framed_ip: str | None = None


@dataclass(frozen=True)
class NasAnswer:
    """ACK (the NAS ended the session) or NAK with the Error-Cause it gave."""

    acked: bool
    error_cause: int | None = None


class NoAnswer(Exception):
    """The NAS did not answer any transmission (down, unreachable, or our secret is wrong there)."""


def send_disconnect(
    nas: NasAddress, identity: SessionIdentity, now: datetime, *, timeout_s: float = 1.0, transmissions: int = 3
) -> NasAnswer:
    """Send one Disconnect-Request (retransmitted up to `transmissions` times) and return the answer.

    Raises NoAnswer when every transmission went unanswered (or answers failed verification).
    """
    return _send(packet.DisconnectRequest, nas, identity, (), now, timeout_s, transmissions)


def send_coa(
    nas: NasAddress,
    identity: SessionIdentity,
    limits: Sequence[tuple[str, str]],
    now: datetime,
    *,
    timeout_s: float = 1.0,
    transmissions: int = 3,
) -> NasAnswer:
    """Send one CoA-Request carrying `limits` (attribute name, value as text); answers like a Disconnect.

    A NAS such as CoovaChilli resets every limit a CoA leaves out, so `limits` must hold all of them.
    """
    return _send(packet.CoARequest, nas, identity, limits, now, timeout_s, transmissions)


def _send(
    code: int,
    nas: NasAddress,
    identity: SessionIdentity,
    limits: Sequence[tuple[str, str]],
    now: datetime,
    timeout_s: float,
    transmissions: int,
) -> NasAnswer:
    client = Client(
        server=nas.host,
        coaport=nas.port,
        secret=nas.secret.encode(),
        dict=dictionary(),
        retries=transmissions,
        timeout=timeout_s,
    )
    request = client.CreateCoAPacket(code=code, message_authenticator=True)
    request["User-Name"] = identity.user_name
    if identity.acct_session_id:
        request["Acct-Session-Id"] = identity.acct_session_id
    if identity.nas_ip:
        request["NAS-IP-Address"] = identity.nas_ip
    if identity.framed_ip:
        request["Framed-IP-Address"] = identity.framed_ip
    request["Event-Timestamp"] = int(now.timestamp())
    for name, value in limits:
        request[name] = int(value) if dictionary().attributes[name].type == "integer" else value
    try:
        reply = client.SendPacket(request)
    except Timeout:
        raise NoAnswer(f"no answer from {nas.host}:{nas.port} after {transmissions} x {timeout_s:g} s") from None
    finally:
        client._CloseSocket()  # pyrad keeps the socket open for reuse; one request per client here
    if reply.code in (packet.DisconnectACK, packet.CoAACK):
        return NasAnswer(acked=True)
    causes = reply.get("Error-Cause") or [None]
    return NasAnswer(acked=False, error_cause=causes[0])

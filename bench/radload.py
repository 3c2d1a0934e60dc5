"""A small RADIUS load generator for the benchmarks: a window of outstanding requests over UDP.

Packets are encoded here (RFC 2865/2866; PAP password hiding, accounting authenticators, the
Message-Authenticator a NAS must send: docs/radius.md, BlastRADIUS) so the client costs little CPU next
to the servers it measures. Every request gets its own latency; the caller gets
requests/s, p50 and p99 and the replies (for echoing Class into accounting).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

ACCESS_REQUEST, ACCESS_ACCEPT, ACCESS_REJECT = 1, 2, 3
ACCOUNTING_REQUEST, ACCOUNTING_RESPONSE = 4, 5
USER_NAME, USER_PASSWORD, NAS_IP_ADDRESS, CLASS = 1, 2, 4, 25
ACCT_STATUS_TYPE, ACCT_INPUT_OCTETS, ACCT_OUTPUT_OCTETS, ACCT_SESSION_ID, ACCT_SESSION_TIME = 40, 42, 43, 44, 46
ACCT_DELAY_TIME = 41
MESSAGE_AUTHENTICATOR = 80
STATUS = {"start": 1, "stop": 2, "interim": 3}
ACCOUNTING_ON = 7


def _attr(kind: int, value: bytes) -> bytes:
    return struct.pack("!BB", kind, len(value) + 2) + value


def _hide_password(password: bytes, secret: bytes, authenticator: bytes) -> bytes:
    padded = password + b"\x00" * (-len(password) % 16 or (16 if not password else 0))
    out, last = b"", authenticator
    for i in range(0, len(padded), 16):
        digest = hashlib.md5(secret + last).digest()  # RFC 2865 requires MD5
        block = bytes(a ^ b for a, b in zip(padded[i : i + 16], digest, strict=True))
        out, last = out + block, block
    return out


def access_request(user: str, password: str, secret: bytes, nas_ip: str = "127.0.0.1") -> tuple[bytes, bytes]:
    """(authenticator, attributes) of a PAP Access-Request; the id, and the Message-Authenticator placed
    first (it covers the id), are filled in when sent."""
    authenticator = os.urandom(16)
    attrs = (
        _attr(MESSAGE_AUTHENTICATOR, bytes(16))
        + _attr(USER_NAME, user.encode())
        + _attr(USER_PASSWORD, _hide_password(password.encode(), secret, authenticator))
        + _attr(NAS_IP_ADDRESS, socket.inet_aton(nas_ip))
    )
    return authenticator, attrs


def accounting_request(
    status: str,
    user: str,
    session_id: str,
    *,
    seconds: int = 0,
    octets_in: int = 0,
    octets_out: int = 0,
    classes: Sequence[bytes] = (),
    nas_ip: str = "127.0.0.1",
    delay: int = 0,
) -> bytes:
    """Attributes of an Accounting-Request (the authenticator is computed when sent); `delay`: how long
    ago the NAS says the event happened (Acct-Delay-Time)."""
    return (
        _attr(ACCT_STATUS_TYPE, struct.pack("!I", STATUS[status]))
        + _attr(USER_NAME, user.encode())
        + _attr(ACCT_SESSION_ID, session_id.encode())
        + _attr(NAS_IP_ADDRESS, socket.inet_aton(nas_ip))
        + _attr(ACCT_SESSION_TIME, struct.pack("!I", seconds))
        + _attr(ACCT_INPUT_OCTETS, struct.pack("!I", octets_in & 0xFFFFFFFF))
        + _attr(ACCT_OUTPUT_OCTETS, struct.pack("!I", octets_out & 0xFFFFFFFF))
        + _attr(ACCT_DELAY_TIME, struct.pack("!I", delay))
        + b"".join(_attr(CLASS, c) for c in classes)
    )


def accounting_on(nas_ip: str = "127.0.0.1", session_id: str = "00000000") -> bytes:
    """Attributes of the Accounting-On a NAS sends after it rebooted: every session it had is gone."""
    return (
        _attr(ACCT_STATUS_TYPE, struct.pack("!I", ACCOUNTING_ON))
        + _attr(ACCT_SESSION_ID, session_id.encode())
        + _attr(NAS_IP_ADDRESS, socket.inet_aton(nas_ip))
        + _attr(ACCT_DELAY_TIME, struct.pack("!I", 0))
    )


def _signed(packet: bytes, secret: bytes) -> bytes:
    """The packet with its first attribute, a zeroed Message-Authenticator, filled in (RFC 3579 3.2:
    HMAC-MD5 over the whole packet with that attribute zeroed)."""
    if packet[20:22] != bytes((MESSAGE_AUTHENTICATOR, 18)):
        return packet
    return packet[:22] + hmac.new(secret, packet, hashlib.md5).digest() + packet[38:]


def reply_attributes(packet: bytes, kind: int) -> list[bytes]:
    values, pos = [], 20
    while pos + 2 <= len(packet):
        code, length = packet[pos], packet[pos + 1]
        if length < 2:
            break
        if code == kind:
            values.append(packet[pos + 2 : pos + length])
        pos += length
    return values


@dataclass
class Outcome:
    latencies: list[float] = field(default_factory=list)
    codes: dict[int, int] = field(default_factory=dict)
    replies: list[bytes | None] = field(default_factory=list)
    timeouts: int = 0
    elapsed: float = 0.0
    answered_at: list[float] = field(default_factory=list)  # wall clock (time.time()) of each answer

    def summary(self) -> str:
        ordered = sorted(self.latencies)
        if not ordered:
            return "no answers"
        p50 = ordered[len(ordered) // 2] * 1000
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
        return (
            f"{len(ordered) / self.elapsed:8.0f} req/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  "
            f"codes {dict(sorted(self.codes.items()))}  timeouts {self.timeouts}"
        )

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0


class _Channel(asyncio.DatagramProtocol):
    """One UDP socket with up to 256 outstanding identifiers."""

    def __init__(self) -> None:
        self.waiting: dict[int, asyncio.Future[bytes]] = {}
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: object) -> None:
        future = self.waiting.pop(data[1], None) if len(data) >= 20 else None
        if future is not None and not future.done():
            future.set_result(data)


async def run_load(
    host: str,
    port: int,
    secret: bytes,
    requests: Sequence[tuple[int, bytes, bytes | None]],
    window: int = 64,
    timeout: float = 5.0,
    send_at: Sequence[float] | None = None,
) -> Outcome:
    """Send (code, attributes, authenticator-or-None) requests keeping `window` outstanding; with `send_at`
    (seconds from the start, ascending), none before its time (a paced load)."""
    loop = asyncio.get_running_loop()
    channels = []
    for _ in range(max(1, -(-window // 200))):
        _, protocol = await loop.create_datagram_endpoint(_Channel, remote_addr=(host, port))
        channels.append(protocol)
    outcome = Outcome(replies=[None] * len(requests))
    queue = iter(enumerate(requests))
    free_ids = [list(range(256)) for _ in channels]

    async def worker(slot: int) -> None:
        channel = channels[slot % len(channels)]
        ids = free_ids[slot % len(channels)]
        for index, (code, attrs, request_authenticator) in queue:
            if send_at is not None:
                await asyncio.sleep(begun + send_at[index] - time.perf_counter())
            ident = ids.pop()
            length = 20 + len(attrs)
            header = struct.pack("!BBH", code, ident, length)
            # accounting: the authenticator is MD5(code+id+length+zeros+attrs+secret)
            authenticator = request_authenticator or hashlib.md5(header + b"\x00" * 16 + attrs + secret).digest()
            packet = _signed(header + authenticator + attrs, secret)
            future: asyncio.Future[bytes] = loop.create_future()
            channel.waiting[ident] = future
            started = time.perf_counter()
            assert channel.transport is not None
            channel.transport.sendto(packet)
            try:
                reply = await asyncio.wait_for(future, timeout)
                outcome.latencies.append(time.perf_counter() - started)
                outcome.answered_at.append(time.time())
                outcome.codes[reply[0]] = outcome.codes.get(reply[0], 0) + 1
                outcome.replies[index] = reply
            except TimeoutError:
                channel.waiting.pop(ident, None)
                outcome.timeouts += 1
            ids.insert(0, ident)

    started = begun = time.perf_counter()
    await asyncio.gather(*(worker(slot) for slot in range(window)))
    outcome.elapsed = time.perf_counter() - started
    for channel in channels:
        assert channel.transport is not None
        channel.transport.close()
    return outcome

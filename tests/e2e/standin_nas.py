"""A stand-in NAS for RFC 5176 on 127.0.0.1: Disconnect-Request and CoA-Request over real UDP.

It behaves like the NAS in the gateway lab notes: it checks the Request Authenticator and the
Message-Authenticator with its secret (a wrong secret is dropped silently, as RFC 5176 says), then
answers per a scripted table keyed by Acct-Session-Id: ACK, NAK with an Error-Cause, or nothing.
"""

from __future__ import annotations

import socket
import threading

from pyrad import packet

from rlm_hotspot.nas.coa import dictionary


class StandInNas:
    """A UDP RFC 5176 server in a thread; `received` holds every verified request's code and attributes."""

    def __init__(self, secret: str, script: dict[str, tuple[str, int | None]]) -> None:
        self.secret = secret.encode()
        self.script = script  # Acct-Session-Id -> ("ack" | "nak" | "drop", Error-Cause)
        self.received: list[dict[str, object]] = []
        self.dropped_unverified = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                raw, client = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            request = packet.CoAPacket(packet=raw, secret=self.secret, dict=dictionary())
            if not (
                request.code in (packet.DisconnectRequest, packet.CoARequest)
                and request.VerifyCoARequest()
                and request.message_authenticator
                and request.verify_message_authenticator()
            ):
                self.dropped_unverified += 1
                continue
            names = request.keys()  # pyrad decodes names here; iterating the packet gives raw codes
            attributes = {name: request[name][0] for name in names if name != "Message-Authenticator"}
            self.received.append({"id": request.id, "code": request.code, **attributes})
            action, cause = self.script[str(attributes["Acct-Session-Id"])]
            if action == "drop":
                continue
            reply = request.CreateReply()
            if action == "nak":
                reply.code = request.code + 2  # Disconnect-NAK / CoA-NAK
                reply["Error-Cause"] = cause
            self.sock.sendto(reply.ReplyPacket(), client)

    def requests_for(self, acct_session_id: str) -> list[dict[str, object]]:
        return [r for r in self.received if r["Acct-Session-Id"] == acct_session_id]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()

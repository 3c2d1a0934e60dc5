"""The `command` gate: the operator's own allow/deny (and optional check) commands.

Each option is a command template such as ``/usr/local/sbin/gate allow {ip} {mac} {seconds}``. It is split
into words first and the placeholders are filled per word, then run without a shell — a value can never
become a second command. Values are validated (IPv4, MAC) before they are filled in; ``{mac}`` is empty
when the MAC is unknown. The ``check`` command answers ``is_open`` by its exit status: 0 open, 1 closed.
"""

from __future__ import annotations

from collections.abc import Mapping

from rlm_hotspot.nas.gates.base import GateError, Options, client_ip, client_mac, positive_seconds, run_command

_PLACEHOLDERS = {"ip": "192.0.2.1", "mac": "02:00:00:00:00:01", "seconds": "60"}


class CommandGate:
    """Runs configured commands to let a client through, to cut it off and (optionally) to ask."""

    def __init__(self, options: Mapping[str, str]) -> None:
        opts = Options("command", options, known=("allow", "deny", "check", "timeout"))
        self._allow = _template(opts, "allow", required=True)
        self._deny = _template(opts, "deny", required=True)
        self._check = _template(opts, "check", required=False)
        self._timeout = opts.timeout()

    def open(self, ip: str, mac: str | None, seconds: int) -> None:
        run_command(_fill(self._allow, ip, mac, positive_seconds(seconds)), timeout=self._timeout)

    def close(self, ip: str, mac: str | None) -> None:
        run_command(_fill(self._deny, ip, mac), timeout=self._timeout)

    def is_open(self, ip: str, mac: str | None) -> bool:
        if not self._check:
            raise GateError("command gate: no 'check' command is configured, so it cannot tell whether a gate is open")
        return run_command(_fill(self._check, ip, mac), timeout=self._timeout, ok_codes=(0, 1)).returncode == 0


def _template(opts: Options, key: str, *, required: bool) -> list[str]:
    """The command's words, checked now so that a bad placeholder fails at startup, not at a guest's login."""
    words = opts.words(key)
    if required and not words:
        raise GateError(f"command gate: option {key!r} is required")
    for word in words:
        try:
            word.format(**_PLACEHOLDERS)
        except (KeyError, IndexError, ValueError) as exc:
            raise GateError(
                f"command gate: option {key!r}: bad placeholder in {word!r} ({exc}); use {{ip}}, {{mac}}, {{seconds}}"
            ) from None
    return words


def _fill(words: list[str], ip: str, mac: str | None, seconds: int = 0) -> list[str]:
    values = {"ip": client_ip(ip), "mac": client_mac(mac) or "", "seconds": str(seconds)}
    return [word.format(**values) for word in words]

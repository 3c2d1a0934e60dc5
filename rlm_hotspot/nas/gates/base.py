"""What every gate driver shares: the Gate protocol, its one error type, and a safe command runner.

Gate commands run without a shell (argument lists, never a command string), with a timeout, and any
failure becomes a GateError whose message names the command and what it said — the portal shows the
guest a friendly page and must not leave a session billed behind a closed gate (docs/portal-gates.md).
"""

from __future__ import annotations

import ipaddress
import re
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from typing import Protocol

DEFAULT_TIMEOUT_S = 5.0
_MAC = re.compile(r"^[0-9a-f]{2}([:-])(?:[0-9a-f]{2}\1){4}[0-9a-f]{2}$", re.IGNORECASE)


class GateError(RuntimeError):
    """A gate could not be opened, closed or queried; the message says which command failed and why."""


class Gate(Protocol):
    """Lets one client (by IP, and MAC where the driver binds it) through the hotspot's firewall."""

    def open(self, ip: str, mac: str | None, seconds: int) -> None:
        """Let the client through for at most `seconds` (the gate closes by itself after that)."""

    def close(self, ip: str, mac: str | None) -> None:
        """Cut the client off at once; closing a closed gate is not an error."""

    def is_open(self, ip: str, mac: str | None) -> bool:
        """Whether the client is let through right now."""


def client_ip(ip: str) -> str:
    """The client's IPv4 address in canonical form; anything else is refused before it reaches a command."""
    try:
        return str(ipaddress.IPv4Address(ip.strip()))
    except ValueError:
        raise GateError(f"not an IPv4 client address: {ip!r}") from None


def client_mac(mac: str | None) -> str | None:
    """A MAC as lowercase colon-separated hex (CoovaChilli writes dashes); None stays None."""
    if mac is None or not mac.strip():
        return None
    if not _MAC.match(mac.strip()):
        raise GateError(f"not a MAC address: {mac!r}")
    return mac.strip().lower().replace("-", ":")


def positive_seconds(seconds: int) -> int:
    if seconds <= 0:
        raise GateError(f"a gate opens for a positive number of seconds, not {seconds}")
    return int(seconds)


class Options:
    """Driver options (strings from the hotspot settings) with a check that nothing unknown was given."""

    def __init__(self, driver: str, options: Mapping[str, str], known: Sequence[str]) -> None:
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise GateError(f"{driver} gate: unknown option(s) {', '.join(unknown)}; known: {', '.join(known)}")
        self.driver = driver
        self._options = options

    def text(self, key: str, default: str = "") -> str:
        return str(self._options.get(key, default)).strip()

    def required(self, key: str) -> str:
        value = self.text(key)
        if not value:
            raise GateError(f"{self.driver} gate: option {key!r} is required")
        return value

    def words(self, key: str, default: str = "") -> list[str]:
        """A command or command prefix, split like a shell would (but never run by one)."""
        try:
            return shlex.split(self.text(key, default))
        except ValueError as exc:
            raise GateError(f"{self.driver} gate: option {key!r}: {exc}") from None

    def flag(self, key: str, default: bool = False) -> bool:
        value = self.text(key, "yes" if default else "no").lower()
        if value not in ("yes", "no", "true", "false", "1", "0", "on", "off"):
            raise GateError(f"{self.driver} gate: option {key!r} must be yes or no, not {value!r}")
        return value in ("yes", "true", "1", "on")

    def timeout(self) -> float:
        try:
            value = float(self.text("timeout", str(DEFAULT_TIMEOUT_S)))
        except ValueError:
            raise GateError(f"{self.driver} gate: option 'timeout' must be a number of seconds") from None
        if value <= 0:
            raise GateError(f"{self.driver} gate: option 'timeout' must be positive")
        return value


def run_command(
    argv: Sequence[str], *, timeout: float, stdin: str | None = None, ok_codes: Sequence[int] = (0,)
) -> subprocess.CompletedProcess[str]:
    """Run a gate command; a missing program, a timeout or an unexpected exit status raises GateError."""
    shown = shlex.join(argv)
    try:
        done = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise GateError(f"gate command not found: {argv[0]!r} (in `{shown}`)") from None
    except subprocess.TimeoutExpired:
        raise GateError(f"gate command timed out after {timeout:g} s: `{shown}`") from None
    except OSError as exc:
        raise GateError(f"gate command could not start: `{shown}`: {exc}") from None
    if done.returncode not in ok_codes:
        said = (done.stderr or done.stdout).strip().replace("\n", " | ")
        raise GateError(f"gate command failed (exit {done.returncode}): `{shown}`: {said or 'no output'}")
    return done

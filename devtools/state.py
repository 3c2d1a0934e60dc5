"""Where `make demo` keeps its state (`var/`): the private PostgreSQL cluster, radiusd's config dir, the
demo's settings and PIN keys, logs and pidfiles.

As root, the demo runs PostgreSQL as `postgres` and radiusd as `nobody`, and both must reach their files.
A checkout they cannot reach (under root's home, 0700 on Debian, or a `mktemp -d`) keeps its state in
/var/lib/rlm-hotspot-demo/<checkout name>-<hash of its path>/ instead, and `var` is a link to it; the
directory holds a file CHECKOUT naming the checkout it belongs to. Anyone else runs every process as
themselves, so `var/` stays in the checkout.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from rlm_hotspot.radius.config import unreadable_by

STATE_ROOT = Path("/var/lib/rlm-hotspot-demo")
SERVICE_USERS = ("postgres", "nobody")  # who the demo runs PostgreSQL and radiusd as, when root


class StateDirError(RuntimeError):
    """The state cannot be moved out of the checkout; the message says what to do."""


def state_dir(checkout: Path, users: Sequence[str] = SERVICE_USERS, root: Path = STATE_ROOT) -> Path:
    """The demo's state directory of `checkout` (made if missing), where every one of `users` can reach it.

    A `var/` already in an unreachable checkout (an earlier failed `make demo`) is moved, not lost.
    """
    checkout = checkout.resolve()
    var = checkout / "var"
    if var.is_symlink():
        target = var.resolve()
        target.mkdir(mode=0o755, parents=True, exist_ok=True)
        return target
    if os.geteuid() != 0 or not unreadable_by_any(users, checkout):
        var.mkdir(exist_ok=True)
        return var
    if (var / "pg" / "postmaster.pid").exists():
        raise StateDirError(f"{var}/pg is in use: stop the demo (make demo-stop) before its state can move")
    target = root / relocated_name(checkout)
    for directory in (root, target):
        directory.mkdir(exist_ok=True)
        directory.chmod(0o755)
    if var.is_dir():
        for child in var.iterdir():
            shutil.move(child, target / child.name)
        var.rmdir()
    (target / "CHECKOUT").write_text(f"{checkout}\n")
    var.symlink_to(target)
    return target


def unreadable_by_any(users: Sequence[str], directory: Path) -> bool:
    return any(unreadable_by(user, [directory]) for user in users)


def relocated_name(checkout: Path) -> str:
    """One directory per checkout: its name (for people) and a hash of its path (two clones named alike)."""
    return f"{checkout.name[:24]}-{hashlib.sha256(str(checkout).encode()).hexdigest()[:12]}"


def main(argv: list[str] | None = None) -> int:
    """For scripts/demo: print the state directory of a checkout."""
    parser = argparse.ArgumentParser(prog="python -m devtools.state", description=__doc__)
    parser.add_argument("--checkout", type=Path, default=Path())
    args = parser.parse_args(argv)
    try:
        print(state_dir(args.checkout))
    except (StateDirError, OSError) as exc:
        print(f"{parser.prog}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

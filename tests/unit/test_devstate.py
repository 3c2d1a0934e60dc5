"""Where `make demo` keeps its state when the postgres and nobody users cannot reach the checkout (root's
0700 home): the probes are real (setpriv as those users), only the state root is a temporary directory."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.state import SERVICE_USERS, StateDirError, relocated_name, state_dir, unreadable_by_any

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="as anyone but root, the demo runs everything as them")


@pytest.fixture
def shared() -> Iterator[Path]:
    """A directory every user can reach (pytest's tmp_path is not: /tmp/pytest-of-root is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="hotspot-devstate-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_a_checkout_in_a_private_home_keeps_its_state_where_the_service_users_reach_it(shared: Path) -> None:
    home = shared / "home"
    checkout = home / "clone"
    (checkout / "var" / "demo").mkdir(parents=True)  # left by an earlier make demo that stopped at once
    (checkout / "var" / "demo" / "hotspot.toml").write_text("[database]\n")
    home.chmod(0o700)
    root = shared / "state"

    state = state_dir(checkout, root=root)

    assert state == root / relocated_name(checkout)
    assert (checkout / "var").is_symlink() and (checkout / "var").resolve() == state
    assert (state / "demo" / "hotspot.toml").read_text() == "[database]\n"  # moved, not lost
    assert (state / "CHECKOUT").read_text() == f"{checkout}\n"
    assert not unreadable_by_any(SERVICE_USERS, state / "demo")
    assert state_dir(checkout, root=root) == state  # the next make demo finds it again


def test_a_reachable_checkout_keeps_var_inside(shared: Path) -> None:
    checkout = shared / "clone"
    checkout.mkdir()
    root = shared / "state"

    assert state_dir(checkout, root=root) == checkout / "var"
    assert (checkout / "var").is_dir() and not (checkout / "var").is_symlink()
    assert not root.exists()


def test_a_running_cluster_is_not_moved(shared: Path) -> None:
    home = shared / "home"
    (home / "clone" / "var" / "pg").mkdir(parents=True)
    (home / "clone" / "var" / "pg" / "postmaster.pid").write_text("4242\n")
    home.chmod(0o700)

    with pytest.raises(StateDirError, match="make demo-stop"):
        state_dir(home / "clone", root=shared / "state")
    assert (home / "clone" / "var" / "pg" / "postmaster.pid").exists()


def test_clones_of_the_same_name_get_their_own_state() -> None:
    assert relocated_name(Path("/root/a/rlm_hotspot")) != relocated_name(Path("/root/b/rlm_hotspot"))
    assert relocated_name(Path("/root/a/rlm_hotspot")).startswith("rlm_hotspot-")

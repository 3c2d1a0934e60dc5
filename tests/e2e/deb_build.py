"""The Debian package that tests/e2e/test_deb.py installs, built while the rest of the run goes on.

`make deb` takes a minute or so of one core (pip, dpkg-deb), so when the run includes test_deb.py (and
RLM_HOTSPOT_DEB_TEST=1, as root) the build starts, niced, as soon as the tests are collected, and the
`deb` fixture waits for it. It builds into var/deb/ of the checkout, where scripts/build-deb keeps the
package and skips the build when the checkout's files did not change. RLM_HOTSPOT_DEB_FILE=<.deb> tests a
package built elsewhere instead.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[2]
OUT = CHECKOUT / "var" / "deb"
ENABLED = os.environ.get("RLM_HOTSPOT_DEB_TEST") == "1"
GIVEN = os.environ.get("RLM_HOTSPOT_DEB_FILE")


class BackgroundBuild:
    """One `make deb` into OUT, started at most once per run; only this process group is ever signalled."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.process is not None:
            return
        OUT.mkdir(parents=True, exist_ok=True)
        with (OUT / "build.out").open("wb") as out, (OUT / "build.log").open("wb") as log:
            self.process = subprocess.Popen(
                ["nice", "-n", "19", "make", "-s", "-C", str(CHECKOUT), "deb", f"DEB_OUT={OUT}"],
                stdout=out,
                stderr=log,
                start_new_session=True,
            )

    def package(self) -> Path:
        """Wait for the build; the .deb it made (or found up to date), or the test fails with the build's words."""
        self.start()
        assert self.process is not None
        self.process.wait()
        log = (OUT / "build.log").read_text(errors="replace")
        assert self.process.returncode == 0, f"make deb failed:\n{log[-3000:]}"
        return Path((OUT / "build.out").read_text().split()[-1])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait()


BUILD = BackgroundBuild()


def pytest_collection_finish(session: pytest.Session) -> None:
    wanted = any(item.path.name == "test_deb.py" for item in session.items)
    if wanted and ENABLED and not GIVEN and os.geteuid() == 0:
        BUILD.start()


def pytest_sessionfinish() -> None:
    BUILD.stop()  # a run that stopped early (-x, Ctrl-C) does not leave a build behind


@pytest.fixture(scope="session")
def deb() -> Path:
    return Path(GIVEN) if GIVEN else BUILD.package()

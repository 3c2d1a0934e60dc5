"""The wheel, as a user installs it: built with pip, installed into a fresh venv of Debian's python3, its
hotspotctl migrates a database and wires the module into a copy of Debian's raddb, which `freeradius -C`
then loads from that venv. Everything the code reads besides Python modules (migrations, FreeRADIUS
texts, portal templates, static files, translations) must be inside."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.cluster import PrivateCluster
from rlm_hotspot.radius import config as radconf
from tests.e2e.radius_harness import shared_dir, write_settings

CHECKOUT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed() -> Iterator[Path]:
    """A fresh venv (readable by freerad, who loads it) with the wheel of this checkout and its dependencies."""
    workdir = shared_dir("hotspot-wheel-")
    build_tree = CHECKOUT / "build"  # setuptools builds in the checkout
    left_before = build_tree.exists()
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(workdir / "dist"), str(CHECKOUT)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    assert not re.findall(r"\w+Warning\b.*", built.stdout + built.stderr), "setuptools warned while building"
    (wheel,) = (workdir / "dist").glob("rlm_hotspot-*.whl")
    venv = workdir / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True)
    # `binary`: the driver a pip install brings (the Debian package uses Debian's python3-psycopg2 instead)
    pip = subprocess.run(
        [venv / "bin" / "pip", "install", "-q", f"{wheel}[binary]"], capture_output=True, text=True, check=False
    )
    assert pip.returncode == 0, pip.stderr[-3000:]
    yield venv
    shutil.rmtree(workdir, ignore_errors=True)
    if not left_before:
        shutil.rmtree(build_tree, ignore_errors=True)


def run(venv: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """hotspotctl of the venv, away from the checkout (whose packages would shadow the installed ones)."""
    return subprocess.run(
        [venv / "bin" / "hotspotctl", *args], capture_output=True, text=True, check=False, cwd=venv.parent
    )


def test_the_wheel_carries_every_resource(installed: Path) -> None:
    site_packages = installed / radconf.SITE_PACKAGES
    probe = subprocess.run(
        [installed / "bin" / "python", "-c",
         "import rlm_hotspot, portal.i18n as i; from rlm_hotspot.db.migrate import available; "
         "from rlm_hotspot.radius.config import TEMPLATE_DIR; "
         "print(rlm_hotspot.__file__, len(available()), TEMPLATE_DIR, i.TRANSLATIONS, sep='\\n')"],
        capture_output=True, text=True, check=True, cwd=installed.parent,
    )  # fmt: skip
    package, migrations, templates, translations = probe.stdout.splitlines()
    assert package.startswith(str(site_packages))  # not this checkout
    assert int(migrations) == len(list((CHECKOUT / "sql").glob("*.sql")))
    shipped = {p.relative_to(templates) for p in Path(templates).rglob("*") if p.is_file()}
    assert shipped == {p.relative_to(radconf.TEMPLATE_DIR) for p in radconf.TEMPLATE_DIR.rglob("*") if p.is_file()}
    assert (Path(translations) / "ru" / "LC_MESSAGES" / "messages.mo").is_file()
    for name in ("templates/login.html", "static/portal.css", "static/portal.js"):
        assert (site_packages / "portal" / name).is_file(), name
    for name in (
        "templates/login.html", "templates/receipt.html", "static/console.css", "static/console.js",
        "static/receipt.css", "static/receipt-58.css", "static/receipt-80.css",
        "translations/ru/LC_MESSAGES/messages.mo",
    ):  # fmt: skip
        assert (site_packages / "console" / name).is_file(), name
    assert (site_packages / "rlm_hotspot" / "web_templates" / "web_page.html").is_file()  # both apps' pages extend it
    assert (site_packages / "rlm_hotspot" / "nas" / "coa" / "dictionary").is_file()  # the worker's RFC 5176 client
    assert not (site_packages / "devtools").exists(), "the development tools are not shipped"
    assert "--raddb" in run(installed, "radius", "install", "--help").stdout


def test_the_installed_hotspotctl_migrates_and_installs_the_module(
    installed: Path, pg_cluster: PrivateCluster, raddb: Path, key_file: Path
) -> None:
    pg_cluster.create_database("hotspot_wheel")
    settings = write_settings(raddb.parent, pg_cluster.url("hotspot_wheel"), key_file)
    upgraded = run(installed, "--config", str(settings), "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    assert "applied 001_initial" in upgraded.stdout
    initialised = run(installed, "--config", str(settings), "db", "init", "--currency", "EUR")
    assert "schema is up to date" in initialised.stdout, initialised.stdout + initialised.stderr

    wired = run(installed, "--config", str(settings), "radius", "install", "--raddb", str(raddb))

    assert wired.returncode == 0, wired.stdout + wired.stderr
    assert "passed" in wired.stdout
    module = (raddb / "mods-available" / radconf.INSTANCE).read_text()
    assert f'python_path = "{installed / radconf.SITE_PACKAGES}"' in module
    assert f'venv = "{installed}"' in module

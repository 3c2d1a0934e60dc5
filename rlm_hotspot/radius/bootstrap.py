"""Put the project's venv in front of Debian's packages inside radiusd's embedded Python.

rlm_python3 appends `python_path` *after* /usr/lib/python3/dist-packages and ignores .pth files, so
Debian's python3-* packages (an old `cryptography`, for one) would shadow the venv. This module is imported
before anything third-party and moves the venv's site-packages to the front of sys.path. It uses the
standard library only.
"""

from __future__ import annotations

import site
import sys
from pathlib import Path

SITE_PACKAGES = f"lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"


class BootstrapError(RuntimeError):
    """The venv named in the module's config (or next to the code) does not exist."""


def venv_site_packages(configured_venv: str | None, module_file: str = __file__) -> Path:
    """The site-packages to load: `venv = ...` from the config block, else found next to the code.

    In a checkout the venv is `<project>/.venv`; in a non-editable install the package itself lives in
    the venv's site-packages.
    """
    if configured_venv:
        candidate = Path(configured_venv) / SITE_PACKAGES
    else:
        package_parent = Path(module_file).resolve().parents[2]
        candidate = (
            package_parent if package_parent.name == "site-packages" else package_parent / ".venv" / SITE_PACKAGES
        )
    if not candidate.is_dir():
        raise BootstrapError(
            f"no Python venv at {candidate} (build it with `scripts/ensure-venv`, or set venv = <dir> in the "
            "module's config { } block)"
        )
    return candidate


def activate(site_packages: Path) -> None:
    """Add the venv (processing its .pth files) and put it first on sys.path; idempotent."""
    path = str(site_packages)
    site.addsitedir(path)
    sys.path.remove(path)
    sys.path.insert(0, path)

"""FreeRADIUS configuration for rlm_hotspot: written into an ISP's raddb, or into a private config dir.

The texts live in `freeradius-config/` (module instance, virtual server, dictionary, private radiusd.conf),
package data of rlm_hotspot.radius, with @PLACEHOLDERS@; this module fills them in. `hotspotctl radius
install|run` and the test suite all go through here, so there is one way to produce a configuration.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from sqlalchemy.engine import make_url

from rlm_hotspot.radius.bootstrap import SITE_PACKAGES
from rlm_hotspot.settings import SettingsError, load_settings

# the directory holding this rlm_hotspot package: the checkout, or site-packages when installed
CODE_DIR = Path(__file__).resolve().parents[2]
# package data (in a checkout, a link to freeradius-config/)
TEMPLATE_DIR = Path(str(resources.files(__package__) / "freeradius-config"))
STAGED_PYTHON = "python"  # in a private config dir: the code and venv, copied where radiusd's user reaches them
SYSTEM_RADDB = Path("/etc/freeradius/3.0")
INSTANCE = "hotspot"  # the python3 module instance, and the virtual server
SQL_INSTANCE = "hotspot_sql"  # the rlm_sql instance that makes a login's database call
DICTIONARY = "dictionary.hotspot"
POLICY = "policy.d/hotspot"
READABLE_FILTER = "mods-config/attr_filter/hotspot_readable"  # what the module reads (policy hotspot_readable_text)
OURS = "rlm_hotspot"  # every file we write says so in its first lines
RADIUSD = "freeradius"  # Debian's name for radiusd
# what the virtual server uses besides our module, copied from the system raddb into a private dir
STOCK_MODULES = ("pap", "chap", "expr", "attr_filter")
STOCK_CONFIG = ("mods-config/attr_filter", "policy.d/accounting")
PYTHON3_INSTANCE = re.compile(r"^\s*python3(\s+[\w.-]+)?\s*\{", re.MULTILINE)
RADIUSD_USER = re.compile(r"^\s*user\s*=\s*(\w[\w.-]*)", re.MULTILINE)  # security { user = freerad }
READY_LINE = "Ready to process requests"


class RadiusConfigError(RuntimeError):
    """The configuration cannot be written or does not pass `freeradius -C`; the message says why."""


@dataclass(frozen=True)
class Client:
    """A NAS allowed to talk to the server (clients.conf)."""

    name: str
    address: str
    secret: str
    # radiusd drops its Access-Requests without Message-Authenticator: the BlastRADIUS (CVE-2024-3596)
    # mitigation of FreeRADIUS 3.2.1; off only for a NAS that cannot send it
    require_message_authenticator: bool = True


@dataclass(frozen=True)
class Listen:
    """Ports the hotspot virtual server listens on itself."""

    auth_port: int
    acct_port: int
    address: str = "*"


# -- texts -------------------------------------------------------------------------------------------


def module_text(settings_file: Path, venv: Path | None = None) -> str:
    """The `python3 hotspot { }` instance, pointing at a venv (by default the one hotspotctl runs in), the
    code radiusd imports with it, and one settings file."""
    venv = default_venv(venv)
    return _fill(
        "mods-available/hotspot",
        PYTHON_PATH=str(python_path(venv)),
        SETTINGS_FILE=str(settings_file.resolve()),
        VENV=str(venv),
    )


def default_venv(venv: Path | None = None) -> Path:
    """The venv radiusd loads: the one given, else the one running us (a checkout's .venv, the package's)."""
    return (venv or Path(sys.prefix)).resolve()


def python_path(venv: Path) -> Path:
    """Where radiusd imports rlm_hotspot from: the venv's own copy when it has one installed (a wheel, the
    Debian package, a staged copy), else this code (a checkout's editable install)."""
    site_packages = venv / SITE_PACKAGES
    return site_packages if (site_packages / "rlm_hotspot" / "__init__.py").is_file() else CODE_DIR


def sql_module_text(settings_file: Path) -> str:
    """The `sql hotspot_sql { }` instance, connected to the database of the settings file (as the module is)."""
    try:
        settings = load_settings(settings_file, environ={})
    except SettingsError as exc:
        raise RadiusConfigError(f"settings file {settings_file}: {exc}") from None
    url = make_url(settings.database_url)
    # the libpq parameters psycopg2 gets from the same URL: several hosts (`?host=a:1&host=b:2`) become
    # host=a,b port=1,2, and target_session_attrs=read-write goes along, so rlm_sql follows the primary too
    _, libpq = url.get_dialect()().create_connect_args(url)
    parameters = {
        **libpq,
        "connect_timeout": settings.connect_timeout_s,
        # a transaction pooler refuses startup options: the role's own statement_timeout applies there
        "options": None if settings.transaction_pooling else f"-cstatement_timeout={settings.statement_timeout_ms}",
        "application_name": "rlm_hotspot_sql",
    }
    conninfo = " ".join(f"{name}={_conninfo_value(str(value))}" for name, value in parameters.items() if value)
    # a single-quoted string: FreeRADIUS expands no ${...} in it
    return _fill(f"mods-available/{SQL_INSTANCE}", CONNINFO=conninfo.replace("\\", "\\\\").replace("'", "\\'"))


def _conninfo_value(value: str) -> str:
    """A libpq connection string value, quoted when it must be."""
    if re.fullmatch(r"[\w./:@+=-]+", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


BUFFER_MODULE = "hotspot_buffer"  # detail writer of buffered accounting (`hotspotctl radius import` bills it)
# retired: the virtual server that billed the buffer inside radiusd, one entry at a time. `install` removes
# one an earlier install left, so that it and the importer never both bill the spool.
RETIRED_BUFFER_SITE = "sites-available/hotspot-buffer"
# every file `install` may write into a raddb (the *-available ones also get a link in *-enabled)
OUR_FILES = (
    f"mods-available/{INSTANCE}",
    f"mods-available/{SQL_INSTANCE}",
    f"mods-available/{BUFFER_MODULE}",
    f"sites-available/{INSTANCE}",
    RETIRED_BUFFER_SITE,
    POLICY,
    READABLE_FILTER,
    DICTIONARY,
)


# Buffered: the entry is written with radiusd's exact receive time (the detail file's Timestamp has whole
# seconds: an Accounting-On and the logins and Starts of its second would be ordered wrongly), and a reboot is
# seen at once (sql/026, 029): the NAS's guests may log in again before the importer has billed the
# Accounting-On that ends their old sessions. %l and %M are the seconds and microseconds of one receive time.
BUFFERED_ACCOUNTING = f"""update request {{
		&Hotspot-Received-At := "%l.%M"
	}}
	{BUFFER_MODULE}
	if (&Acct-Status-Type == Accounting-On || &Acct-Status-Type == Accounting-Off) {{
		"%{{{SQL_INSTANCE}:SELECT radius_restart_seen('%{{NAS-IP-Address}}', %l, %{{%{{Acct-Delay-Time}}:-0}}, %M)}}"
	}}"""


def site_text(listen: Listen | None = None, *, buffered: bool = False) -> str:
    """The `server hotspot { }` virtual server, with listen sections of its own when ports are given.

    `buffered`: accounting is written to a detail file and answered at once, then billed by `hotspotctl
    radius import` (docs/radius.md, "Durability and throughput"); otherwise it is billed before the answer.
    """
    sections = ""
    if listen is not None:
        sections = "".join(
            f"listen {{\n\ttype = {kind}\n\tipaddr = {listen.address}\n\tport = {port}\n}}\n"
            for kind, port in (("auth", listen.auth_port), ("acct", listen.acct_port))
        )
    return _fill("sites-available/hotspot", LISTEN=sections, ACCOUNTING=BUFFERED_ACCOUNTING if buffered else INSTANCE)


def buffer_files() -> dict[str, str]:
    """Relative path → text of the buffered-accounting writer module (the importer bills what it writes)."""
    return {f"mods-available/{BUFFER_MODULE}": _fill(f"mods-available/{BUFFER_MODULE}")}


def clients_text(clients: Iterable[Client]) -> str:
    """client { } blocks that send every listed NAS to the hotspot virtual server."""
    blocks = [f"# {OURS}: NAS clients of the hotspot virtual server\n"]
    for client in clients:
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", client.name)
        blocks.append(
            f"client {name} {{\n\tipaddr = {client.address}\n\tsecret = {_quoted(client.secret)}\n"
            f"\trequire_message_authenticator = {'yes' if client.require_message_authenticator else 'no'}\n"
            f"\tvirtual_server = {INSTANCE}\n\tshortname = {name}\n}}\n"
        )
    return "\n".join(blocks)


def _fill(template: str, **values: str) -> str:
    path = TEMPLATE_DIR / template
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise RadiusConfigError(f"{path} is missing: the rlm_hotspot package is incomplete") from None
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    return text


def _quoted(secret: str) -> str:
    if not secret or any(c in secret for c in "\r\n\0"):
        raise RadiusConfigError("a RADIUS secret must be non-empty and on one line")
    return '"' + secret.replace("\\", "\\\\").replace('"', '\\"') + '"'


# -- a private config dir (hotspotctl radius run, tests) -------------------------------------------


def write_private_confdir(
    confdir: Path,
    *,
    settings_file: Path,
    listen: Listen,
    clients: Iterable[Client],
    owner: str | None = None,
    venv: Path | None = None,
    system_raddb: Path = SYSTEM_RADDB,
    buffered: bool = False,
) -> Path:
    """A complete, self-contained config dir for a private radiusd; rewritten on every call.

    `owner` is the user radiusd will run as: the log and run dirs become theirs, and everything else
    readable by all (Debian's raddb files are 0640 freerad). When `owner` cannot read the code or the venv
    (a checkout in root's 0700 home), both are staged into the config dir (`stage_python`).
    """
    confdir = confdir.resolve()
    managed = ("mods-available", "mods-enabled", "sites-available", "sites-enabled", "policy.d", "mods-config")
    for sub in (*managed, STAGED_PYTHON):
        shutil.rmtree(confdir / sub, ignore_errors=True)
    for sub in ("mods-available", "mods-enabled", "sites-available", "sites-enabled", "policy.d", "log", "run"):
        (confdir / sub).mkdir(parents=True, exist_ok=True)
    for module in STOCK_MODULES:
        _copy_stock(system_raddb, confdir, f"mods-available/{module}")
        _link(confdir / "mods-enabled" / module, f"../mods-available/{module}")
    for stock in STOCK_CONFIG:
        _copy_stock(system_raddb, confdir, stock)
    (confdir / "radiusd.conf").write_text(_fill("private/radiusd.conf", CONFDIR=str(confdir)))
    (confdir / "clients.conf").write_text(clients_text(clients))
    (confdir / "dictionary").write_text(_fill(DICTIONARY))
    (confdir / POLICY).write_text(_fill(POLICY))
    (confdir / READABLE_FILTER).write_text(_fill(READABLE_FILTER))
    venv = default_venv(venv)
    if owner is not None and unreadable_by(owner, loaded_files(venv)):
        venv = stage_python(confdir / STAGED_PYTHON, venv)
    module = module_text(settings_file, venv)
    for name, text in ((INSTANCE, module), (SQL_INSTANCE, sql_module_text(settings_file))):
        (confdir / "mods-available" / name).write_text(text)
        _link(confdir / "mods-enabled" / name, f"../mods-available/{name}")
    (confdir / "sites-available" / INSTANCE).write_text(site_text(listen, buffered=buffered))
    _link(confdir / "sites-enabled" / INSTANCE, f"../sites-available/{INSTANCE}")
    if buffered:
        for relative, text in buffer_files().items():
            (confdir / relative).write_text(text)
            _link(confdir / _enabled(relative), f"../{relative}")
        (confdir / "log" / "radacct" / "hotspot").mkdir(parents=True, exist_ok=True)
    _make_readable(confdir)
    if owner is not None and os.geteuid() == 0:
        account = pwd.getpwnam(owner)
        for writable in (confdir, confdir / "log", confdir / "run", *(confdir / "log").glob("radacct/**")):
            os.chown(writable, account.pw_uid, account.pw_gid)
    return confdir


def loaded_files(venv: Path) -> list[Path]:
    """What radiusd's user must be able to read: the code it imports and the venv's packages."""
    return [python_path(venv) / "rlm_hotspot" / "__init__.py", venv / SITE_PACKAGES]


def stage_python(target: Path, venv: Path) -> Path:
    """Copy the venv's site-packages and this rlm_hotspot package into `target`, laid out as an installed venv,
    and return it.

    For an unprivileged radiusd that cannot reach them where they are (a checkout under a 0700 directory).
    Files readable by all are hard-linked when they can be (same file system), others are copied and made
    readable.
    """
    source, site_packages = venv / SITE_PACKAGES, target / SITE_PACKAGES
    skip = shutil.ignore_patterns("__pycache__", "__editable__*")  # editable finders point back at the checkout

    def skip_in_venv(directory: str, names: list[str]) -> set[str]:  # an installed rlm_hotspot: this code wins
        return skip(directory, names) | ({"rlm_hotspot"} if Path(directory) == source else set())

    shutil.copytree(source, site_packages, ignore=skip_in_venv, copy_function=_link_or_copy)
    shutil.copytree(CODE_DIR / "rlm_hotspot", site_packages / "rlm_hotspot", ignore=skip, copy_function=_link_or_copy)
    return target


def _link_or_copy(source: str, destination: str) -> None:
    """A hard link when the file is readable by all already (`_make_readable` then leaves it as it is)."""
    if os.stat(source).st_mode & 0o644 == 0o644:
        try:
            os.link(source, destination)
            return
        except OSError:  # another file system, or links not allowed here
            pass
    shutil.copyfile(source, destination)


def _copy_stock(system_raddb: Path, confdir: Path, relative: str) -> None:
    source = system_raddb / relative
    if not source.exists():
        raise RadiusConfigError(f"{source} is missing: install Debian's freeradius package")
    target = confdir / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    else:
        shutil.copyfile(source, target)


def _link(link: Path, target: str) -> None:
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target)


def _make_readable(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | (0o755 if path.is_dir() else 0o644))


def radiusd_command(confdir: Path, *, user: str | None = None, threaded: bool = False) -> list[str]:
    """radiusd in the foreground, logging to stdout; as `user` (via setpriv) when we are root.

    `-X` is single-threaded and fully verbose; `threaded` keeps the thread pool (`-f -xx`), as in production.
    """
    flags = ["-f", "-xx", "-l", "stdout"] if threaded else ["-X"]
    command = [RADIUSD, *flags, "-d", str(confdir)]
    if user is not None and os.geteuid() == 0:
        command = [*as_user(user), *command]
    return command


def as_user(user: str) -> list[str]:
    """Prefix that runs a command as `user` with their primary group and no other."""
    group = primary_group(user)
    return ["setpriv", f"--reuid={user}", f"--regid={group}", "--clear-groups"]


def primary_group(user: str) -> str:
    return grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name


def unreadable_by(user: str, paths: Iterable[Path]) -> list[Path]:
    """The paths `user` cannot read (they must all be readable by the radiusd user)."""
    if os.geteuid() != 0:
        return [p for p in paths if not os.access(p, os.R_OK)]
    return [
        p
        for p in paths
        if subprocess.run([*as_user(user), "test", "-r", str(p)], check=False, capture_output=True).returncode != 0
    ]


# -- an ISP's raddb (hotspotctl radius install) -------------------------------------------------------


@dataclass
class Installation:
    """What `install` changed, so that a failed check can be rolled back exactly."""

    raddb: Path
    # path -> content before (None: absent; a str: the target of a link)
    previous: dict[Path, bytes | str | None] = field(default_factory=dict)

    def write(self, path: Path, text: str, *, private: bool = False) -> None:
        """Write a file readable by all, or (`private`) by its directory's group only (freerad on Debian)."""
        self._remember(path)
        path.write_text(text)
        if private and os.geteuid() == 0:
            os.chown(path, 0, path.parent.stat().st_gid)
        path.chmod(0o640 if private else 0o644)

    def edit(self, path: Path, text: str) -> None:
        """Change the text of someone else's file; its owner and mode stay (Debian's are 0640 freerad)."""
        self._remember(path)
        path.write_text(text)

    def remove(self, path: Path) -> None:
        """Delete a file or link of ours (a failed check puts it back)."""
        self._remember(path)
        path.unlink()

    def link(self, link: Path, target: str) -> None:
        self._remember(link)
        _link(link, target)

    def _remember(self, path: Path) -> None:
        if path not in self.previous:
            if path.is_symlink():
                self.previous[path] = os.readlink(path)
            else:
                self.previous[path] = path.read_bytes() if path.exists() else None

    def roll_back(self) -> None:
        for path, content in self.previous.items():
            if path.is_symlink() or (path.exists() and content is None):
                path.unlink()
            if isinstance(content, str):
                path.symlink_to(content)  # a link we removed
            elif content is not None:
                path.write_bytes(content)  # in place: an edited file keeps its owner and mode

    @property
    def changed(self) -> list[Path]:
        return list(self.previous)


def install(
    raddb: Path,
    *,
    settings_file: Path,
    venv: Path | None = None,
    listen: Listen | None = None,
    buffered: bool = False,
) -> tuple[Installation, str]:
    """Wire the modules (python3 and its rlm_sql), the virtual server and the dictionary into a raddb, then check it.

    Nothing else is touched except one `$INCLUDE dictionary.hotspot` line in raddb/dictionary (the file
    FreeRADIUS keeps for local attributes), and the retired hotspot-buffer server of an earlier install is
    taken out (`hotspotctl radius import` bills the files it left). If `freeradius -C` fails, every change is
    undone.
    Returns what changed and the check's output.
    """
    raddb = raddb.resolve()
    for needed in (
        "radiusd.conf",
        "mods-available",
        "mods-enabled",
        "sites-available",
        "sites-enabled",
        "policy.d",
        "mods-config/attr_filter",
    ):
        if not (raddb / needed).exists():
            raise RadiusConfigError(f"{raddb} is not a FreeRADIUS config dir: {needed} is missing")
    if not settings_file.is_file():
        raise RadiusConfigError(f"settings file {settings_file} not found")
    _refuse_foreign(raddb)
    _refuse_unreadable(raddb, default_venv(venv))
    change = Installation(raddb)
    change.write(raddb / "mods-available" / INSTANCE, module_text(settings_file, venv))
    change.link(raddb / "mods-enabled" / INSTANCE, f"../mods-available/{INSTANCE}")
    # it holds the database password: readable by radiusd's group only, like Debian's own sql module
    change.write(raddb / "mods-available" / SQL_INSTANCE, sql_module_text(settings_file), private=True)
    change.link(raddb / "mods-enabled" / SQL_INSTANCE, f"../mods-available/{SQL_INSTANCE}")
    change.write(raddb / "sites-available" / INSTANCE, site_text(listen, buffered=buffered))
    change.link(raddb / "sites-enabled" / INSTANCE, f"../sites-available/{INSTANCE}")
    _retire_buffer_site(change)
    if buffered:  # the buffer directory is made by radiusd (detail writer) under Debian's radacctdir
        for relative, text in buffer_files().items():
            change.write(raddb / relative, text)
            change.link(raddb / _enabled(relative), f"../{relative}")
    change.write(raddb / POLICY, _fill(POLICY))
    change.write(raddb / READABLE_FILTER, _fill(READABLE_FILTER))
    change.write(raddb / DICTIONARY, _fill(DICTIONARY))
    local_dictionary = raddb / "dictionary"
    existing = local_dictionary.read_text() if local_dictionary.exists() else ""
    include = f"$INCLUDE {DICTIONARY}"
    if include not in existing.splitlines():
        change.edit(
            local_dictionary, existing + ("" if existing.endswith("\n") or not existing else "\n") + include + "\n"
        )
    ok, output = check(raddb)
    if not ok:
        change.roll_back()
        raise RadiusConfigError(f"`{RADIUSD} -C -d {raddb}` failed, nothing was changed:\n{tail(output)}")
    return change, output


def _retire_buffer_site(change: Installation) -> None:
    """Take out the hotspot-buffer server an earlier install wrote (ours only) and its link: it billed the
    buffer inside radiusd, and must not claim the files the importer bills."""
    site, enabled = change.raddb / RETIRED_BUFFER_SITE, change.raddb / _enabled(RETIRED_BUFFER_SITE)
    if enabled.is_symlink() and enabled.resolve() == site.resolve():
        change.remove(enabled)
    if site.is_file() and OURS in site.read_text(errors="replace")[:400]:
        change.remove(site)


def uninstall(raddb: Path) -> list[Path]:
    """Take out everything `install` may have written (and only that): our files, the links enabling them,
    and the `$INCLUDE dictionary.hotspot` line, so that the raddb is as it was before. Returns what changed.

    For the package's removal: the module loads its code from the package's venv, so a FreeRADIUS left with
    it enabled would not start again.
    """
    raddb = raddb.resolve()
    changed = []
    for relative in OUR_FILES:
        path, enabled = raddb / relative, raddb / _enabled(relative)
        if not path.is_file() or path.is_symlink() or OURS not in path.read_text(errors="replace")[:400]:
            continue
        if enabled != path and enabled.is_symlink() and enabled.resolve() == path.resolve():
            enabled.unlink()
            changed.append(enabled)
        path.unlink()
        changed.append(path)
    local_dictionary = raddb / "dictionary"
    if local_dictionary.is_file():
        lines = local_dictionary.read_text().splitlines(keepends=True)
        kept = [line for line in lines if line.rstrip("\n") != f"$INCLUDE {DICTIONARY}"]
        if kept != lines:
            local_dictionary.write_text("".join(kept))
            changed.append(local_dictionary)
    return changed


def _enabled(relative: str) -> str:
    """mods-available/x -> mods-enabled/x (other paths are never enabled, and map to themselves)."""
    return relative.replace("-available/", "-enabled/", 1)


def _refuse_foreign(raddb: Path) -> None:
    """One python3 instance per server (a second aborts 3.2.1), and never overwrite someone else's file."""
    for enabled in sorted((raddb / "mods-enabled").iterdir()):
        if enabled.name == INSTANCE or not enabled.is_file():
            continue
        if PYTHON3_INSTANCE.search(enabled.read_text(errors="replace")):
            raise RadiusConfigError(
                f"{enabled} already enables a python3 module; FreeRADIUS 3.2.1 runs only one python3 instance "
                "(a second aborts the server). Disable it first, or merge its hooks into one module."
            )
    for ours in (raddb / relative for relative in OUR_FILES):
        if ours.exists() and OURS not in ours.read_text(errors="replace")[:400]:
            raise RadiusConfigError(f"{ours} exists and was not written by {OURS}; rename it first")


def _refuse_unreadable(raddb: Path, venv: Path) -> None:
    """Say who cannot read what before `-C` fails on an import (a checkout under root's 0700 home)."""
    match = RADIUSD_USER.search((raddb / "radiusd.conf").read_text(errors="replace"))
    if match is None or os.geteuid() != 0:
        return
    try:
        unreadable = unreadable_by(match.group(1), loaded_files(venv))
    except KeyError:  # no such user: -C says so
        return
    if unreadable:
        raise RadiusConfigError(
            f"radiusd runs as {match.group(1)}, who cannot read {', '.join(map(str, unreadable))}: install the "
            "rlm-hotspot package, or give --venv with a venv it can read (a wheel installed there)"
        )


def check(raddb: Path) -> tuple[bool, str]:
    """`freeradius -C`: parse the config and instantiate every module (ours checks the database too)."""
    try:
        result = subprocess.run(
            [RADIUSD, "-C", "-X", "-d", str(raddb)], capture_output=True, text=True, check=False, timeout=60
        )
    except FileNotFoundError:
        raise RadiusConfigError(f"{RADIUSD} is not installed (apt-get install freeradius freeradius-python3)") from None
    return result.returncode == 0, result.stdout + result.stderr


def tail(output: str, lines: int = 15) -> str:
    """The end of radiusd's output, where the reason is (our own log lines first, if any)."""
    ours = [line for line in output.splitlines() if OURS in line or "rror" in line]
    return "\n".join((ours or output.splitlines())[-lines:])

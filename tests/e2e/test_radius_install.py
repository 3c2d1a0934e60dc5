"""`hotspotctl radius install` on a copy of Debian's /etc/freeradius/3.0, checked by the real `freeradius -C`."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from rlm_hotspot.cli.main import cli
from tests.e2e.radius_harness import write_settings


def snapshot(root: Path) -> dict[str, str]:
    """Every file and link under root, with its content or target."""
    return {
        str(p.relative_to(root)): (f"-> {p.readlink()}" if p.is_symlink() else p.read_text(errors="replace"))
        for p in sorted(root.rglob("*"))
        if p.is_symlink() or p.is_file()
    }


def install(raddb: Path, settings: Path, venv: Path, *options: str, ok: bool = True) -> Result:
    command = ["--config", str(settings), "radius", "install", "--raddb", str(raddb), "--venv", str(venv), *options]
    result = CliRunner().invoke(cli, command)
    assert (result.exit_code == 0) is ok, result.output
    return result


def test_install_wires_the_module_and_leaves_the_rest_alone(
    raddb: Path, readable_venv: Path, radius_database: str, key_file: Path
) -> None:
    settings = write_settings(raddb.parent, radius_database, key_file)
    before = snapshot(raddb)
    result = install(raddb, settings, readable_venv)
    assert "passed" in result.output
    install(raddb, settings, readable_venv)  # again: same result
    after = snapshot(raddb)
    added = {"mods-available/hotspot", "mods-enabled/hotspot", "sites-available/hotspot", "sites-enabled/hotspot"}
    added |= {"mods-available/hotspot_sql", "mods-enabled/hotspot_sql", "policy.d/hotspot", "dictionary.hotspot"}
    added |= {"mods-config/attr_filter/hotspot_readable"}
    assert set(after) - set(before) == added
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"dictionary"}
    assert after["dictionary"] == before["dictionary"].rstrip("\n") + "\n$INCLUDE dictionary.hotspot\n"
    assert after["sites-enabled/hotspot"] == "-> ../sites-available/hotspot"
    assert f'settings = "{settings}"' in after["mods-available/hotspot"]
    assert "dbname=hotspot_radius user=postgres" in after["mods-available/hotspot_sql"]
    sql_module = (raddb / "mods-available" / "hotspot_sql").stat()  # may hold the database password
    assert sql_module.st_mode & 0o777 == 0o640
    assert sql_module.st_gid == (raddb / "mods-available").stat().st_gid


def test_uninstall_puts_the_raddb_back_as_it_was(
    raddb: Path, readable_venv: Path, radius_database: str, key_file: Path
) -> None:
    settings = write_settings(raddb.parent, radius_database, key_file)
    before, dictionary_mode = snapshot(raddb), (raddb / "dictionary").stat().st_mode  # Debian's: 0640 freerad
    install(raddb, settings, readable_venv, "--buffered-accounting")  # every file install may write

    removed = CliRunner().invoke(cli, ["radius", "uninstall", "--raddb", str(raddb)])

    assert removed.exit_code == 0, removed.output
    assert "restored" in removed.output and "passed" in removed.output
    assert snapshot(raddb) == before
    assert (raddb / "dictionary").stat().st_mode == dictionary_mode
    again = CliRunner().invoke(cli, ["radius", "uninstall", "--raddb", str(raddb)])
    assert again.exit_code == 0 and "nothing to remove" in again.output, again.output


def test_uninstall_leaves_a_file_of_the_same_name_that_is_not_ours(raddb: Path) -> None:
    foreign = raddb / "policy.d" / "hotspot"
    foreign.write_text("# the admin's own policy\n")

    removed = CliRunner().invoke(cli, ["radius", "uninstall", "--raddb", str(raddb)])

    assert removed.exit_code == 0 and "nothing to remove" in removed.output, removed.output
    assert foreign.read_text() == "# the admin's own policy\n"


def test_a_failing_check_rolls_everything_back(raddb: Path, readable_venv: Path, key_file: Path) -> None:
    settings = write_settings(raddb.parent, "postgresql+psycopg2://postgres@/nowhere?host=/nonexistent", key_file)
    before = snapshot(raddb)
    result = install(raddb, settings, readable_venv, ok=False)
    assert "failed, nothing was changed" in result.output
    assert "rlm_hotspot: cannot start: cannot use the database" in result.output
    assert snapshot(raddb) == before


def test_a_second_python3_instance_is_refused(
    raddb: Path, readable_venv: Path, radius_database: str, key_file: Path
) -> None:
    (raddb / "mods-enabled" / "python3").symlink_to("../mods-available/python3")
    before = snapshot(raddb)
    result = install(raddb, write_settings(raddb.parent, radius_database, key_file), readable_venv, ok=False)
    assert "already enables a python3 module" in result.output
    assert snapshot(raddb) == before


def test_buffered_accounting_writes_the_buffer_for_the_importer_and_no_reader_inside_radiusd(
    raddb: Path, readable_venv: Path, radius_database: str, key_file: Path
) -> None:
    settings = write_settings(raddb.parent, radius_database, key_file)
    result = install(raddb, settings, readable_venv, "--buffered-accounting")

    after = snapshot(raddb)
    assert after["mods-enabled/hotspot_buffer"] == "-> ../mods-available/hotspot_buffer"
    assert "hotspot_buffer" in after["sites-available/hotspot"]  # accounting is written to the buffer
    assert not any("hotspot-buffer" in name for name in after)  # and billed by `hotspotctl radius import`
    assert "hotspot-radius-import" in result.output


RETIRED_READER = """# rlm_hotspot: bills the accounting buffer (see mods-available/hotspot_buffer), in file order.
server hotspot-buffer {
\tlisten {
\t\ttype = detail
\t\tfilename = ${radacctdir}/hotspot/buffer.detail
\t\tload_factor = 100
\t}
\taccounting {
\t\thotspot
\t}
}
"""


def test_an_upgrade_retires_the_reader_an_earlier_install_left_inside_radiusd(
    raddb: Path, readable_venv: Path, radius_database: str, key_file: Path
) -> None:
    """An earlier `install --buffered-accounting` enabled the hotspot-buffer server: left there, it and the
    importer would both claim the buffer's files. Installing again takes it out, whatever the mode."""
    settings = write_settings(raddb.parent, radius_database, key_file)
    install(raddb, settings, readable_venv, "--buffered-accounting")
    (raddb / "sites-available" / "hotspot-buffer").write_text(RETIRED_READER)
    (raddb / "sites-enabled" / "hotspot-buffer").symlink_to("../sites-available/hotspot-buffer")

    result = install(raddb, settings, readable_venv, "--buffered-accounting")

    assert not any("hotspot-buffer" in name for name in snapshot(raddb))
    assert f"removed {raddb / 'sites-enabled' / 'hotspot-buffer'}" in result.output
    assert "`hotspotctl radius import` bills the files it left" in result.output


def test_a_failed_check_puts_the_retired_reader_back_as_it_was(
    raddb: Path, readable_venv: Path, radius_database: str, key_file: Path
) -> None:
    settings = write_settings(raddb.parent, radius_database, key_file)
    install(raddb, settings, readable_venv, "--buffered-accounting")
    (raddb / "sites-available" / "hotspot-buffer").write_text(RETIRED_READER)
    (raddb / "sites-enabled" / "hotspot-buffer").symlink_to("../sites-available/hotspot-buffer")
    (raddb / "sites-enabled" / "broken").write_text("server broken {\n")  # -C fails on someone else's file
    before = snapshot(raddb)

    install(raddb, settings, readable_venv, "--buffered-accounting", ok=False)

    assert snapshot(raddb) == before

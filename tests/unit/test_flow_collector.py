"""`hotspotctl flows config` output: nfacctd.conf and pretag.map, and clear errors for bad settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowimport.collector import CollectorConfigError, build_spec, render_nfacctd_conf, render_pretag_map


def spec(tmp_path: Path, **overrides: object):  # type: ignore[no-untyped-def]
    values: dict[str, object] = {
        "client_networks": ["10.1.0.0/16"],
        "free_networks": ["10.99.0.0/24", "10.1.0.1/32", "10.99.0.0/24"],
        "collector": "0.0.0.0:2100",
        "spool": tmp_path / "spool",
        "config_dir": tmp_path / "etc",
    }
    return build_spec(**{**values, **overrides})  # type: ignore[arg-type]


def test_the_pretag_map_tags_free_networks_and_client_to_client_before_everything_else(tmp_path: Path) -> None:
    lines = render_pretag_map(spec(tmp_path)).splitlines()
    assert lines[1:] == [
        "set_tag=1 filter='net 10.99.0.0/24'",
        "set_tag=1 filter='net 10.1.0.1/32'",
        "set_tag=1 filter='src net 10.1.0.0/16 and dst net 10.1.0.0/16'",
        "set_tag=2 filter='ip or ip6'",
    ]


def test_nfacctd_conf_follows_the_verified_recipe(tmp_path: Path) -> None:
    conf = render_nfacctd_conf(spec(tmp_path, client_networks=["10.1.0.0/16", "10.2.0.0/16"]))
    for line in (
        "nfacctd_port: 2100",
        "nfacctd_time_new: true",
        "timestamps_utc: true",
        "plugins: print[down], print[up]",
        "aggregate[down]: dst_host, tag",
        "aggregate_filter[down]: (dst net 10.1.0.0/16 or dst net 10.2.0.0/16) and not dst net 10.1.0.1/32",
        "aggregate_filter[up]: (src net 10.1.0.0/16 or src net 10.2.0.0/16) and not src net 10.1.0.1/32",
        "print_history: 1m",
        "print_refresh_time: 60",
        "print_output_file_append: true",
        f"print_output_file[up]: {tmp_path / 'spool'}/up-%Y%m%d-%H%M%S.json",
    ):
        assert line in conf.splitlines()
    assert "plugin_buffer_size" not in conf.replace("! leave plugin_buffer_size", "")
    assert "nfacctd_templates_file" not in conf  # crashes 1.7.7 when templates are re-announced


def test_memory_source_sizes_the_table(tmp_path: Path) -> None:
    conf = render_nfacctd_conf(spec(tmp_path, source="memory"))
    assert "plugins: memory[down], memory[up]" in conf
    assert f"imt_path[down]: {tmp_path / 'etc' / 'down.pipe'}" in conf
    assert "imt_mem_pools_number: 64" in conf and "print_output" not in conf


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"client_networks": ["10.1.0.0/33"]}, "bad network '10.1.0.0/33'"),
        ({"client_networks": ["10.1.0.1/16"]}, "host bits set"),
        ({"free_networks": ["walled.garden.example"]}, "bad network"),
        ({"client_networks": []}, "at least one client network"),
        ({"collector": "2100"}, "IP:PORT"),
        ({"collector": "0.0.0.0:70000"}, "1..65535"),
        ({"bin_minutes": 0}, "whole number of minutes"),
    ],
)
def test_bad_settings_are_refused_with_a_clear_message(tmp_path: Path, overrides: dict[str, object],
                                                       message: str) -> None:
    with pytest.raises(CollectorConfigError, match=message):
        spec(tmp_path, **overrides)

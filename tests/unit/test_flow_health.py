"""Kernel UDP drops on the collector port, read from /proc/net/udp{,6}."""

from __future__ import annotations

from pathlib import Path

from flowimport.health import udp_drops

HEADER = (
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref "
    "pointer drops\n"
)


def socket_line(local: str, drops: int) -> str:
    return f"  7: {local} 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 ffff 0 {drops}\n"


def test_drops_are_summed_over_ipv4_and_ipv6_sockets_of_the_port(tmp_path: Path) -> None:
    udp, udp6 = tmp_path / "udp", tmp_path / "udp6"
    udp.write_text(HEADER + socket_line("0100007F:0834", 5) + socket_line("0100007F:0835", 99))
    udp6.write_text(HEADER + socket_line("00000000000000000000000000000000:0834", 2))
    assert udp_drops(0x834, (udp, udp6)) == 7


def test_no_socket_on_the_port_is_none_not_zero(tmp_path: Path) -> None:
    udp = tmp_path / "udp"
    udp.write_text(HEADER)
    assert udp_drops(2100, (udp, tmp_path / "missing")) is None

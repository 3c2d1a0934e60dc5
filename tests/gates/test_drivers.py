"""Gate drivers without a firewall: a stand-in program records the exact commands they run."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import pytest

from rlm_hotspot.nas.gates import GateError, make_gate
from rlm_hotspot.nas.gates.opennds import FasRequestError

RECORDER = """#!{python}
import json, sys
with open({log!r}, "a") as log:
    log.write(json.dumps({{"argv": sys.argv[1:], "stdin": "" if sys.stdin.isatty() else sys.stdin.read()}}) + "\\n")
sys.stdout.write({stdout!r})
sys.stderr.write({stderr!r})
sys.exit({code})
"""


class Recorder:
    """A program that logs its arguments and standard input, then answers as told."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "fake-tool"
        self.log = folder / "calls.jsonl"
        self.answer()

    def answer(self, code: int = 0, stdout: str = "", stderr: str = "") -> None:
        self.path.write_text(
            RECORDER.format(python=sys.executable, log=str(self.log), stdout=stdout, stderr=stderr, code=code)
        )
        self.path.chmod(0o755)

    def calls(self) -> list[dict[str, object]]:
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        self.log.unlink(missing_ok=True)
        return [json.loads(line) for line in lines]


@pytest.fixture
def tool(tmp_path: Path) -> Recorder:
    return Recorder(tmp_path)


def test_unknown_driver_and_options_fail_at_startup() -> None:
    with pytest.raises(GateError, match="unknown gate driver 'iptables'"):
        make_gate("iptables", {})
    with pytest.raises(GateError, match="unknown option"):
        make_gate("nftables", {"sett": "allowed"})
    with pytest.raises(GateError, match="'allow' is required"):
        make_gate("command", {"deny": "x"})
    with pytest.raises(GateError, match="bad placeholder"):
        make_gate("command", {"allow": "gate {ipaddr}", "deny": "x"})


def test_nftables_open_renews_the_element_in_one_batch(tool: Recorder) -> None:
    gate = make_gate("nftables", {"prefix": "", "nft": str(tool.path)})
    gate.open("10.77.0.2", None, 600)
    (call,) = tool.calls()
    assert call["argv"] == ["-f", "-"]
    assert call["stdin"] == (
        "add element inet captive allowed_clients { 10.77.0.2 }\n"
        "delete element inet captive allowed_clients { 10.77.0.2 }\n"
        "add element inet captive allowed_clients { 10.77.0.2 timeout 600s }\n"
    )


def test_nftables_binds_the_mac_when_configured(tool: Recorder) -> None:
    gate = make_gate("nftables", {"nft": str(tool.path), "bind_mac": "yes", "table": "hotspot"})
    gate.close("10.77.0.2", "02-00-00-77-00-0A")
    assert tool.calls()[0]["argv"] == [
        "delete",
        "element",
        "inet",
        "hotspot",
        "allowed_pairs",
        "{ 10.77.0.2 . 02:00:00:77:00:0a }",
    ]
    with pytest.raises(GateError, match="no MAC is known"):
        gate.open("10.77.0.2", None, 60)


def test_nftables_close_and_lookup_of_a_missing_element(tool: Recorder) -> None:
    gate = make_gate("nftables", {"nft": str(tool.path)})
    tool.answer(code=1, stderr="Error: Could not process rule: No such file or directory\n")
    gate.close("10.77.0.2", None)  # already closed: fine
    assert gate.is_open("10.77.0.2", None) is False
    tool.answer(code=1, stderr="Error: Could not process rule: Operation not permitted\n")
    with pytest.raises(GateError, match="Operation not permitted"):
        gate.close("10.77.0.2", None)


def test_values_are_validated_before_any_command(tool: Recorder) -> None:
    gate = make_gate("nftables", {"nft": str(tool.path)})
    for ip in ("10.77.0.2 }; flush ruleset; {", "", "::1"):
        with pytest.raises(GateError, match="not an IPv4"):
            gate.open(ip, None, 60)
    with pytest.raises(GateError, match="positive"):
        gate.open("10.77.0.2", None, 0)
    assert tool.calls() == []


def test_command_gate_fills_placeholders_per_word_without_a_shell(tool: Recorder) -> None:
    gate = make_gate(
        "command",
        {
            "allow": f"{tool.path} allow --ip={{ip}} {{mac}} {{seconds}}",
            "deny": f"{tool.path} deny {{ip}}",
            "check": f"{tool.path} check {{ip}}",
        },
    )
    gate.open("10.77.0.2", "02-00-00-77-00-02", 90)
    gate.close("10.77.0.2", None)
    assert [call["argv"] for call in tool.calls()] == [
        ["allow", "--ip=10.77.0.2", "02:00:00:77:00:02", "90"],
        ["deny", "10.77.0.2"],
    ]
    assert gate.is_open("10.77.0.2", None) is True
    tool.answer(code=1)
    assert gate.is_open("10.77.0.2", None) is False
    tool.answer(code=3, stderr="boom")
    with pytest.raises(GateError, match=r"failed \(exit 3\).*boom"):
        gate.open("10.77.0.2", None, 90)


def test_command_gate_errors_are_clear(tmp_path: Path) -> None:
    missing = make_gate("command", {"allow": str(tmp_path / "nope") + " {ip}", "deny": "true"})
    with pytest.raises(GateError, match="not found"):
        missing.open("10.77.0.2", None, 60)
    slow = make_gate("command", {"allow": "sleep 5", "deny": "true", "timeout": "0.2"})
    with pytest.raises(GateError, match=r"timed out after 0\.2 s"):
        slow.open("10.77.0.2", None, 60)
    with pytest.raises(GateError, match="no 'check' command"):
        slow.is_open("10.77.0.2", None)


def test_none_gate_lets_everyone_through() -> None:
    gate = make_gate("none", {})
    gate.open("10.77.0.2", None, 60)
    gate.close("10.77.0.2", None)
    assert gate.is_open("10.77.0.2", None)


def test_opennds_ndsctl_commands(tool: Recorder) -> None:
    gate = make_gate("opennds", {"ndsctl": f"{tool.path} --via nsenter"})
    tool.answer(stdout="Client 10.77.0.150 authenticated\n")
    gate.open("10.77.0.150", "02:00:00:77:00:02", 61)
    tool.answer(stdout='{"state":"Authenticated","ip":"10.77.0.150"}')
    assert gate.is_open("10.77.0.150", None)
    gate.close("10.77.0.150", None)
    assert [call["argv"] for call in tool.calls()] == [
        ["--via", "nsenter", "auth", "02:00:00:77:00:02", "2"],
        ["--via", "nsenter", "json", "10.77.0.150"],
        ["--via", "nsenter", "deauth", "10.77.0.150"],
    ]
    tool.answer(stdout="Client 10.77.0.150 not found\n")
    with pytest.raises(GateError, match="did not authenticate"):
        gate.open("10.77.0.150", None, 60)


FAS_TEXT = (
    "hid=abc123, clientip=10.77.0.150, clientmac=02:00:00:77:00:02, client_type=cpd_can, gatewayname=lab%20gw, "
    "gatewayurl=http%3A%2F%2F10.77.0.1%3A2050%2F, version=9.10.0, gatewayaddress=10.77.0.1:2050, "
    "gatewaymac=02:00:00:77:00:01, originurl=http%3A%2F%2F10.88.0.2%2Fhello.txt, clientif=veth-gw-cl, themespec="
)


def fas_query(text: str) -> dict[str, str]:
    return {"fas": base64.b64encode(text.encode()).decode().rstrip("=")}  # openNDS may drop the padding


def test_fas_level1_request_and_auth_redirect() -> None:
    gate = make_gate("opennds", {"faskey": "s3cretkey", "gateway_address": "10.77.0.1:2050"})
    request = gate.fas_request(fas_query(FAS_TEXT))  # type: ignore[attr-defined]
    assert (request.client_ip, request.client_mac, request.hid) == ("10.77.0.150", "02:00:00:77:00:02", "abc123")
    assert request.origin_url == "http://10.88.0.2/hello.txt"
    # printf 'abc123s3cretkey' | sha256sum
    token = "c7076ceacf511257c09eb53fe80e6fd821cc22965407e9bf7339938c02cb7c8c"
    url = gate.auth_redirect(request, "http://10.88.0.2/hello.txt", custom="session=7")  # type: ignore[attr-defined]
    assert url == (
        f"http://10.77.0.1:2050/opennds_auth/?tok={token}&redir=http%3A%2F%2F10.88.0.2%2Fhello.txt"
        f"&custom={base64.b64encode(b'session=7').decode().replace('=', '%3D')}"
    )


def test_fas_level0_request() -> None:
    gate = make_gate("opennds", {})
    query = {
        "authaction": "http://10.77.0.1:2050/opennds_auth/?clientip=10.77.0.150",
        "gatewayname": "lab",
        "tok": "f00d",
        "redir": "http://10.88.0.2/",
    }
    request = gate.fas_request(query)  # type: ignore[attr-defined]
    assert (request.client_ip, request.client_mac, request.tok) == ("10.77.0.150", None, "f00d")
    assert (
        gate.auth_redirect(request, "http://x/")
        == "http://10.77.0.1:2050/opennds_auth/?tok=f00d&redir=http%3A%2F%2Fx%2F"
    )  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"fas": "%%%not base64"},
        fas_query("clientip=10.77.0.150, gatewayaddress=10.77.0.1:2050"),  # no hid
        fas_query(FAS_TEXT.replace("10.77.0.1:2050", "203.0.113.9:80")),  # another gateway: no open redirect
        fas_query(FAS_TEXT.replace("clientip=10.77.0.150", "clientip=10.77.0.150;rm")),
    ],
)
def test_fas_requests_that_are_refused(query: dict[str, str]) -> None:
    gate = make_gate("opennds", {"faskey": "k", "gateway_address": "10.77.0.1:2050"})
    with pytest.raises(FasRequestError):
        gate.fas_request(query)  # type: ignore[attr-defined]


def test_a_fas_request_must_come_from_the_client_it_names_unless_the_check_is_off() -> None:
    checked = make_gate("opennds", {"gateway_address": "10.77.0.1:2050"})
    assert checked.fas_request(fas_query(FAS_TEXT), seen_from="10.77.0.150").client_ip == "10.77.0.150"  # type: ignore[attr-defined]
    with pytest.raises(FasRequestError, match=r"came from 10\.77\.0\.151"):
        checked.fas_request(fas_query(FAS_TEXT), seen_from="10.77.0.151")  # type: ignore[attr-defined]
    behind_nat = make_gate("opennds", {"gateway_address": "10.77.0.1:2050", "client_address_check": "no"})
    assert behind_nat.fas_request(fas_query(FAS_TEXT), seen_from="198.51.100.7").client_ip == "10.77.0.150"  # type: ignore[attr-defined]
    with pytest.raises(GateError, match="client_address_check"):
        make_gate("opennds", {"client_address_check": "maybe"})

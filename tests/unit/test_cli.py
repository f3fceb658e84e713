"""sdnctl against the real API served by waitress on an ephemeral port (store and stub runtime)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import waitress

from controller import cli
from controller.api import create_app
from controller.store import Store
from tests.unit.api_helpers import DPID, TOKEN, StubRuntime, one_switch

Run = Callable[..., tuple[int, str, str]]
README = Path(__file__).resolve().parents[2] / "README.md"


class Served:
    """One waitress server for the module; each test plugs its own app in."""

    def __init__(self) -> None:
        self.app: Callable[..., Any] | None = None
        self.server = waitress.create_server(lambda env, start: self.app(env, start), host="127.0.0.1", port=0)
        self.url = f"http://127.0.0.1:{self.server.effective_port}"
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.close()
        self.server.task_dispatcher.shutdown()
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    server = Served()
    yield server
    server.close()


@pytest.fixture
def runtime(store: Store) -> StubRuntime:
    return StubRuntime(store, [one_switch()])


@pytest.fixture
def sdnctl(
    served: Served, store: Store, runtime: StubRuntime, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Run:
    """Run sdnctl with SDN_URL pointing at the server; returns (exit code, stdout, stderr)."""
    served.app = create_app(store, runtime)
    monkeypatch.setenv("SDN_URL", served.url)
    monkeypatch.delenv("SDN_API_TOKEN", raising=False)
    monkeypatch.delenv("SDN_API_TOKEN_FILE", raising=False)

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def run_json(sdnctl: Run, *argv: str) -> Any:
    code, out, err = sdnctl("-o", "json", *argv)
    assert code == 0, err
    return json.loads(out) if out else None


def table(out: str) -> list[list[str]]:
    """The rows of a rendered table, split on the column gaps (header and rule line dropped)."""
    lines = out.rstrip("\n").split("\n")
    assert set(lines[1]) <= {"-", " "}
    return [line.split() for line in lines[2:]]


def test_network_lifecycle(sdnctl: Run, store: Store) -> None:
    net = run_json(sdnctl, "network", "create", "blue", "--cidr", "10.0.0.0/24", "--segmentation-id", "7")
    assert (net["name"], net["segmentation_id"], net["gateway_ip"], net["external"]) == ("blue", 7, "10.0.0.1", False)
    assert store.get_network(net["id"])["name"] == "blue"

    code, out, _ = sdnctl("network", "list")
    assert code == 0
    assert out.split("\n")[0].split() == ["id", "name", "cidr", "gateway_ip", "segmentation_id", "external", "status"]
    assert table(out) == [[net["id"], "blue", "10.0.0.0/24", "10.0.0.1", "7", "false", "ACTIVE"]]

    code, out, _ = sdnctl("network", "show", net["id"])
    assert ["cidr", "10.0.0.0/24"] in table(out)

    changed = run_json(sdnctl, "network", "update", net["id"], "--name", "red", "--external")
    assert (changed["name"], changed["external"]) == ("red", True)
    assert run_json(sdnctl, "network", "update", net["id"], "--no-external")["external"] is False

    assert sdnctl("network", "delete", net["id"]) == (0, "", "")
    assert store.list_networks() == []


def test_port_lifecycle(sdnctl: Run, store: Store) -> None:
    net = store.create_network({"cidr": "10.0.0.0/24"})
    other = store.create_network({"cidr": "10.0.0.0/24"})
    code, out, err = sdnctl(
        "port", "create", "--network", net["id"], "--mac", "FA:16:3E:00:00:01", "--ip", "10.0.0.5",
        "--dpid", DPID, "--interface", "s1-eth1", "--name", "vm1", "--no-port-security",
    )
    assert code == 0, err
    port = store.list_ports()[0]
    assert port["mac_address"] == "fa:16:3e:00:00:01" and port["port_security_enabled"] is False
    assert ["status", "ACTIVE"] in table(out)
    assert ["binding", f"dpid={DPID},interface=s1-eth1"] in table(out)

    code, out, _ = sdnctl("port", "list", "--network", net["id"])
    assert table(out) == [[port["id"], "vm1", net["id"], "fa:16:3e:00:00:01", "10.0.0.5", DPID, "s1-eth1", "ACTIVE"]]
    assert run_json(sdnctl, "port", "list", "--network", other["id"]) == []

    moved = run_json(sdnctl, "port", "update", port["id"], "--dpid", DPID, "--interface", "s1-eth2", "--port-security")
    assert moved["binding"]["interface"] == "s1-eth2" and moved["port_security_enabled"] is True
    assert moved["status"] == "DOWN"
    assert run_json(sdnctl, "port", "show", port["id"])["id"] == port["id"]
    assert sdnctl("port", "delete", port["id"])[0] == 0
    assert store.list_ports() == []


def test_api_errors_go_to_stderr_with_exit_1(sdnctl: Run, store: Store) -> None:
    code, out, err = sdnctl("network", "create", "x", "--cidr", "10.0.0.1/24")
    assert (code, out) == (1, "")
    assert err.startswith("Error 400: cidr: has host bits set") and "\n  cidr: has host bits set" in err

    net = store.create_network({"cidr": "10.0.0.0/24"})
    code, _, err = sdnctl("port", "update", "nope", "--name", "x")
    assert code == 1 and err.startswith("Error 404: port nope not found")
    code, _, err = sdnctl("port", "create", "--network", net["id"], "--mac", "fa:16:3e:00:00:01", "--ip", "10.0.0.5",
                          "--dpid", DPID, "--interface", "s1-eth1")
    assert code == 0
    port = store.list_ports()[0]
    code, _, err = sdnctl("port", "update", port["id"], "--dpid", DPID)  # binding needs both halves
    assert code == 1 and "binding.interface: is required" in err


def test_failed_convergence_names_the_switch(sdnctl: Run, runtime: StubRuntime) -> None:
    runtime.failures = {DPID: "barrier timeout"}
    code, _, err = sdnctl("network", "create", "x", "--cidr", "10.0.0.0/24")
    assert code == 1 and err.startswith("Error 503:")
    assert f"  dpid={DPID}, reason=barrier timeout" in err


def test_switch_commands(sdnctl: Run, runtime: StubRuntime) -> None:
    code, out, _ = sdnctl("switch", "list")
    assert table(out) == [[DPID, "true"]]
    assert run_json(sdnctl, "switch", "show", DPID) == one_switch()
    runtime.flows[DPID] = [
        {"table": "classify", "priority": 100, "match": {"in_port": 1}, "actions": ["goto:l2"], "packet_count": 3},
        {"table": "l2", "priority": 0, "match": {}, "actions": [], "byte_count": 0},
    ]
    code, out, _ = sdnctl("switch", "flows", DPID)
    lines = out.split("\n")
    assert lines[0].split() == ["table", "priority", "match", "actions", "packet_count", "byte_count"]
    assert table(out)[0] == ["classify", "100", "in_port=1", "goto:l2", "3"]
    code, _, err = sdnctl("switch", "flows", "00000000000000ff")
    assert code == 1 and "switch 00000000000000ff not found" in err


def test_switch_trunk_ports(sdnctl: Run, store: Store) -> None:
    assert sdnctl("switch", "update", DPID, "--trunk-port", "s1-eth9", "--trunk-port", "s1-eth3")[0] == 0
    assert store.switch_configs() == {DPID: {"trunk_ports": ["s1-eth3", "s1-eth9"]}}
    assert sdnctl("switch", "update", DPID, "--no-trunk-ports")[0] == 0
    assert store.switch_configs()[DPID] == {"trunk_ports": []}
    assert sdnctl("switch", "update", DPID, "--discover-trunks")[0] == 0
    assert store.switch_configs()[DPID] == {"trunk_ports": None}
    code, _, err = sdnctl("switch", "update", DPID, "--trunk-port", "bad name!")
    assert code == 1 and "trunk_ports" in err


def test_health_and_global_options_after_the_command(sdnctl: Run) -> None:
    assert run_json(sdnctl, "health")["switches"] == 1
    code, out, _ = sdnctl("health", "-o", "json")
    assert code == 0 and json.loads(out)["status"] == "ok"
    code, out, _ = sdnctl("health")
    assert ["status", "ok"] in table(out)


def test_token(
    served: Served, store: Store, runtime: StubRuntime, sdnctl: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    served.app = create_app(store, runtime, api_token=TOKEN)
    code, _, err = sdnctl("network", "list")
    assert code == 1 and err.startswith("Error 401:")
    assert sdnctl("--token", TOKEN, "network", "list")[0] == 0
    assert sdnctl("network", "list", "--token", TOKEN)[0] == 0
    monkeypatch.setenv("SDN_API_TOKEN", TOKEN)
    assert sdnctl("network", "list")[0] == 0


def test_token_file(
    served: Served, store: Store, runtime: StubRuntime, sdnctl: Run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    served.app = create_app(store, runtime, api_token=TOKEN)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    assert sdnctl("--token-file", str(token_file), "network", "list")[0] == 0
    assert sdnctl("network", "list", "--token-file", str(token_file))[0] == 0
    monkeypatch.setenv("SDN_API_TOKEN_FILE", str(token_file))
    assert sdnctl("network", "list")[0] == 0
    absent = tmp_path / "absent"
    for argv, reason in [
        (["--token", TOKEN], "give --token (SDN_API_TOKEN) or --token-file (SDN_API_TOKEN_FILE), not both"),
        (["--token-file", str(absent)], f"--token-file: cannot read {absent}: No such file or directory"),
    ]:
        with pytest.raises(SystemExit) as info:
            sdnctl(*argv, "network", "list")
        assert info.value.code == 2 and reason in capsys.readouterr().err


def test_url_flag_and_unreachable_server(sdnctl: Run, served: Served) -> None:
    assert sdnctl("--url", served.url + "/v1/", "health")[0] == 0
    code, _, err = sdnctl("--url", "http://127.0.0.1:1", "health")
    assert code == 1 and err.startswith("sdnctl: cannot reach http://127.0.0.1:1/v1")


def test_usage_errors_exit_2(sdnctl: Run) -> None:
    for argv in (["network"], ["network", "create", "x"], ["port", "update"], ["bogus", "list"]):
        with pytest.raises(SystemExit) as info:
            sdnctl(*argv)
        assert info.value.code == 2


def test_security_group_lifecycle(sdnctl: Run, store: Store) -> None:
    group = run_json(sdnctl, "security-group", "create", "web", "--description", "front ends")
    assert (group["name"], group["description"], len(group["rules"])) == ("web", "front ends", 1)
    code, out, _ = sdnctl("security-group", "list")
    assert [row[1] for row in table(out)] == ["default", "web"]
    code, out, _ = sdnctl("security-group", "show", group["id"])
    rows = table(out)
    assert ["rules", f"id={group['rules'][0]['id']},security_group_id={group['id']},direction=egress,"
            "ethertype=IPv4,stats=packets=0,bytes=0"] in rows
    changed = run_json(sdnctl, "security-group", "update", group["id"], "--name", "api", "--description", "")
    assert (changed["name"], changed["description"]) == ("api", "")
    assert sdnctl("security-group", "delete", group["id"]) == (0, "", "")
    assert [g["name"] for g in store.list_security_groups()] == ["default"]
    default_id = store.list_security_groups()[0]["id"]
    code, _, err = sdnctl("security-group", "delete", default_id)
    assert code == 1 and err.startswith("Error 409:") and "\n  id: " in err


def test_security_group_rule_lifecycle(sdnctl: Run, store: Store) -> None:
    group = store.create_security_group({"name": "web"})
    ssh = run_json(sdnctl, "security-group-rule", "create", "--group", group["id"], "--direction", "ingress",
                   "--protocol", "tcp", "--port-min", "22", "--remote-ip-prefix", "10.1.2.3/16")
    assert (ssh["port_range_min"], ssh["port_range_max"], ssh["remote_ip_prefix"]) == (22, 22, "10.1.0.0/16")
    web = run_json(sdnctl, "security-group-rule", "create", "--group", group["id"], "--direction", "ingress",
                   "--protocol", "udp", "--port-min", "5000", "--port-max", "5010", "--remote-group", group["id"])
    assert (web["port_range_max"], web["remote_group_id"]) == (5010, group["id"])

    code, out, _ = sdnctl("security-group-rule", "list", "--group", group["id"])
    assert out.split("\n")[0].split()[:3] == ["id", "security_group_id", "direction"]
    assert [row[0] for row in table(out)] == [group["rules"][0]["id"], ssh["id"], web["id"]]
    assert run_json(sdnctl, "security-group-rule", "show", ssh["id"]) == {**ssh, "status": "ACTIVE"}
    assert len(run_json(sdnctl, "security-group-rule", "list")) == 5  # with the default group's two

    code, _, err = sdnctl("security-group-rule", "create", "--group", group["id"], "--direction", "ingress",
                          "--protocol", "icmp", "--port-min", "8")
    assert code == 1 and "port_range_min: only for protocol tcp or udp" in err
    assert sdnctl("security-group-rule", "delete", ssh["id"])[0] == 0
    assert [r["id"] for r in store.list_security_group_rules(security_group_id=group["id"])] == [
        group["rules"][0]["id"], web["id"]
    ]


def test_port_security_group_options(sdnctl: Run, store: Store) -> None:
    net = store.create_network({"cidr": "10.0.0.0/24"})
    a, b = (store.create_security_group({"name": name})["id"] for name in "ab")
    port = run_json(sdnctl, "port", "create", "--network", net["id"], "--mac", "fa:16:3e:00:00:01", "--ip",
                    "10.0.0.5", "--dpid", DPID, "--interface", "s1-eth1", "--security-group", b,
                    "--security-group", a)
    assert port["security_group_ids"] == [b, a]
    assert run_json(sdnctl, "port", "update", port["id"], "--security-group", a)["security_group_ids"] == [a]
    code, _, err = sdnctl("port", "update", port["id"], "--no-port-security")
    assert code == 1 and err.startswith("Error 409: port_security_enabled:")
    off = run_json(sdnctl, "port", "update", port["id"], "--no-port-security", "--no-security-groups")
    assert (off["port_security_enabled"], off["security_group_ids"]) == (False, [])
    code, out, _ = sdnctl("port", "show", port["id"])
    assert ["security_group_ids"] in table(out)  # an empty list is an empty cell


def test_security_group_usage_errors_exit_2(sdnctl: Run) -> None:
    for argv in (
        ["security-group-rule", "update", "x"],  # rules are immutable
        ["security-group-rule", "create", "--group", "g", "--direction", "in"],
        ["security-group-rule", "create", "--group", "g", "--direction", "ingress", "--remote-ip-prefix",
         "10.0.0.0/8", "--remote-group", "g"],
        ["port", "update", "p", "--security-group", "g", "--no-security-groups"],
    ):
        with pytest.raises(SystemExit) as info:
            sdnctl(*argv)
        assert info.value.code == 2


def test_help_says_why_a_token_file_is_better() -> None:
    text = " ".join(cli.build_parser().format_help().split())
    assert "ps, /proc/PID/cmdline" in text and "mode 0600 can be readable by you alone" in text


def test_security_group_set_rules_from_a_file(sdnctl: Run, store: Store, tmp_path: Path) -> None:
    group = store.create_security_group({"name": "web"})
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps([{"direction": "ingress", "protocol": "tcp", "port_range_min": 22}]))
    code, out, err = sdnctl("security-group", "set-rules", group["id"], "--file", str(rules), "-o", "json")
    assert code == 0, err
    assert [(r["protocol"], r["port_range_min"]) for r in json.loads(out)["rules"]] == [("tcp", 22)]
    rules.write_text("{}")
    with pytest.raises(SystemExit) as usage:  # argparse refuses it before any request
        sdnctl("security-group", "set-rules", group["id"], "--file", str(rules))
    assert usage.value.code == 2


def test_network_uplink_options(sdnctl: Run, store: Store) -> None:
    net = run_json(sdnctl, "network", "create", "ext", "--cidr", "203.0.113.0/24", "--external",
                   "--uplink-dpid", DPID, "--uplink-interface", "s1-eth9")
    assert net["uplink"] == {"dpid": DPID, "interface": "s1-eth9"}
    moved = run_json(sdnctl, "network", "update", net["id"], "--uplink-dpid", DPID, "--uplink-interface", "s1-eth8")
    assert moved["uplink"]["interface"] == "s1-eth8"
    assert run_json(sdnctl, "network", "update", net["id"], "--no-uplink")["uplink"] is None
    code, _, err = sdnctl("network", "update", net["id"], "--uplink-dpid", DPID)
    assert code == 1 and "uplink.interface: is required" in err
    for argv in (["--no-uplink", "--uplink-interface", "s1-eth9"], ["--uplink-dpid", DPID, "--no-uplink"]):
        with pytest.raises(SystemExit) as usage:  # contradicting flags: nothing is sent
            sdnctl("network", "update", net["id"], *argv)
        assert usage.value.code == 2
    assert store.get_network(net["id"])["uplink"] is None


def test_router_lifecycle(sdnctl: Run, store: Store) -> None:
    ext = store.create_network({"cidr": "203.0.113.0/24", "external": True})
    net = store.create_network({"cidr": "10.0.0.0/24"})
    router = run_json(sdnctl, "router", "create", "edge", "--external-network", ext["id"], "--no-snat",
                      "--gateway-ip", "203.0.113.9", "--route", "0.0.0.0/0,203.0.113.1")
    assert router["external_gateway"] == {"network_id": ext["id"], "ip_address": "203.0.113.9", "enable_snat": False}
    assert router["routes"] == [{"destination": "0.0.0.0/0", "nexthop": "203.0.113.1",
                                 "stats": {"packets": 0, "bytes": 0}}]
    code, out, _ = sdnctl("router", "list")
    assert out.split("\n")[0].split() == ["id", "name", "mac_address", "external_gateway.network_id",
                                          "external_gateway.ip_address", "status", "stats.packets", "stats.bytes"]
    assert table(out) == [[router["id"], "edge", "fa:16:3f:00:00:01", ext["id"], "203.0.113.9", "ACTIVE", "0", "0"]]
    added = run_json(sdnctl, "router", "add-interface", router["id"], "--network", net["id"])
    assert added["interfaces"] == [{"network_id": net["id"], "ip_address": "10.0.0.1"}]
    code, out, _ = sdnctl("router", "show", router["id"])
    assert ["interfaces", f"network_id={net['id']},ip_address=10.0.0.1"] in table(out)
    routes = run_json(sdnctl, "router", "update", router["id"], "--route", "192.168.0.0/16,10.0.0.254",
                      "--route", "0.0.0.0/0, 203.0.113.1")["routes"]
    assert [(route["destination"], route["nexthop"]) for route in routes] == [
        ("192.168.0.0/16", "10.0.0.254"), ("0.0.0.0/0", "203.0.113.1")]
    cleared = run_json(sdnctl, "router", "update", router["id"], "--no-routes", "--no-external-gateway")
    assert (cleared["routes"], cleared["external_gateway"]) == ([], None)
    code, _, err = sdnctl("router", "delete", router["id"])
    assert code == 1 and err.startswith("Error 409:") and f"used by its interface on network {net['id']}" in err
    assert sdnctl("router", "remove-interface", router["id"], "--network", net["id"]) == (0, "", "")
    assert sdnctl("router", "delete", router["id"]) == (0, "", "")
    assert store.list_routers() == []


def test_router_errors_and_usage(sdnctl: Run, store: Store) -> None:
    net = store.create_network({"cidr": "10.0.0.0/24"})
    router = store.create_router({})
    code, _, err = sdnctl("router", "update", router["id"], "--route", "0.0.0.0/0,10.0.0.9")
    assert code == 1 and "routes[0].nexthop: 10.0.0.9 is on none of the router's networks" in err
    code, _, err = sdnctl("router", "update", router["id"], "--no-snat")  # a gateway needs its network
    assert code == 1 and "external_gateway.network_id: is required" in err
    code, _, err = sdnctl("router", "remove-interface", router["id"], "--network", net["id"])
    assert code == 1 and err.startswith("Error 404:")
    for argv in (
        ["router", "update", router["id"], "--route", "0.0.0.0/0"],  # not DESTINATION,NEXTHOP
        ["router", "update", router["id"], "--route", "0.0.0.0/0,10.0.0.9", "--no-routes"],
        ["router", "update", router["id"], "--external-network", net["id"], "--no-external-gateway"],
        ["router", "add-interface", router["id"]],  # --network is required
    ):
        with pytest.raises(SystemExit) as usage:
            sdnctl(*argv)
        assert usage.value.code == 2
    assert store.get_router(router["id"]) == router


def test_floating_ip_lifecycle(sdnctl: Run, store: Store) -> None:
    ext = store.create_network({"cidr": "203.0.113.0/24", "external": True})
    net = store.create_network({"cidr": "10.0.0.0/24"})
    port = store.create_port({"network_id": net["id"], "mac_address": "fa:16:3e:00:00:01", "ip_address": "10.0.0.5",
                              "binding": {"dpid": DPID, "interface": "s1-eth1"}})
    router = store.create_router({"external_gateway": {"network_id": ext["id"]}})
    store.add_router_interface(router["id"], {"network_id": net["id"]})
    made = run_json(sdnctl, "floating-ip", "create", "--network", ext["id"], "--address", "203.0.113.50",
                    "--port", port["id"])
    assert (made["floating_ip_address"], made["fixed_ip_address"], made["router_id"]) == \
        ("203.0.113.50", "10.0.0.5", router["id"])
    code, out, _ = sdnctl("floating-ip", "list", "--port", port["id"])
    assert table(out) == [[made["id"], "203.0.113.50", ext["id"], port["id"], "10.0.0.5", router["id"], "ACTIVE",
                           "0", "0"]]
    assert run_json(sdnctl, "floating-ip", "list", "--network", net["id"]) == []
    detached = run_json(sdnctl, "floating-ip", "update", made["id"], "--no-port")
    assert (detached["port_id"], detached["router_id"]) == (None, None)
    assert run_json(sdnctl, "floating-ip", "update", made["id"], "--port", port["id"])["port_id"] == port["id"]
    code, _, err = sdnctl("floating-ip", "create", "--network", ext["id"], "--port", port["id"])
    assert code == 1 and err.startswith("Error 409: port_id:")
    with pytest.raises(SystemExit) as usage:
        sdnctl("floating-ip", "update", made["id"], "--port", port["id"], "--no-port")
    assert usage.value.code == 2
    with pytest.raises(SystemExit) as usage:  # network and address never change
        sdnctl("floating-ip", "update", made["id"], "--address", "203.0.113.51")
    assert usage.value.code == 2
    assert run_json(sdnctl, "floating-ip", "show", made["id"])["port_id"] == port["id"]
    assert sdnctl("floating-ip", "delete", made["id"]) == (0, "", "")
    assert store.list_floating_ips() == []


def test_floating_ip_on_a_load_balancer(sdnctl: Run, store: Store) -> None:
    """README's example: a floating IP made for a VIP, then moved to a port and back (never both: a usage error)."""
    ext = store.create_network({"cidr": "203.0.113.0/24", "external": True})
    net, ports = lb_ports(store)
    router = store.create_router({"external_gateway": {"network_id": ext["id"]}})
    store.add_router_interface(router["id"], {"network_id": net["id"]})
    balancer = store.create_load_balancer({"network_id": net["id"], "vip_address": "10.0.0.100", "protocol": "tcp",
                                           "port": 80, "members": [{"ip_address": "10.0.0.11", "port": 8080}]})
    made = run_json(sdnctl, "floating-ip", "create", "--network", ext["id"], "--load-balancer", balancer["id"])
    assert (made["load_balancer_id"], made["port_id"], made["fixed_ip_address"], made["router_id"]) == \
        (balancer["id"], None, "10.0.0.100", router["id"])
    assert run_json(sdnctl, "floating-ip", "list", "--load-balancer", balancer["id"]) == [made]
    with pytest.raises(SystemExit) as usage:
        sdnctl("floating-ip", "update", made["id"], "--port", ports[0]["id"], "--load-balancer", balancer["id"])
    assert usage.value.code == 2
    moved = run_json(sdnctl, "floating-ip", "update", made["id"], "--port", ports[0]["id"])
    assert (moved["port_id"], moved["load_balancer_id"]) == (ports[0]["id"], None)
    back = run_json(sdnctl, "floating-ip", "update", made["id"], "--load-balancer", balancer["id"])
    assert (back["port_id"], back["load_balancer_id"]) == (None, balancer["id"])
    detached = run_json(sdnctl, "floating-ip", "update", made["id"], "--no-load-balancer")
    assert (detached["load_balancer_id"], detached["fixed_ip_address"]) == (None, None)


def lb_ports(store: Store) -> tuple[dict, list[dict]]:
    net = store.create_network({"cidr": "10.0.0.0/24"})
    ports = [store.create_port({"network_id": net["id"], "mac_address": f"fa:16:3e:00:00:0{n}",
                                "ip_address": f"10.0.0.1{n}", "binding": {"dpid": DPID, "interface": f"s1-eth{n}"}})
             for n in (1, 2)]
    return net, ports


def test_load_balancer_lifecycle(sdnctl: Run, store: Store) -> None:
    net, _ = lb_ports(store)
    made = run_json(sdnctl, "load-balancer", "create", "web", "--network", net["id"], "--vip", "10.0.0.100",
                    "--protocol", "tcp", "--port", "80", "--member", "10.0.0.11:8080", "--member", "10.0.0.12:8080:3",
                    "--monitor", "tcp", "--monitor-interval", "2", "--monitor-timeout", "0.5", "--monitor-retries", "3")
    assert [(m["ip_address"], m["port"], m["weight"], m["status"]) for m in made["members"]] == [
        ("10.0.0.11", 8080, 1, "ONLINE"), ("10.0.0.12", 8080, 3, "ONLINE")]
    assert made["health_monitor"] == {"type": "tcp", "interval_s": 2.0, "timeout_s": 0.5, "max_retries": 3}
    code, out, _ = sdnctl("load-balancer", "list", "--network", net["id"])
    assert out.split("\n")[0].split() == ["id", "name", "network_id", "vip_address", "protocol", "port", "algorithm",
                                          "status"]
    assert table(out) == [[made["id"], "web", net["id"], "10.0.0.100", "tcp", "80", "source_ip_hash", "ACTIVE"]]
    changed = run_json(sdnctl, "load-balancer", "update", made["id"], "--name", "www", "--algorithm", "hash",
                       "--no-health-monitor")
    assert (changed["name"], changed["algorithm"], changed["health_monitor"]) == ("www", "hash", None)
    assert run_json(sdnctl, "load-balancer", "show", made["id"]) == changed
    assert sdnctl("load-balancer", "delete", made["id"]) == (0, "", "")
    assert store.list_load_balancers() == []


def test_lb_member_commands(sdnctl: Run, store: Store) -> None:
    net, ports = lb_ports(store)
    made = store.create_load_balancer({"network_id": net["id"], "protocol": "udp", "port": 53})
    added = run_json(sdnctl, "lb-member", "add", made["id"], "--ip", "10.0.0.11", "--port", "5353", "--weight", "4")
    assert (added["port"], added["weight"], added["status"], added["port_id"]) == (5353, 4, "NO_MONITOR",
                                                                                    ports[0]["id"])
    code, out, _ = sdnctl("lb-member", "list", made["id"])
    assert table(out)[0][:6] == [added["id"], "10.0.0.11", "5353", "4", "true", "NO_MONITOR"]
    drained = run_json(sdnctl, "lb-member", "update", made["id"], added["id"], "--no-admin-state-up", "--weight", "9")
    assert (drained["admin_state_up"], drained["weight"], drained["status"]) == (False, 9, "DRAINING")
    assert run_json(sdnctl, "lb-member", "show", made["id"], added["id"]) == drained
    code, _, err = sdnctl("lb-member", "add", made["id"], "--ip", "10.0.0.99", "--port", "53")
    assert code == 1 and "no port has on a network the VIP can reach" in err
    code, _, err = sdnctl("port", "delete", ports[0]["id"])
    assert code == 1 and err.startswith("Error 409:") and made["id"] in err
    for argv in (["lb-member", "add", made["id"], "--ip", "10.0.0.12"],  # --port is required
                 ["load-balancer", "create", "x", "--network", net["id"], "--protocol", "udp", "--port", "53",
                  "--member", "10.0.0.12"],  # not IP:PORT[:WEIGHT]
                 ["load-balancer", "update", made["id"], "--port", "54"]):  # never changes
        with pytest.raises(SystemExit) as usage:
            sdnctl(*argv)
        assert usage.value.code == 2
    assert sdnctl("lb-member", "remove", made["id"], added["id"])[:2] == (0, "")  # (stderr has the usages above)
    assert store.list_lb_members(made["id"]) == []


def make_port(store: Store, network_id: str, n: int, name: str = "", **extra: Any) -> dict[str, Any]:
    return store.create_port({"network_id": network_id, "name": name, "mac_address": f"fa:16:3e:00:00:{n:02x}",
                              "ip_address": f"10.0.0.{10 + n}", "binding": {"dpid": DPID, "interface": f"s1-eth{n}"},
                              **extra})


def test_a_port_by_its_name(sdnctl: Run, store: Store) -> None:
    net = store.create_network({"name": "blue", "cidr": "10.0.0.0/24"})
    a1 = make_port(store, net["id"], 1, "a1")
    assert run_json(sdnctl, "port", "show", "a1") == run_json(sdnctl, "port", "show", a1["id"])
    assert run_json(sdnctl, "port", "update", "a1", "--name", "web1")["name"] == "web1"
    code, _, err = sdnctl("port", "show", "a1")
    assert (code, err) == (1, "Error 404: port a1 not found\n  no port is named a1 and none has that id\n")
    assert sdnctl("port", "delete", "web1") == (0, "", "")
    assert store.list_ports() == []


def test_an_ambiguous_name_lists_the_candidates_and_changes_nothing(sdnctl: Run, store: Store) -> None:
    net = store.create_network({"name": "blue", "cidr": "10.0.0.0/24"})
    twins = [make_port(store, net["id"], n, "a1") for n in (1, 2)]
    code, out, err = sdnctl("port", "delete", "a1")
    assert (code, out) == (1, "")
    lines = err.rstrip("\n").split("\n")
    assert lines[0] == "sdnctl: 2 ports are named a1; give the id of one:"
    assert lines[1].split() == ["id", "name", "network_id", "mac_address", "ip_address", "binding.dpid",
                                "binding.interface", "status"]
    assert [line.split()[:3] for line in lines[3:]] == [[port["id"], "a1", net["id"]] for port in twins]
    assert len(store.list_ports()) == 2
    assert sdnctl("port", "delete", twins[0]["id"])[0] == 0  # an id always works
    assert run_json(sdnctl, "port", "show", "a1")["id"] == twins[1]["id"]  # and now the name is unique


def test_an_id_wins_over_a_name(sdnctl: Run, store: Store) -> None:
    net = store.create_network({"name": "blue", "cidr": "10.0.0.0/24"})
    first = make_port(store, net["id"], 1)
    second = make_port(store, net["id"], 2, first["id"])  # named as the other's id
    assert run_json(sdnctl, "port", "show", first["id"])["id"] == first["id"]
    assert run_json(sdnctl, "port", "show", second["id"])["id"] == second["id"]


def test_networks_by_name(sdnctl: Run, store: Store) -> None:
    blue = run_json(sdnctl, "network", "create", "blue", "--cidr", "10.0.0.0/24")
    port = run_json(sdnctl, "port", "create", "--network", "blue", "--mac", "fa:16:3e:00:00:01", "--ip", "10.0.0.5",
                    "--dpid", DPID, "--interface", "s1-eth1", "--name", "a1")
    assert port["network_id"] == blue["id"]
    assert run_json(sdnctl, "network", "update", "blue", "--name", "red")["id"] == blue["id"]
    assert [p["id"] for p in run_json(sdnctl, "port", "list", "--network", "red")] == [port["id"]]
    code, _, err = sdnctl("port", "list", "--network", "blue")  # a filter naming nothing is an error, not []
    assert code == 1 and err.startswith("Error 404: network blue not found")
    store.create_network({"name": "red", "cidr": "10.1.0.0/24"})
    code, _, err = sdnctl("port", "create", "--network", "red", "--mac", "fa:16:3e:00:00:02", "--ip", "10.0.0.6",
                          "--dpid", DPID, "--interface", "s1-eth2")
    assert code == 1 and err.startswith("sdnctl: 2 networks are named red;") and blue["id"] in err
    assert len(store.list_ports()) == 1
    assert [n["name"] for n in run_json(sdnctl, "network", "list", "--name", "red")] == ["red", "red"]
    assert run_json(sdnctl, "network", "list", "--name", "blue") == []


def test_network_list_external_filter(sdnctl: Run, store: Store) -> None:
    ext = store.create_network({"name": "ext", "cidr": "203.0.113.0/24", "external": True})
    blue = store.create_network({"name": "blue", "cidr": "10.0.0.0/24"})
    assert [n["id"] for n in run_json(sdnctl, "network", "list", "--external")] == [ext["id"]]
    assert [n["id"] for n in run_json(sdnctl, "network", "list", "--no-external")] == [blue["id"]]
    code, out, _ = sdnctl("network", "list", "--external")
    assert [row[1] for row in table(out)] == ["ext"]


def test_security_groups_and_rules_by_name(sdnctl: Run, store: Store, tmp_path: Path) -> None:
    net = store.create_network({"name": "blue", "cidr": "10.0.0.0/24"})
    web = run_json(sdnctl, "security-group", "create", "web")
    default = run_json(sdnctl, "security-group", "show", "default")
    port = run_json(sdnctl, "port", "create", "--network", "blue", "--mac", "fa:16:3e:00:00:01", "--ip", "10.0.0.5",
                    "--dpid", DPID, "--interface", "s1-eth1", "--name", "a1", "--security-group", "web",
                    "--security-group", "default")
    assert port["security_group_ids"] == [web["id"], default["id"]]
    other = make_port(store, net["id"], 2, "a2")  # in default only
    rule = run_json(sdnctl, "security-group-rule", "create", "--group", "web", "--direction", "ingress",
                    "--protocol", "tcp", "--port-min", "80", "--remote-group", "default")
    assert (rule["security_group_id"], rule["remote_group_id"]) == (web["id"], default["id"])
    assert [r["id"] for r in run_json(sdnctl, "security-group-rule", "list", "--group", "web")] == [
        web["rules"][0]["id"], rule["id"]]
    for flags, expected in [
        (["--group", "web", "--direction", "ingress"], [rule["id"]]),
        (["--protocol", "tcp"], [rule["id"]]),
        (["--remote-group", "default", "--direction", "ingress"], [default["rules"][1]["id"], rule["id"]]),
    ]:
        assert [r["id"] for r in run_json(sdnctl, "security-group-rule", "list", *flags)] == expected, flags
    assert [p["id"] for p in run_json(sdnctl, "port", "list", "--security-group", "web")] == [port["id"]]
    assert [p["id"] for p in run_json(sdnctl, "port", "list", "--security-group", "default", "--name", "a2")] == [
        other["id"]]
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps([{"direction": "egress"}]))
    assert len(run_json(sdnctl, "security-group", "set-rules", "web", "--file", str(rules))["rules"]) == 1
    assert run_json(sdnctl, "port", "update", "a1", "--security-group", "default")["security_group_ids"] == [
        default["id"]]
    code, _, err = sdnctl("port", "update", "a1", "--security-group", "nope")
    assert code == 1 and err.startswith("Error 404: security group nope not found")
    store.create_security_group({"name": "web"})
    code, _, err = sdnctl("security-group-rule", "list", "--group", "web")
    assert code == 1 and err.startswith("sdnctl: 2 security groups are named web;")
    assert sdnctl("security-group", "delete", "default")[0] == 1  # found, and the API refuses it (409)


def test_rules_have_no_names_so_the_api_answers(sdnctl: Run) -> None:
    code, _, err = sdnctl("security-group-rule", "show", "nope")
    assert (code, err) == (1, "Error 404: security group rule nope not found\n"
                              "  message=no security group rule with id nope\n")


def test_routers_and_floating_ips_by_name(sdnctl: Run, store: Store) -> None:
    ext = store.create_network({"name": "ext", "cidr": "203.0.113.0/24", "external": True})
    net = store.create_network({"name": "blue", "cidr": "10.0.0.0/24"})
    port = make_port(store, net["id"], 1, "a1")
    router = run_json(sdnctl, "router", "create", "edge", "--external-network", "ext")
    assert router["external_gateway"]["network_id"] == ext["id"]
    plain = store.create_router({"name": "inner"})
    assert run_json(sdnctl, "router", "add-interface", "edge", "--network", "blue")["interfaces"][0][
        "network_id"] == net["id"]
    assert [r["id"] for r in run_json(sdnctl, "router", "list", "--external-network", "ext")] == [router["id"]]
    assert [r["id"] for r in run_json(sdnctl, "router", "list", "--name", "inner")] == [plain["id"]]

    made = run_json(sdnctl, "floating-ip", "create", "--network", "ext", "--address", "203.0.113.50", "--port", "a1")
    assert (made["port_id"], made["router_id"]) == (port["id"], router["id"])
    assert run_json(sdnctl, "floating-ip", "show", "203.0.113.50")["id"] == made["id"]  # an address names it
    for flags in (["--network", "ext"], ["--port", "a1"], ["--router", "edge"], ["--network", "ext", "--port", "a1"]):
        assert [f["id"] for f in run_json(sdnctl, "floating-ip", "list", *flags)] == [made["id"]], flags
    assert run_json(sdnctl, "floating-ip", "list", "--router", "inner") == []
    code, _, err = sdnctl("floating-ip", "list", "--port", "a9")
    assert code == 1 and err.startswith("Error 404: port a9 not found")
    assert run_json(sdnctl, "floating-ip", "update", "203.0.113.50", "--no-port")["port_id"] is None
    assert run_json(sdnctl, "floating-ip", "update", "203.0.113.50", "--port", "a1")["port_id"] == port["id"]
    code, _, err = sdnctl("floating-ip", "show", "203.0.113.51")
    assert (code, err) == (1, "Error 404: floating IP 203.0.113.51 not found\n"
                              "  no floating IP is named 203.0.113.51 and none has that id\n")
    assert sdnctl("floating-ip", "delete", "203.0.113.50") == (0, "", "")
    assert sdnctl("router", "remove-interface", "edge", "--network", "blue") == (0, "", "")
    code, _, err = sdnctl("router", "remove-interface", "edge", "--network", "blue")
    assert code == 1 and err.startswith("Error 404:")  # the network is found; the API says it is not attached
    store.create_router({"name": "edge"})
    code, _, err = sdnctl("router", "delete", "edge")
    assert code == 1 and err.startswith("sdnctl: 2 routers are named edge;") and router["id"] in err
    assert sdnctl("router", "delete", router["id"]) == (0, "", "")


def test_load_balancers_and_members_by_name(sdnctl: Run, store: Store) -> None:
    net = store.create_network({"name": "blue", "cidr": "10.0.0.0/24"})
    ports = [make_port(store, net["id"], n) for n in (1, 2)]
    made = run_json(sdnctl, "load-balancer", "create", "www", "--network", "blue", "--protocol", "tcp", "--port",
                    "80", "--member", "10.0.0.11:8080", "--member", "10.0.0.12:8080")
    assert made["network_id"] == net["id"]
    assert run_json(sdnctl, "load-balancer", "show", "www") == run_json(sdnctl, "load-balancer", "show", made["id"])
    assert [b["id"] for b in run_json(sdnctl, "load-balancer", "list", "--network", "blue", "--name", "www")] == [
        made["id"]]
    first, second = made["members"]
    assert run_json(sdnctl, "lb-member", "show", "www", "10.0.0.11:8080")["id"] == first["id"]
    assert run_json(sdnctl, "lb-member", "show", "www", "10.0.0.12")["id"] == second["id"]
    drained = run_json(sdnctl, "lb-member", "update", "www", "10.0.0.11", "--no-admin-state-up")
    assert (drained["id"], drained["status"]) == (first["id"], "DRAINING")
    assert [m["id"] for m in run_json(sdnctl, "lb-member", "list", "www", "--status", "DRAINING")] == [first["id"]]
    assert [m["id"] for m in run_json(sdnctl, "lb-member", "list", "www", "--status", "NO_MONITOR")] == [second["id"]]
    extra = run_json(sdnctl, "lb-member", "add", "www", "--ip", "10.0.0.11", "--port", "9090")
    assert extra["port_id"] == ports[0]["id"]
    code, _, err = sdnctl("lb-member", "remove", "www", "10.0.0.11")  # two members at that address
    assert code == 1 and err.startswith("sdnctl: 2 members are named 10.0.0.11;")
    assert first["id"] in err and extra["id"] in err
    code, _, err = sdnctl("lb-member", "show", "www", "10.0.0.13")
    assert code == 1 and err.startswith("Error 404: member 10.0.0.13 not found")
    code, _, err = sdnctl("lb-member", "list", "nope")
    assert code == 1 and err.startswith("Error 404: load balancer nope not found")
    assert sdnctl("lb-member", "remove", "www", "10.0.0.11:9090")[:2] == (0, "")
    assert [m["id"] for m in store.list_lb_members(made["id"])] == [first["id"], second["id"]]
    assert sdnctl("load-balancer", "delete", "www") == (0, "", "")
    assert store.list_load_balancers() == []


def test_help_says_a_name_works(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, says in [
        (["port", "create"], ["--network NETWORK its network (name or id)", "--security-group SECURITY_GROUP"]),
        (["lb-member", "show"], ["LOAD_BALANCER the load balancer (name or id)",
                                 "MEMBER the member (address:port, address or id)"]),
        (["security-group-rule", "show"], ["SECURITY_GROUP_RULE the security group rule (id)"]),
    ]:
        with pytest.raises(SystemExit):
            cli.main([*argv, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert all(words in text for words in says), (argv, text)


def readme_commands(heading: str) -> list[tuple[list[str], str]]:
    """The sdnctl commands of the first bash block under the README heading: (arguments, trailing comment)."""
    section = README.read_text(encoding="utf-8").split(f"\n{heading}\n", 1)[1]
    block = section.split("```bash\n", 1)[1].split("\n```", 1)[0]
    commands = []
    for line in block.replace("\\\n", " ").split("\n"):
        words, _, comment = line.partition("#")
        program, *argv = shlex.split(words)
        assert program == ".venv/bin/sdnctl", line
        commands.append((argv, comment))
    return commands


def test_readme_names_instead_of_ids(sdnctl: Run, store: Store) -> None:
    """Every command of the README section, in order; those it says exit 1 do."""
    commands = readme_commands("## sdnctl: names instead of ids")
    assert len(commands) > 10
    for argv, comment in commands:
        code, out, err = sdnctl(*argv)
        assert code == (1 if "exit 1" in comment else 0), (argv, err)
    assert err.startswith("sdnctl: 2 networks are named tenant-a;")
    assert all(net["id"] in err for net in store.list_networks() if net["name"] == "tenant-a")
    [port] = store.list_ports()
    groups = {group["name"]: group["id"] for group in store.list_security_groups()}
    assert port["security_group_ids"] == [groups["web"], groups["default"]]
    [rule] = [r for r in store.list_security_group_rules(groups["web"]) if r["direction"] == "ingress"]
    assert (rule["port_range_min"], rule["remote_group_id"]) == (80, groups["default"])
    [router] = store.list_routers()
    assert [i["network_id"] for i in router["interfaces"]] == [port["network_id"]]
    [fip] = store.list_floating_ips()
    assert (fip["floating_ip_address"], fip["port_id"]) == ("203.0.113.50", None)
    [balancer] = store.list_load_balancers()
    assert [(m["ip_address"], m["admin_state_up"]) for m in balancer["members"]] == [("10.0.0.11", False)]


def readme_completion() -> str:
    """The README's line that registers sdnctl's completion with bash."""
    section = README.read_text(encoding="utf-8").split("\n## sdnctl: names instead of ids\n", 1)[1]
    [line] = [line for line in section.split("\n") if line.startswith('eval "$(.venv/bin/register-python-argcomplete')]
    return line


def complete(served: Served, line: str, url: str | None = None) -> list[str]:
    """What bash offers for the line once the README's registration ran (in the checkout, where .venv is)."""
    words = [*shlex.split(line), *([""] if line.endswith(" ") else [])]
    script = "\n".join([
        readme_completion(),
        f"COMP_LINE={shlex.quote(line)}; COMP_POINT=${{#COMP_LINE}}",
        f"COMP_WORDS=({' '.join(shlex.quote(word) for word in words)}); COMP_CWORD={len(words) - 1}",
        '_python_argcomplete "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"',
        'printf "%s\\n" "${COMPREPLY[@]}"',
    ])
    done = subprocess.run(["bash", "-c", script], cwd=README.parent, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "SDN_URL": url or served.url}, check=True)
    return sorted(word.rstrip() for word in done.stdout.split("\n") if word)


def test_shell_completion_offers_names(served: Served, sdnctl: Run, store: Store) -> None:
    net = store.create_network({"name": "blue", "cidr": "10.0.0.0/24"})
    unnamed = store.create_network({"name": "", "cidr": "10.1.0.0/24"})
    make_port(store, net["id"], 1, "a1")
    make_port(store, net["id"], 2, "a2")
    store.create_load_balancer({"name": "www", "network_id": net["id"], "protocol": "tcp", "port": 80,
                                "members": [{"ip_address": "10.0.0.11", "port": 8080}]})
    assert complete(served, ".venv/bin/sdnctl port sh") == ["show"]
    assert complete(served, ".venv/bin/sdnctl port show ") == ["a1", "a2"]
    # The unnamed network is offered by its id, which starts with "b" one time in sixteen.
    assert complete(served, ".venv/bin/sdnctl port list --network b") == sorted(
        name for name in ("blue", unnamed["id"]) if name.startswith("b"))
    assert complete(served, ".venv/bin/sdnctl network show ") == sorted(["blue", unnamed["id"]])  # no name: its id
    assert complete(served, ".venv/bin/sdnctl lb-member show www ") == ["10.0.0.11", "10.0.0.11:8080"]
    assert complete(served, ".venv/bin/sdnctl security-group-rule create --direction ") == ["egress", "ingress"]
    rules = [r["id"] for r in store.list_security_group_rules()]  # rules have no names
    assert complete(served, ".venv/bin/sdnctl security-group-rule show ") == sorted(rules)
    # A server that does not answer leaves the shell with nothing, not an error.
    assert complete(served, ".venv/bin/sdnctl port show ", "http://127.0.0.1:1") == []


def test_refresh_reads_the_counters_first_and_stats_show_as_columns(sdnctl: Run, store: Store,
                                                                   runtime: StubRuntime) -> None:
    group = store.create_security_group({"name": "web"})
    rule = group["rules"][0]["id"]
    runtime.counted[("security_group_rule", rule)] = (12, 3400)
    code, out, _ = sdnctl("security-group-rule", "list", "--group", group["id"])
    assert code == 0 and runtime.refreshes == 0
    assert out.split("\n")[0].split()[-2:] == ["stats.packets", "stats.bytes"]
    assert table(out)[0][-2:] == ["12", "3400"]
    shown = run_json(sdnctl, "security-group-rule", "show", rule, "--refresh")
    assert shown["stats"] == {"packets": 12, "bytes": 3400} and runtime.refreshes == 1


def test_the_clis_choices_are_the_apis():
    """sdnctl spells the API's choices itself (it starts without pydantic); they must not drift apart."""
    from apps import explain
    from controller import schema
    assert (cli.DIRECTIONS, cli.PROTOCOLS) == (schema.DIRECTIONS, schema.PROTOCOLS)
    assert (cli.LB_PROTOCOLS, cli.LB_ALGORITHMS, cli.MONITOR_TYPES) == (
        schema.LB_PROTOCOLS, schema.LB_ALGORITHMS, schema.MONITOR_TYPES)
    assert cli.CT_STATES == tuple(explain.CT_STATES)

"""README's "Explaining a packet": its commands, copied from the README, run against the real API (waitress, store,
the stand-in runtime compiling the store's policy), and the output it shows is what they print."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest

from controller.store import Store
from tests.unit.api_helpers import StubRuntime
from tests.unit.test_cli import Run, Served, sdnctl, served  # noqa: F401 (fixtures)

README = Path(__file__).resolve().parents[2] / "README.md"
S1, S2 = "0000000000000001", "0000000000000002"


def section() -> str:
    text = README.read_text()
    return text[text.index("## Explaining a packet"):].split("\n## ", 1)[0]


def commands() -> list[str]:
    """The lines of the section's bash block, continuations joined."""
    block = re.search(r"```bash\n(.*?)```", section(), re.S)[1]
    return [line.strip() for line in block.replace("\\\n", " ").splitlines() if line.strip()]


@pytest.fixture
def runtime(store: Store) -> StubRuntime:
    """Two switches, a link between their third ports; s2 is not connected."""
    return StubRuntime(store, [{"dpid": dpid, "connected": dpid == S1,
                                "ports": [{"name": f"s{dpid[-1]}-eth{n}", "ofport": n,
                                           "mac": f"02:00:00:00:0{dpid[-1]}:0{n}"} for n in (1, 2, 3)],
                                "links": [{"port": 3, "peer_dpid": peer, "peer_port": 3}]}
                               for dpid, peer in ((S1, S2), (S2, S1))])


@pytest.fixture
def policy(store: Store) -> dict[str, Any]:
    """web-1 on s1 and db-1 on s2 in network blue, both in group ssh (tcp 22 in, anything out)."""
    blue = store.create_network({"name": "blue", "cidr": "10.0.0.0/24"})
    ssh = store.create_security_group({"name": "ssh"})
    store.create_security_group_rule({"security_group_id": ssh["id"], "direction": "ingress", "protocol": "tcp",
                                      "port_range_min": 22})
    return {name: store.create_port({"name": name, "network_id": blue["id"], "mac_address": f"fa:16:3e:00:00:{n}",
                                     "ip_address": f"10.0.0.{n}",
                                     "binding": {"dpid": dpid, "interface": f"s{dpid[-1]}-eth1"},
                                     "security_group_ids": [ssh["id"]]})
            for name, n, dpid in (("web-1", 11, S1), ("db-1", 12, S2))}


def test_the_readme_commands_explain_as_it_says(sdnctl: Run, served: Served, policy: dict[str, Any]) -> None:  # noqa: F811
    first, second, curl = commands()
    code, out, err = sdnctl(*shlex.split(first)[1:])
    assert code == 0, err
    assert out.startswith("verdict: output\n") and "output:  0000000000000002 s2-eth1 (port db-1)" in out
    shown = re.search(r"The first prints.*?```\n(.*?)```", section(), re.S)[1]
    printed = out.splitlines()
    missing = [line for line in shown.splitlines()  # the README cuts lines short, and leaves some out ("...")
               if line != "..." and not any(whole.startswith(line.rstrip()) for whole in printed)]
    assert not missing, f"README shows lines sdnctl does not print:\n{missing}\nit prints:\n{out}"

    code, out, err = sdnctl(*shlex.split(second)[1:])
    assert code == 0, err
    reply = json.loads(out)
    assert reply["verdict"] == "output" and reply["ct_state"] == "reply"
    assert reply["output"][0]["packet"]["udp_dst"] == 53

    argv = [served.url + arg.removeprefix("http://127.0.0.1:8080") if arg.startswith("http://") else arg
            for arg in shlex.split(curl)]
    answer = json.loads(subprocess.run(argv, check=True, capture_output=True, text=True, timeout=30).stdout)
    assert answer["verdict"] == "output" and answer["source"]["port"]["id"] == policy["web-1"]["id"]
    assert [(o["dpid"], o["port"]["id"]) for o in answer["output"]] == [(S2, policy["db-1"]["id"])]


def test_a_port_name_that_is_ambiguous_or_unknown_is_refused_naming_the_candidates(
        sdnctl: Run, store: Store, policy: dict[str, Any]) -> None:  # noqa: F811
    twin = store.create_port({"name": "web-1", "network_id": policy["web-1"]["network_id"],
                              "mac_address": "fa:16:3e:00:00:13", "ip_address": "10.0.0.13",
                              "binding": {"dpid": S1, "interface": "s1-eth2"}})
    code, _, err = sdnctl("trace", "--port", "web-1", "--ip-dst", "10.0.0.12")
    assert code == 1 and "2 ports are named web-1" in err
    assert policy["web-1"]["id"] in err and twin["id"] in err
    code, _, err = sdnctl("trace", "--port", "web-9", "--ip-dst", "10.0.0.12")
    assert code == 1 and "port web-9 not found" in err
    code, out, err = sdnctl("-o", "json", "trace", "--port", twin["id"], "--ip-dst", "10.0.0.12", "--tp-dst", "22")
    assert code == 0 and json.loads(out)["source"]["port"]["id"] == twin["id"], err

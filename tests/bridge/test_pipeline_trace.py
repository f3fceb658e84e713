"""Packet fates in a real OVS: the compiled pipeline installed by the Programmer, read by ofproto/trace.

Every packet also runs through apps.flowsim and the two must agree exactly (output ports, and the
frame at each output), so the simulator that the unit tests trust is itself checked against the
switch it models. Bridges are not wired together: a frame leaving a trunk is traced again on the
peer bridge, which is what a link would do with it.
"""

from __future__ import annotations

import ipaddress
import re
import subprocess
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from apps.compiler import compile_all
from apps.flows import (
    ETH_TYPE_ARP,
    ETH_TYPE_IP,
    ETH_TYPE_LLDP,
    OFPVID_PRESENT,
    int_to_mac,
    ip_to_int,
    mac_to_int,
    set_field,
)
from apps.flowsim import CONTROLLER, Packet, Port, SwitchTables, packet, run, run_fabric
from apps.model import Policy
from apps.topology import Topology
from controller.programmer import Programmer
from tests.unit.fabric_cases import S1, S2, S3, TENANT_A, TENANT_B, line_of_three, mac, one_switch

pytestmark = pytest.mark.timeout(60)

BROADCAST = "ff:ff:ff:ff:ff:ff"
Outputs = list[tuple[Port, Packet]]


# --- tracing ----------------------------------------------------------------------------------

_TRACE_NAMES = {"ipv4_src": "ip_src", "ipv4_dst": "ip_dst", "icmpv4_type": "icmp_type", "icmpv4_code": "icmp_code"}
_MAC_FIELDS = {"eth_src", "eth_dst", "arp_sha", "arp_tha"}
_IP_FIELDS = {"ipv4_src", "ipv4_dst", "arp_spa", "arp_tpa"}
# Fields of the datapath's set(eth(...)) and set(arp(...)) actions, by our names.
_SET_KEYS = {"eth": {"src": "eth_src", "dst": "eth_dst"},
             "arp": {"sip": "arp_spa", "tip": "arp_tpa", "op": "arp_op", "sha": "arp_sha", "tha": "arp_tha"}}


def _render(name: str, value: int) -> str:
    if name in _MAC_FIELDS:
        return int_to_mac(value)
    if name in _IP_FIELDS:
        return str(ipaddress.IPv4Address(value))
    return str(value)


def _split_actions(text: str) -> list[str]:
    """Split at the commas that are not inside parentheses."""
    actions, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            actions.append(text[start:i])
            start = i + 1
    return [*actions, text[start:]]


def datapath_outputs(passes: list[str], frame: Packet, dp_ports: dict[int, int]) -> Outputs:
    """(OpenFlow port, frame as sent) for each output of a trace's "Datapath actions:" lines.

    `passes` holds one line per datapath pass in the order traced: the packet's own, then one per
    recirculation (ct with a table) in the order they were emitted, each resuming with the frame as
    it was at its recirc(). Edits apply in order; OVS emits only the net change before each output.
    An action this parser does not know fails the test: ignoring it could turn a wrong fate into a
    passing one.
    """
    resumes, outputs = deque([dict(frame)]), []
    for actions in passes:
        frame = resumes.popleft()
        for action in _split_actions(actions):
            if action == "drop":
                continue
            if action.isdigit():
                outputs.append((dp_ports[int(action)], dict(frame)))
            elif action == "pop_vlan":
                del frame["vlan_vid"]
            elif push := re.fullmatch(r"push_vlan\(vid=(\d+),pcp=0\)", action):
                frame["vlan_vid"] = OFPVID_PRESENT | int(push[1])
            elif edit := re.fullmatch(r"set\((eth|arp)\((.*)\)\)", action):
                for item in edit[2].split(","):
                    key, value = item.split("=")
                    name = _SET_KEYS[edit[1]][key]
                    frame[name] = set_field(name, int(value) if value.isdigit() else value).value
            elif re.fullmatch(r"userspace\(.*controller\(.*\)\)", action):
                outputs.append((CONTROLLER, dict(frame)))
            elif re.fullmatch(r"recirc\(0x[0-9a-f]+\)", action):
                resumes.append(dict(frame))
            elif not re.fullmatch(r"ct\((?!.*nat).*\)", action):  # conntrack without NAT leaves the frame alone
                raise AssertionError(f"unmodelled datapath action {action!r} in {passes!r}")
    assert not resumes, f"a recirculation was not traced: {passes!r}"
    return outputs


def in_order(outputs: Outputs) -> Outputs:
    """Outputs sorted by port then frame: OVS emits each recirculation's outputs after the pass that forked it."""
    return sorted(outputs, key=lambda output: (str(output[0]), sorted(output[1].items())))


def trace_report(bridge: str, pkt: Packet, ct_next: Sequence[str] = ()) -> str:
    """ofproto/trace's report on `pkt`. Its recirculations resume with the ct_states of `ct_next` in order
    (flags such as "trk,est,rpl"), then with ofproto/trace's default, trk|new: a first packet."""
    spec = ",".join(f"{_TRACE_NAMES.get(name, name)}={_render(name, value)}" for name, value in pkt.items())
    options = [arg for flags in ct_next for arg in ("--ct-next", flags)]
    return subprocess.run(["ovs-appctl", "ofproto/trace", bridge, spec, *options], check=True,
                          capture_output=True, text=True, timeout=10).stdout


def report_outputs(report: str, pkt: Packet, dp_ports: dict[int, int]) -> Outputs:
    """The outputs of a trace_report() on `pkt`, in_order()."""
    passes = [line.removeprefix("Datapath actions: ") for line in report.splitlines()
              if line.startswith("Datapath actions: ")]
    frame = {name: value for name, value in pkt.items() if name != "in_port"}
    return in_order(datapath_outputs(passes, frame, dp_ports))


def trace(bridge: str, dp_ports: dict[int, int], pkt: Packet) -> Outputs:
    """Every recirculation resumes with ofproto/trace's default ct_state, trk|new: a first packet."""
    return report_outputs(trace_report(bridge, pkt), pkt, dp_ports)


def datapath_ports(bridge: str) -> dict[int, int]:
    """Datapath port -> OpenFlow port of our `{bridge}p{n}` ports (trace prints datapath ports)."""
    out = subprocess.run(["ovs-appctl", "dpif/show"], check=True, capture_output=True, text=True, timeout=10).stdout
    ports = {int(dp): int(of) for of, dp in re.findall(rf"^\s+{re.escape(bridge)}p\d+ (\d+)/(\d+):", out, re.M)}
    assert ports, f"no ports of {bridge} in dpif/show"
    return ports


# --- installed fabrics ------------------------------------------------------------------------

@dataclass(frozen=True)
class Fabric:
    topology: Topology
    bridges: dict[str, str]                # dpid -> bridge
    tables: dict[str, SwitchTables]        # dpid -> the simulator's view of the same flows
    dp_ports: dict[str, dict[int, int]]    # dpid -> datapath port -> OpenFlow port

    def fate(self, dpid: str, pkt: Packet) -> Outputs:
        """What OVS does with `pkt` (a first packet) on `dpid`'s bridge, in_order(); the simulator, with
        no connections yet, must predict exactly that."""
        seen = trace(self.bridges[dpid], self.dp_ports[dpid], pkt)
        assert seen == in_order(run(self.tables[dpid], pkt).outputs), f"OVS and flowsim disagree on {pkt}"
        return seen


def install(make_bridge, policy: Policy, topology: Topology, names: dict[str, str]) -> Fabric:
    desired = compile_all(policy, topology)
    programmer = Programmer(timeout=5.0)
    for switch in topology.switches:
        bridge = make_bridge(names[switch.dpid], len(switch.ports))
        result = programmer.sync(bridge.connect(switch.dpid).channel, desired[switch.dpid])
        assert result.added == len(desired[switch.dpid])
        bridge.disconnect()  # fail_mode=secure: the flows stay
    return Fabric(topology, names, {dpid: SwitchTables(flows.values()) for dpid, flows in desired.items()},
                  {dpid: datapath_ports(name) for dpid, name in names.items()})


@pytest.fixture(scope="module")
def single(make_bridge) -> Fabric:
    return install(make_bridge, *one_switch(), {S1: "pbts"})


@pytest.fixture(scope="module")
def line(make_bridge) -> Fabric:
    return install(make_bridge, *line_of_three(), {S1: "pbtl1", S2: "pbtl2", S3: "pbtl3"})


# --- packets ----------------------------------------------------------------------------------

def ip_packet(in_port: int, src: str, dst: str, ip_src: str, ip_dst: str, vlan: int = 0) -> Packet:
    return packet(in_port=in_port, eth_src=src, eth_dst=dst, vlan_vid=OFPVID_PRESENT | vlan if vlan else 0,
                  eth_type=ETH_TYPE_IP, ipv4_src=ip_src, ipv4_dst=ip_dst, ip_proto=6, tcp_src=40000, tcp_dst=80)


def arp_request(in_port: int, src_mac: str, src_ip: str, target_ip: str) -> Packet:
    return packet(in_port=in_port, eth_src=src_mac, eth_dst=BROADCAST, eth_type=ETH_TYPE_ARP, arp_op=1,
                  arp_spa=src_ip, arp_sha=src_mac, arp_tpa=target_ip, arp_tha="00:00:00:00:00:00")


def ports(outputs: Outputs) -> list[Port]:
    return [port for port, _ in outputs]


def sent(pkt: Packet, vlan: int = 0) -> Packet:
    """`pkt` as a frame leaving a port: no in_port; tagged with `vlan`, or untagged when it is 0."""
    frame = {name: value for name, value in pkt.items() if name not in ("in_port", "vlan_vid")}
    return {**frame, "vlan_vid": OFPVID_PRESENT | vlan} if vlan else frame


A1_TO_A2 = ip_packet(1, mac("a", 1), mac("a", 2), "10.0.0.2", "10.0.0.3")


# --- one switch -------------------------------------------------------------------------------

def test_same_network_unicast_goes_out_the_destination_port_unchanged(single):
    assert single.fate(S1, A1_TO_A2) == [(2, sent(A1_TO_A2))]


@pytest.mark.parametrize("dst", [mac("b", 2), mac("b", 1), "02:99:00:00:00:01"],
                         ids=["other-tenant", "other-tenant-same-ip", "unknown"])
def test_unicast_outside_the_network_is_dropped(single, dst):
    assert single.fate(S1, ip_packet(1, mac("a", 1), dst, "10.0.0.2", "10.0.0.3")) == []


@pytest.mark.parametrize("pkt", [
    ip_packet(1, "02:00:00:00:66:66", mac("a", 2), "10.0.0.2", "10.0.0.3"),
    ip_packet(1, mac("a", 1), mac("a", 2), "10.0.0.3", "10.0.0.3"),
    ip_packet(1, mac("a", 1), mac("a", 2), "10.0.0.200", "10.0.0.3"),
    arp_request(1, mac("a", 1), "10.0.0.3", "10.0.0.3"),
    {**arp_request(1, mac("a", 1), "10.0.0.2", "10.0.0.3"), "arp_sha": mac_to_int("02:00:00:00:66:66")},
    ip_packet(1, mac("a", 1), mac("a", 2), "10.0.0.2", "10.0.0.3", vlan=TENANT_A.segmentation_id),
], ids=["foreign-mac", "neighbour-ip", "unused-ip", "arp-neighbour-ip", "arp-foreign-sha", "tagged-from-vm"])
def test_spoofed_sources_are_dropped(single, pkt):
    assert single.fate(S1, pkt) == []


@pytest.mark.parametrize(("in_port", "tenant"), [(1, "a"), (3, "b")])
def test_arp_for_a_known_address_is_answered_back_out_the_in_port(single, in_port, tenant):
    """Both tenants ask for 10.0.0.3; each gets its own network's MAC, and nothing else leaves."""
    request = arp_request(in_port, mac(tenant, 1), "10.0.0.2", "10.0.0.3")
    [(port, reply)] = single.fate(S1, request)
    assert port == in_port
    assert reply == {**sent(request), "arp_op": 2,
                     "eth_src": mac_to_int(mac(tenant, 2)), "eth_dst": mac_to_int(mac(tenant, 1)),
                     "arp_sha": mac_to_int(mac(tenant, 2)), "arp_tha": mac_to_int(mac(tenant, 1)),
                     "arp_spa": ip_to_int("10.0.0.3"), "arp_tpa": ip_to_int("10.0.0.2")}


@pytest.mark.parametrize(("in_port", "tenant", "others"), [(1, "a", [2]), (3, "b", [4])])
def test_broadcast_reaches_only_the_networks_other_ports(single, in_port, tenant, others):
    assert ports(single.fate(S1, ip_packet(in_port, mac(tenant, 1), BROADCAST, "10.0.0.2", "10.0.0.255"))) == others
    assert ports(single.fate(S1, arp_request(in_port, mac(tenant, 1), "10.0.0.2", "10.0.0.99"))) == others


def test_lldp_goes_to_the_controller_only_from_trunks(line):
    lldp = packet(in_port=3, eth_src="aa:00:00:00:01:04", eth_dst="01:80:c2:00:00:0e", eth_type=ETH_TYPE_LLDP)
    assert ports(line.fate(S1, lldp)) == [CONTROLLER]
    assert ports(line.fate(S1, {**lldp, "in_port": 1})) == []  # a VM's port


# --- a line of three switches -----------------------------------------------------------------

def test_frame_for_a_remote_vm_leaves_tagged_with_its_network(line):
    pkt = ip_packet(1, mac("a", 1), mac("a", 3), "10.0.0.2", "10.0.0.4")
    assert line.fate(S1, pkt) == [(3, sent(pkt, TENANT_A.segmentation_id))]


def test_transit_switch_forwards_a_tagged_frame_still_tagged(line):
    pkt = ip_packet(3, mac("a", 1), mac("a", 3), "10.0.0.2", "10.0.0.4", vlan=TENANT_A.segmentation_id)
    assert line.fate(S2, pkt) == [(4, sent(pkt, TENANT_A.segmentation_id))]


def test_frame_from_a_trunk_reaches_the_local_vm_untagged(line):
    pkt = ip_packet(3, mac("a", 1), mac("a", 2), "10.0.0.2", "10.0.0.3", vlan=TENANT_A.segmentation_id)
    assert line.fate(S2, pkt) == [(1, sent(pkt))]


@pytest.mark.parametrize(("vlan", "dst"), [(999, mac("a", 2)), (TENANT_B.segmentation_id, mac("a", 2)),
                                           (TENANT_B.segmentation_id, mac("a", 3))],
                         ids=["unknown-vlan", "other-tenant-local", "other-tenant-transit"])
def test_trunk_frames_outside_their_network_are_dropped(line, vlan, dst):
    assert line.fate(S2, ip_packet(3, mac("a", 1), dst, "10.0.0.2", "10.0.0.3", vlan=vlan)) == []


def test_tagged_broadcast_on_a_transit_switch_goes_to_local_ports_untagged_and_on_tagged(line):
    pkt = ip_packet(3, mac("b", 1), BROADCAST, "10.0.0.2", "10.0.0.255", vlan=TENANT_B.segmentation_id)
    assert line.fate(S2, pkt) == [(2, sent(pkt)), (4, sent(pkt, TENANT_B.segmentation_id))]


def ovs_fabric(fabric: Fabric, dpid: str, pkt: Packet) -> list[tuple[str, Port, Packet]]:
    """Follow `pkt` across the fabric by tracing it again on the peer of every trunk it leaves by."""
    peers = {}
    for link in fabric.topology.links:
        peers[(link.a_dpid, link.a_port)] = (link.b_dpid, link.b_port)
        peers[(link.b_dpid, link.b_port)] = (link.a_dpid, link.a_port)
    deliveries = []
    queue = deque([(dpid, pkt)])
    while queue:
        assert len(deliveries) + len(queue) < 20, "frame loops"
        here, arriving = queue.popleft()
        for port, frame in fabric.fate(here, arriving):
            if (here, port) in peers:
                peer, peer_port = peers[(here, port)]
                queue.append((peer, {**frame, "in_port": peer_port}))
            else:
                deliveries.append((here, port, frame))
    return deliveries


@pytest.mark.parametrize(("dpid", "pkt", "reaches"), [
    (S1, ip_packet(1, mac("a", 1), mac("a", 3), "10.0.0.2", "10.0.0.4"), [(S3, 1)]),
    (S3, ip_packet(2, mac("b", 3), mac("b", 1), "10.0.0.4", "10.0.0.2"), [(S1, 2)]),
    (S1, ip_packet(1, mac("a", 1), mac("b", 3), "10.0.0.2", "10.0.0.4"), []),
    (S2, arp_request(1, mac("a", 2), "10.0.0.3", "10.0.0.99"), [(S1, 1), (S3, 1)]),
    (S1, ip_packet(2, mac("b", 1), BROADCAST, "10.0.0.2", "10.0.0.255"), [(S2, 2), (S3, 2)]),
], ids=["a-s1-to-s3", "b-s3-to-s1", "cross-tenant", "arp-flood-from-middle", "broadcast-from-end"])
def test_switch_by_switch_traces_agree_with_the_fabric_simulator(line, dpid, pkt, reaches):
    seen = ovs_fabric(line, dpid, pkt)
    assert sorted((d, p) for d, p, _ in seen) == reaches
    assert all("vlan_vid" not in frame for _, _, frame in seen), "a VM received a tagged frame"
    simulated = run_fabric(line.tables, line.topology, dpid, pkt)
    assert sorted(map(repr, seen)) == sorted(repr(tuple(d)) for d in simulated)


def test_parser_applies_edits_in_order_and_resumes_recirculations_from_their_fork():
    """The parser alone, on a line of each kind ofproto/trace prints: a wrong parser makes every fate moot."""
    frame = sent(A1_TO_A2)
    passes = ["push_vlan(vid=101,pcp=0),9,pop_vlan,ct(zone=5),recirc(0x1),set(eth(src=02:00:00:00:00:09,"
              "dst=02:00:00:00:00:08)),ct(zone=6),recirc(0x2)",
              "ct(commit,zone=5),7",
              "drop"]
    assert datapath_outputs(passes, frame, {7: 1, 9: 3}) == [(3, sent(A1_TO_A2, 101)), (1, frame)]
    with pytest.raises(AssertionError, match="unmodelled"):
        datapath_outputs(["ct(commit,zone=5,nat(src=10.0.0.9)),7"], frame, {7: 1})
    with pytest.raises(AssertionError, match="not traced"):
        datapath_outputs(["ct(zone=5),recirc(0x1)"], frame, {7: 1})

"""Packet fates in a real OVS: the compiled pipeline installed by the Programmer, read by ofproto/trace.

Every packet also runs through apps.flowsim and the two must agree exactly (output ports, and the
frame at each output), so the simulator that the unit tests trust is itself checked against the
switch it models. Bridges are not wired together: a frame leaving a trunk is traced again on the
peer bridge, which is what a link would do with it.
"""

from __future__ import annotations

import re
import subprocess
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from datapath import Outputs, datapath_outputs

from apps.compiler import Compiler
from apps.fields import FIELD, IPV4, MAC, Scope
from apps.flows import (
    ETH_TYPE_ARP,
    ETH_TYPE_IP,
    ETH_TYPE_LLDP,
    OFPVID_PRESENT,
    Flow,
    Output,
    ip_to_int,
    mac_to_int,
    match,
    set_field,
)
from apps.flowsim import CONTROLLER, Packet, Port, SwitchTables, packet, run, run_fabric
from apps.model import Policy
from apps.topology import Topology
from controller.programmer import Programmer
from tests.unit.fabric_cases import S1, S2, S3, TENANT_A, TENANT_B, line_of_three, mac, one_switch

pytestmark = pytest.mark.timeout(60)

BROADCAST = "ff:ff:ff:ff:ff:ff"


# --- tracing ----------------------------------------------------------------------------------

def in_order(outputs: Outputs) -> Outputs:
    """Outputs sorted by port then frame: OVS emits each recirculation's outputs after the pass that forked it."""
    return sorted(outputs, key=lambda output: (str(output[0]), sorted(output[1].items())))


def trace_report(bridge: str, pkt: Packet, ct_next: Sequence[str] = ()) -> str:
    """ofproto/trace's report on `pkt`. Its recirculations resume with the ct_states of `ct_next` in order
    (flags such as "trk,est,rpl"), then with ofproto/trace's default, trk|new: a first packet."""
    spec = ",".join(f"{FIELD[name].ovs_name}={FIELD[name].text.render(value)}" for name, value in pkt.items())
    options = [arg for flags in ct_next for arg in ("--ct-next", flags)]
    return subprocess.run(["ovs-appctl", "ofproto/trace", bridge, spec, *options], check=True,
                          capture_output=True, text=True, timeout=10).stdout


def report_outputs(report: str, pkt: Packet, dp_ports: dict[int, int]) -> Outputs:
    """The outputs of a trace_report() on `pkt`, in_order()."""
    passes = [line.removeprefix("Datapath actions: ") for line in report.splitlines()
              if line.startswith("Datapath actions: ")]
    frame = {name: value for name, value in pkt.items() if FIELD[name].scope is Scope.FRAME}
    return in_order(datapath_outputs(passes, frame, dp_ports))


def frames(outputs: Outputs) -> Outputs:
    """Outputs as a trace shows them: the frames alone (flowsim keeps a packet-in's registers too)."""
    return [(port, {name: value for name, value in frame.items() if FIELD[name].scope is Scope.FRAME})
            for port, frame in outputs]


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
        assert seen == in_order(frames(run(self.tables[dpid], pkt).outputs)), f"OVS and flowsim disagree on {pkt}"
        return seen


def install(make_bridge, policy: Policy, topology: Topology, names: dict[str, str]) -> Fabric:
    compiler = Compiler()
    compiler.load(policy, topology)
    compiler.commit()
    programmer = Programmer(timeout=5.0)
    tables = {}
    for switch in topology.switches:
        desired, groups = dict(compiler.table(switch.dpid)), dict(compiler.groups(switch.dpid))
        bridge = make_bridge(names[switch.dpid], len(switch.ports))
        result = programmer.sync(bridge.connect(switch.dpid).channel, desired, groups=groups)
        assert (result.added, result.groups) == (len(desired), len(groups))
        bridge.disconnect()  # fail_mode=secure: the flows stay
        tables[switch.dpid] = SwitchTables(desired.values(), groups=groups.values())
    return Fabric(topology, names, tables, {dpid: datapath_ports(name) for dpid, name in names.items()})


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
        datapath_outputs(["hash(l4(0)),7"], frame, {7: 1})
    natted = datapath_outputs(["ct(commit,zone=5,nat(src=10.0.0.9:1024-2000)),set(ipv4(ttl=63)),7"], frame, {7: 1})
    assert natted == [(1, {**frame, "ipv4_src": 0x0A000009, "tcp_src": 1024, "nw_ttl": 63})]
    with pytest.raises(AssertionError, match="not traced"):
        datapath_outputs(["ct(zone=5),recirc(0x1)"], frame, {7: 1})


# Frames whose headers hold every field a flow may set, one per kind of prerequisite.
_FRAMES = {
    "tcp": {"eth_type": ETH_TYPE_IP, "ipv4_src": "10.0.0.2", "ipv4_dst": "10.0.0.3", "ip_proto": 6, "tcp_src": 40000,
            "tcp_dst": 80},
    "udp": {"eth_type": ETH_TYPE_IP, "ipv4_src": "10.0.0.2", "ipv4_dst": "10.0.0.3", "ip_proto": 17, "udp_src": 68,
            "udp_dst": 67},
    "icmp": {"eth_type": ETH_TYPE_IP, "ipv4_src": "10.0.0.2", "ipv4_dst": "10.0.0.3", "ip_proto": 1,
             "icmpv4_type": 8, "icmpv4_code": 0},
    "arp": {"eth_type": ETH_TYPE_ARP, "arp_op": 1, "arp_spa": "10.0.0.2", "arp_tpa": "10.0.0.3",
            "arp_sha": mac("a", 1), "arp_tha": "00:00:00:00:00:00"},
}
_NEW_VALUES = {MAC: "0a:00:00:00:00:99", IPV4: "10.9.9.9"}


def test_a_set_field_of_each_frame_field_reads_back_by_its_declared_datapath_key(make_bridge):
    """Every field declaring a `datapath` (header, key): a flow that sets it alone, traced, must show the
    frame flowsim predicts, which it can only if the parser finds the field by that key."""
    settable = [declared for declared in FIELD.values() if declared.datapath]
    flows, packets = [], []
    for n, declared in enumerate(settable, start=1):
        prereqs = {need: min(allowed) for need, allowed in declared.prereqs}
        kind = next((kind for kind, frame in _FRAMES.items()
                     if all(frame.get(need) == value for need, value in prereqs.items())), "tcp")
        value = _NEW_VALUES.get(declared.text, 2 if declared.name == "arp_op" else 99)
        flows.append(Flow("classify", 100, match(reg0=n, **prereqs), (set_field(declared.name, value), Output(2))))
        packets.append(packet(in_port=1, reg0=n, eth_src=mac("a", 1), eth_dst=mac("a", 2), **_FRAMES[kind]))
    bridge = make_bridge("pbtset", 2)
    assert Programmer(timeout=5.0).sync(bridge.connect(S1).channel, {f.key: f for f in flows}).added == len(flows)
    bridge.disconnect()
    tables, dp_ports = SwitchTables(flows), datapath_ports("pbtset")
    for declared, pkt in zip(settable, packets, strict=True):
        [(port, frame)] = trace("pbtset", dp_ports, pkt)
        assert (port, frame) == in_order(run(tables, pkt).outputs)[0], declared.name
        assert frame != sent({**pkt, "reg0": 0}), f"{declared.name} was not changed"

"""Security groups in a real OVS: connection states through the compiled ct stages, read by ofproto/trace.

ofproto/trace has no conntrack of its own: `--ct-next FLAGS` names the ct_state each recirculation resumes
with. Here those states are not made up: apps.flowsim's Conntrack, primed with the packets that come
first (the request before its reply, ...), reaches them by itself, and each case asserts that it did
before the switch is told the same. OVS and the simulator must then agree on the outputs, on every flow
hit on the way, and on the zone of every ct lookup and commit.

--ct-next cannot set ct_mark. ofproto/trace hands a recirculation the ct_mark the packet had before its
ct action, though, so a mark given in the traced flow reaches the first ct stage: enough to trace the
reply of a revoked connection, which is dropped there.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from conftest import Bridge
from test_pipeline_trace import (
    BROADCAST,
    Fabric,
    Outputs,
    in_order,
    install,
    ip_packet,
    ovs_fabric,
    report_outputs,
    sent,
    trace_report,
)

from apps.actions import Nat
from apps.compiler import compile_all
from apps.flows import (
    CT_EST,
    CT_INV,
    CT_NEW,
    CT_REL,
    CT_RPL,
    CT_TRK,
    ETH_TYPE_ARP,
    ETH_TYPE_IP,
    IP_PROTO,
    OFPVID_PRESENT,
    mac_to_int,
)
from apps.flowsim import Conntrack, Packet, SwitchTables, packet, run
from apps.model import Policy
from apps.pipeline import PIPELINE, PRIO_MISS
from apps.security_groups import PRIO_CT_INVALID, PRIO_NO_DHCP_SERVER, PRIO_PASS, PRIO_REVOKE, PRIO_UNFILTERED
from apps.topology import Topology
from controller.programmer import Programmer
from tests.unit.fabric_cases import S1, S2, S3, TENANT_A, TENANT_B, line_of_three, line_vm, switch
from tests.unit.test_security_groups import GROUPS, WEB, a

pytestmark = [pytest.mark.bridge, pytest.mark.timeout(60)]

# Tenant A on one switch, VM n on port n. CLIENT's address is the one WEB's udp/53 rule names (10.0.0.3/32);
# OUTSIDER is in the same /24 but not that /32; MEMBER and PEER are in "default", whose ingress rule admits
# its own members only; the OPEN ports have port security disabled.
SERVER, CLIENT, OUTSIDER, MEMBER, PEER, OPEN, OPEN_PEER = range(1, 8)
VMS = {SERVER: a(SERVER, "web"), CLIENT: a(CLIENT, "client"), OUTSIDER: a(OUTSIDER, "client"),
       MEMBER: a(MEMBER, "default"), PEER: a(PEER, "default"),
       OPEN: a(OPEN, secure=False), OPEN_PEER: a(OPEN_PEER, secure=False)}
TOPOLOGY = Topology((switch(S1, len(VMS)),))
POLICY = Policy((TENANT_A,), tuple(VMS.values()), GROUPS)
ZONE = {n: port.key for n, port in VMS.items()}
TABLE_NAMES = {table.number: table.name for table in PIPELINE}
CT_FLAGS = {"new": CT_NEW, "est": CT_EST, "rel": CT_REL, "rpl": CT_RPL, "inv": CT_INV, "trk": CT_TRK}
ECHO_REQUEST, ECHO_REPLY, DEST_UNREACHABLE = 8, 0, 3


# --- packets ----------------------------------------------------------------------------------

def ip(src: int, dst: int, proto: str, **layer4: int) -> Packet:
    """IPv4 from VM `src` to VM `dst`, addresses as registered; `layer4` gives ports or the ICMP type/code."""
    return packet(in_port=src, eth_src=VMS[src].mac_address, eth_dst=VMS[dst].mac_address, eth_type=ETH_TYPE_IP,
                  ipv4_src=VMS[src].ip_address, ipv4_dst=VMS[dst].ip_address, ip_proto=IP_PROTO[proto], **layer4)


def tcp(src: int, dst: int, sport: int, dport: int) -> Packet:
    return ip(src, dst, "tcp", tcp_src=sport, tcp_dst=dport)


def udp(src: int, dst: int, sport: int, dport: int) -> Packet:
    return ip(src, dst, "udp", udp_src=sport, udp_dst=dport)


def icmp(src: int, dst: int, icmp_type: int, code: int = 0) -> Packet:
    return ip(src, dst, "icmp", icmpv4_type=icmp_type, icmpv4_code=code)


def arp(src: int, op: int, target: str, target_mac: str, eth_dst: str) -> Packet:
    return packet(in_port=src, eth_src=VMS[src].mac_address, eth_dst=eth_dst, eth_type=ETH_TYPE_ARP, arp_op=op,
                  arp_spa=VMS[src].ip_address, arp_sha=VMS[src].mac_address, arp_tpa=target, arp_tha=target_mac)


# --- connection state, simulated and traced ---------------------------------------------------

class StagedConntrack(Conntrack):
    """The simulator's conntrack, noting each ct lookup (the compiled stages recirculate only from ct
    without commit) and each commit, so that the trace can be told the same states and checked against them."""

    def __init__(self) -> None:
        super().__init__()
        self.lookups: list[tuple[int, int, int]] = []    # (zone, ct_state, ct_mark)
        self.commits: list[tuple[int, int | None]] = []  # (zone, ct_mark set)
        self.mark_masks: list[int | None] = []            # the mask of each commit's ct_mark (None: all bits)

    def track(self, dpid: str, zone: int, pkt: Packet, commit: bool, set_mark: int | None,
              mark_mask: int | None = None, nat: Nat | None = None) -> tuple[int, int]:
        assert nat is None, "these stages do not translate"
        state, mark = self.state(dpid, zone, pkt, commit, set_mark, mark_mask)
        if commit:
            self.commits.append((zone, set_mark))
            self.mark_masks.append(mark_mask)
        else:
            self.lookups.append((zone, state, mark))
        return state, mark

    def state(self, dpid: str, zone: int, pkt: Packet, commit: bool, set_mark: int | None,
              mark_mask: int | None) -> tuple[int, int]:
        return super().track(dpid, zone, pkt, commit, set_mark, mark_mask)


class RelatedConntrack(StagedConntrack):
    """Every packet +trk+rel: the simulator's Conntrack does not model ICMP errors, so for related packets
    the state is given here, as it is to the trace, instead of being reached."""

    def state(self, dpid: str, zone: int, pkt: Packet, commit: bool, set_mark: int | None,
              mark_mask: int | None) -> tuple[int, int]:
        return CT_TRK | CT_REL, 0


def primed(fabric: Fabric, *earlier: Packet) -> StagedConntrack:
    """Connections as the simulator leaves them after `earlier` packets, each of which must be delivered."""
    conntrack = StagedConntrack()
    for pkt in earlier:
        assert run(fabric.tables[S1], pkt, conntrack).outputs, f"priming packet dropped: {pkt}"
    return conntrack


@dataclass(frozen=True)
class Fate:
    """What OVS did with one packet; the simulator predicted all of it."""

    outputs: Outputs
    hits: list[tuple[str, int]]               # (table, priority) of every flow hit, recirculations in order
    lookups: list[int]                        # zone of every ct stage (a ct that recirculates)
    commits: list[tuple[int, int | None]]     # (zone, ct_mark set) of every ct(commit)
    mark_masks: list[int | None]              # the mask of each of those ct_marks (None: all 32 bits)


def fate(fabric: Fabric, pkt: Packet, ct_next: list[str], conntrack: StagedConntrack | None = None,
         dpid: str = S1) -> Fate:
    """Trace `pkt` on switch `dpid` with `ct_next` after checking that the simulator's conntrack (a fresh one
    unless given) puts it in exactly those states, then check that OVS and the simulator agree on everything."""
    conntrack = StagedConntrack() if conntrack is None else conntrack
    conntrack.lookups.clear()
    conntrack.commits.clear()
    conntrack.mark_masks.clear()
    simulated = run(fabric.tables[dpid], pkt, conntrack)
    states = [sum(CT_FLAGS[flag] for flag in flags.split(",")) for flags in ct_next]
    assert [state for _, state, _ in conntrack.lookups] == states, f"the simulator sees other states than {ct_next}"
    marks = [mark for _, _, mark in conntrack.lookups]
    assert not any(marks[1:]), f"a trace can give ct_mark to the first ct stage only: {conntrack.lookups}"
    report = trace_report(fabric.bridges[dpid], {**pkt, "ct_mark": marks[0]} if any(marks) else pkt, ct_next)
    seen = traced(report, pkt, fabric.dp_ports[dpid])
    predicted = Fate(in_order(simulated.outputs), [(table, flow.priority) for table, flow in simulated.path],
                     [zone for zone, _, _ in conntrack.lookups], conntrack.commits, conntrack.mark_masks)
    assert seen == predicted, f"OVS and flowsim disagree on {pkt} with --ct-next {ct_next}:\n{report}"
    return seen


def traced(report: str, pkt: Packet, dp_ports: dict[int, int]) -> Fate:
    """A trace_report() read: flows hit from its "NN. match, priority P, cookie C" lines, ct stages and
    commits from its datapath actions (OpenFlow's ct actions name a register, the datapath's the zone)."""
    hits = re.findall(r"^\s*(\d+)\. (?:.*, )?priority (\d+), cookie", report, re.M)
    lookups = re.findall(r"\bct\(zone=(\d+)\),recirc\(", report)
    commits = re.findall(r"\bct\(commit,zone=(\d+)(?:,mark=(\w+)/(\w+))?\)", report)
    return Fate(report_outputs(report, pkt, dp_ports),
                [(TABLE_NAMES[int(table)], int(priority)) for table, priority in hits],
                [int(zone) for zone in lookups],
                [(int(zone), int(mark, 0) if mark else None) for zone, mark, _ in commits],
                [_mark_mask(mask) if mark else None for _, mark, mask in commits])


def _mark_mask(mask: str) -> int | None:
    """The datapath shows a whole mark with mask 0xffffffff: no mask, in Ct's terms."""
    return None if int(mask, 0) == 0xFFFFFFFF else int(mask, 0)


@pytest.fixture(scope="module")
def sg(make_bridge: Callable[[str, int], Bridge]) -> Fabric:
    return install(make_bridge, POLICY, TOPOLOGY, {S1: "sgt"})


# --- new connections ----------------------------------------------------------------------------

ALLOWED = {
    "tcp-port-range": tcp(CLIENT, SERVER, 40000, 81),
    "udp-from-prefix": udp(CLIENT, SERVER, 5353, 53),
    "icmp-from-subnet": icmp(OUTSIDER, SERVER, ECHO_REQUEST),
    "remote-group": tcp(MEMBER, PEER, 40000, 5000),
}
DENIED = {
    "tcp-outside-range": tcp(CLIENT, SERVER, 40000, 82),
    "udp-outside-prefix": udp(OUTSIDER, SERVER, 5353, 53),
    "not-in-remote-group": tcp(CLIENT, PEER, 40000, 5000),
}


def destination(pkt: Packet) -> int:
    return next(n for n, port in VMS.items() if mac_to_int(port.mac_address) == pkt["eth_dst"])


@pytest.mark.parametrize("pkt", ALLOWED.values(), ids=ALLOWED.keys())
def test_a_new_connection_an_ingress_rule_allows_is_committed_in_both_zones_and_delivered(sg, pkt):
    src, dst = pkt["in_port"], destination(pkt)
    seen = fate(sg, pkt, ["trk,new", "trk,new"])
    assert seen.outputs == [(dst, sent(pkt))]
    assert seen.lookups == [ZONE[src], ZONE[dst]]
    assert seen.commits == [(ZONE[src], 0), (ZONE[dst], 0)]


@pytest.mark.parametrize("pkt", DENIED.values(), ids=DENIED.keys())
def test_a_new_connection_no_rule_allows_is_dropped_at_ingress_ct(sg, pkt):
    src = pkt["in_port"]
    seen = fate(sg, pkt, ["trk,new", "trk,new"])
    assert seen.outputs == []
    assert seen.hits[-1] == ("ingress_ct", PRIO_MISS)
    assert seen.commits == [(ZONE[src], 0)]  # egress allowed it; ingress commits nothing


def test_a_server_without_egress_rules_starts_nothing(sg):
    seen = fate(sg, tcp(SERVER, CLIENT, 80, 40000), ["trk,new"])
    assert seen.outputs == [] and seen.hits[-1] == ("egress_ct", PRIO_MISS) and seen.commits == []


# --- replies, related, invalid ------------------------------------------------------------------

@pytest.mark.parametrize(("request_", "answer"), [
    (tcp(CLIENT, SERVER, 40000, 80), tcp(SERVER, CLIENT, 80, 40000)),
    (udp(CLIENT, SERVER, 5353, 53), udp(SERVER, CLIENT, 53, 5353)),
    (icmp(OUTSIDER, SERVER, ECHO_REQUEST), icmp(SERVER, OUTSIDER, ECHO_REPLY)),
], ids=["tcp", "udp", "icmp-echo"])
def test_a_reply_passes_both_stages_though_no_rule_allows_its_direction(sg, request_, answer):
    """SERVER has no egress rule and its clients no ingress rule: only the connection lets the answer back."""
    seen = fate(sg, answer, ["trk,est,rpl", "trk,est,rpl"], primed(sg, request_))
    assert seen.outputs == [(request_["in_port"], sent(answer))]
    assert [hit for hit in seen.hits if hit[0].endswith("_ct")] == [("egress_ct", PRIO_PASS), ("ingress_ct", PRIO_PASS)]
    assert seen.commits == []


@pytest.mark.parametrize(("pkt", "stage"), [
    (icmp(SERVER, OUTSIDER, ECHO_REPLY), "egress_ct"),
    (icmp(OPEN, SERVER, ECHO_REPLY), "ingress_ct"),  # no egress ct from an unfiltered port
], ids=["at-egress", "at-ingress"])
def test_an_invalid_packet_is_dropped(sg, pkt, stage):
    """An echo reply nobody asked for is +trk+inv."""
    seen = fate(sg, pkt, ["trk,inv"])
    assert seen.outputs == [] and seen.hits[-1] == (stage, PRIO_CT_INVALID) and seen.commits == []


def test_a_related_packet_passes_both_stages(sg):
    """Say an ICMP port-unreachable about an earlier connection: no rule allows SERVER to send it."""
    pkt = icmp(SERVER, CLIENT, DEST_UNREACHABLE, code=3)
    seen = fate(sg, pkt, ["trk,rel", "trk,rel"], RelatedConntrack())
    assert seen.outputs == [(CLIENT, sent(pkt))] and seen.commits == []


# --- what skips conntrack -----------------------------------------------------------------------

# A port without port security passes its ACL stages by its own, higher-priority flow (PRIO_UNFILTERED), so
# ARP on it never meets two flows of one priority (OVS would pick arbitrarily; the simulator would refuse).
@pytest.mark.parametrize(("pkt", "receivers", "ingress_stages"), [
    (arp(CLIENT, 2, VMS[OUTSIDER].ip_address, VMS[OUTSIDER].mac_address, VMS[OUTSIDER].mac_address),
     [OUTSIDER], 1),
    pytest.param(arp(CLIENT, 1, "10.0.0.99", "00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff"),
                 [n for n in VMS if n != CLIENT], len(VMS)),  # in_port's stage too
    pytest.param(arp(OPEN, 2, VMS[SERVER].ip_address, VMS[SERVER].mac_address, VMS[SERVER].mac_address),
                 [SERVER], 1),
], ids=["unicast-reply", "broadcast-request", "from-an-open-port"])
def test_arp_passes_both_acl_stages_untouched(sg, pkt, receivers, ingress_stages):
    """ARP never meets conntrack, whatever the groups say: OUTSIDER's allow it no ingress at all."""
    seen = fate(sg, pkt, [])
    assert seen.outputs == [(n, sent(pkt)) for n in receivers]
    acl_hits = [hit for hit in seen.hits if hit[0].endswith("_acl")]
    assert [table for table, _ in acl_hits] == ["egress_acl"] + ["ingress_acl"] * ingress_stages
    assert {priority for _, priority in acl_hits} <= {PRIO_PASS, PRIO_UNFILTERED}
    assert seen.lookups == [] and seen.commits == []


@pytest.mark.parametrize(("pkt", "zones"), [
    (tcp(OPEN, OPEN_PEER, 40000, 1234), []),
    (tcp(CLIENT, OPEN, 40000, 1234), [ZONE[CLIENT]]),
    (tcp(OPEN, SERVER, 40000, 80), [ZONE[SERVER]]),
], ids=["both-open", "to-open", "from-open"])
def test_a_port_without_port_security_skips_its_ct_stage(sg, pkt, zones):
    dst = destination(pkt)
    seen = fate(sg, pkt, ["trk,new"] * len(zones))
    assert seen.outputs == [(dst, sent(pkt))]
    assert seen.lookups == zones and [zone for zone, _ in seen.commits] == zones


# --- DHCP servers -------------------------------------------------------------------------------

def dhcp_reply(src: int, dst: int | None) -> Packet:
    """A DHCP server's OFFER or ACK (UDP 67 -> 68) from VM `src` to VM `dst`, or broadcast."""
    eth_dst, ip_dst = (VMS[dst].mac_address, VMS[dst].ip_address) if dst else (BROADCAST, "255.255.255.255")
    return packet(in_port=src, eth_src=VMS[src].mac_address, eth_dst=eth_dst, eth_type=ETH_TYPE_IP,
                  ipv4_src=VMS[src].ip_address, ipv4_dst=ip_dst, ip_proto=IP_PROTO["udp"], udp_src=67, udp_dst=68)


@pytest.mark.parametrize("dst", [MEMBER, None], ids=["unicast", "broadcast"])
def test_a_dhcp_server_reply_from_a_port_with_port_security_is_dropped_as_it_leaves(sg, dst):
    """CLIENT may send anything anywhere, and DHCP replies pass every ingress stage: only its egress can stop it,
    above the pass flows and below the unfiltered ports' flows."""
    seen = fate(sg, dhcp_reply(CLIENT, dst), [])
    assert seen.outputs == [] and seen.commits == []
    assert seen.hits[-1] == ("egress_acl", PRIO_NO_DHCP_SERVER) and PRIO_PASS < PRIO_NO_DHCP_SERVER < PRIO_UNFILTERED


@pytest.mark.parametrize("dst", [MEMBER, None], ids=["unicast", "broadcast"])
def test_a_port_without_port_security_may_serve_dhcp(sg, dst):
    pkt = dhcp_reply(OPEN, dst)
    seen = fate(sg, pkt, [])
    assert seen.outputs == [(n, sent(pkt)) for n in ([dst] if dst else VMS) if n != OPEN]


# --- revocation ---------------------------------------------------------------------------------

def test_removing_a_rule_drops_its_established_connection_and_marks_it_so_replies_stop(make_bridge):
    """Its own bridge, since the rule change is programmed into it."""
    bridges: list[Bridge] = []

    def keep(name: str, n_ports: int) -> Bridge:
        bridges.append(make_bridge(name, n_ports))
        return bridges[-1]

    before = install(keep, POLICY, TOPOLOGY, {S1: "sgtr"})
    request, answer = tcp(CLIENT, SERVER, 40000, 80), tcp(SERVER, CLIENT, 80, 40000)
    conntrack = primed(before, request, answer)  # established both ways

    without_http = tuple(dataclasses.replace(g, rules=tuple(r for r in g.rules if r.id != "w-http"))
                         if g.id == WEB.id else g for g in GROUPS)
    desired = compile_all(dataclasses.replace(POLICY, security_groups=without_http), TOPOLOGY)[S1]
    result = Programmer(timeout=5.0).sync(bridges[0].connect(S1).channel, desired)
    bridges[0].disconnect()
    assert result.deleted and not result.added
    after = dataclasses.replace(before, tables={S1: SwitchTables(desired.values())})

    seen = fate(after, request, ["trk,est", "trk,est"], conntrack)
    assert seen.outputs == [] and seen.hits[-1] == ("ingress_ct", PRIO_REVOKE)
    assert seen.commits == [(ZONE[CLIENT], 0), (ZONE[SERVER], 1)]  # the revocation: ct(commit, ct_mark=1)

    # The reply's first stage is SERVER's zone, where the connection now carries ct_mark=1.
    seen = fate(after, answer, ["trk,est,rpl"], conntrack)
    assert seen.outputs == [] and seen.hits[-1] == ("egress_ct", PRIO_MISS) and seen.commits == []


# --- across switches ----------------------------------------------------------------------------

# The line of three switches. b3 (switch 3) admits members of "default" only: b2 (switch 2) is one; b1 (switch 1)
# is not, but has the address of a1 (switch 1, tenant A), which is.
LINE_VMS = {port.id: port for port in (
    line_vm(TENANT_A, 1, groups=("default",)), line_vm(TENANT_B, 1, groups=("client",)),
    line_vm(TENANT_B, 2, groups=("default",)), line_vm(TENANT_B, 3, groups=("default",)))}
LINE = line_of_three()[1]
TO_B3 = {src: ip_packet(LINE.switch(LINE_VMS[src].dpid).ofport(LINE_VMS[src].interface), LINE_VMS[src].mac_address,
                        LINE_VMS["b3"].mac_address, LINE_VMS[src].ip_address, LINE_VMS["b3"].ip_address)
         for src in ("b1", "b2")}
ADMITTED_BY_B3 = {"b2": True, "b1": False}


@pytest.fixture(scope="module")
def sg_line(make_bridge: Callable[[str, int], Bridge]) -> Fabric:
    policy = Policy((TENANT_A, TENANT_B), tuple(LINE_VMS.values()), GROUPS)
    return install(make_bridge, policy, LINE, {S1: "sgtl1", S2: "sgtl2", S3: "sgtl3"})


@pytest.mark.parametrize("src", ADMITTED_BY_B3, ids=["member", "non-member-with-a-members-address"])
def test_a_tagged_frame_from_a_trunk_meets_the_destination_ports_ingress_rules(sg_line, src):
    """Switch 3 learns the frame's network from its tag alone; b3's rules then decide in b3's zone."""
    b3 = LINE_VMS["b3"]
    [trunk] = [link.port_on(S3) for link in LINE.links if S3 in (link.a_dpid, link.b_dpid)]
    pkt = {**TO_B3[src], "in_port": trunk, "vlan_vid": OFPVID_PRESENT | TENANT_B.segmentation_id}
    seen = fate(sg_line, pkt, ["trk,new"], dpid=S3)
    assert seen.lookups == [b3.key]
    if ADMITTED_BY_B3[src]:
        assert seen.outputs == [(LINE.switch(S3).ofport(b3.interface), sent(pkt))]
        assert seen.commits == [(b3.key, 0)]
    else:
        assert seen.outputs == [] and seen.hits[-1] == ("ingress_ct", PRIO_MISS) and seen.commits == []


@pytest.mark.parametrize("src", ADMITTED_BY_B3, ids=["member", "non-member-with-a-members-address"])
def test_a_new_connection_across_switches_is_admitted_by_membership_not_by_address(sg_line, src):
    seen = ovs_fabric(sg_line, LINE_VMS[src].dpid, TO_B3[src])
    assert [(dpid, port) for dpid, port, _ in seen] == ([(S3, 2)] if ADMITTED_BY_B3[src] else [])

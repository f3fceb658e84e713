"""POST /v1/trace's explanations against OVS itself: hypothesis makes policies (two tenants with one address range,
a router to a third network, port security on or off, security groups with random rules) and packets (any source,
any destination, tcp/udp/icmp, every ct_state, TTLs that run out), apps.explain says where each goes, and
`ovs-appctl ofproto/trace` on two real bridges holding the same flows must say the same, frame for frame.

The bridges are not wired together: a frame that leaves by the link is traced again on the peer bridge, entering
by its end of the link (as tests/bridge/test_pipeline_trace.py's ovs_fabric does). ofproto/trace has no
conntrack: each recirculation resumes with --ct-next's state, or trk|new by default, which is what a new
connection meets (the generated policies translate nothing). Bounded: 60 policies with 4 packets each, about 10 s.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable

import pytest
from conftest import Bridge
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_pipeline_trace import datapath_ports, frames, report_outputs, trace_report

from apps.compiler import Compiler
from apps.explain import CT_STATES, Compiled, Request, explain
from apps.fields import CT_EST, CT_INV, CT_NEW, CT_REL, CT_RPL, CT_TRK, Packet
from apps.model import Network, Policy, Port, Router, RouterInterface, SecurityGroup, SecurityGroupRule, with_profiles
from apps.topology import Link, Topology
from controller.programmer import Programmer
from tests.unit.fabric_cases import S1, S2, switch

pytestmark = [pytest.mark.bridge, pytest.mark.timeout(120)]

VM_SLOTS = [(dpid, n) for dpid in (S1, S2) for n in (1, 2, 3, 4)]  # port 5 of each switch is the link
LINK = 5
TOPOLOGY = Topology((switch(S1, 5), switch(S2, 5)), (Link.between(S1, LINK, S2, LINK),))
BRIDGES = {S1: "pxt1", S2: "pxt2"}
A = Network("net-a", "a", "10.0.0.0/24", "10.0.0.1", 101)
B = Network("net-b", "b", "10.0.0.0/24", "10.0.0.1", 202)  # A's range, another tenant
C = Network("net-c", "c", "10.1.0.0/24", "10.1.0.1", 303)
ROUTER = Router("r", "r", "fa:16:3f:00:00:01", 900, (RouterInterface(A.id, "10.0.0.1"), RouterInterface(C.id,
                                                                                                       "10.1.0.1")))
GROUP_IDS = ("g1", "g2")
FLAGS = {CT_TRK: "trk", CT_NEW: "new", CT_EST: "est", CT_REL: "rel", CT_RPL: "rpl", CT_INV: "inv"}
RECIRCULATIONS = 8  # more than any packet's ct stages, across both switches


@st.composite
def rules(draw: st.DrawFn, group: str, first_key: int) -> tuple[SecurityGroupRule, ...]:
    made = []
    for i in range(draw(st.integers(0, 3))):
        protocol = draw(st.sampled_from([None, "tcp", "udp", "icmp"]))
        low = draw(st.sampled_from([None, 22, 53, 80])) if protocol in ("tcp", "udp") else None
        high = None if low is None else low + draw(st.sampled_from([0, 0, 1, 400]))
        remote = draw(st.sampled_from([None, "prefix", "group"]))
        made.append(SecurityGroupRule(
            f"{group}-r{i}", group, draw(st.sampled_from(["ingress", "egress"])), protocol, low, high,
            draw(st.sampled_from(["10.0.0.0/24", "10.0.0.2/32", "10.1.0.0/16"])) if remote == "prefix" else None,
            draw(st.sampled_from(GROUP_IDS)) if remote == "group" else None, key=first_key + i))
    return tuple(made)


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    """2-6 ports on the 8 slots, in A, B or C, each network's from .2 up (so tenants A and B share addresses)."""
    slots = draw(st.lists(st.sampled_from(VM_SLOTS), min_size=2, max_size=6, unique=True))
    ports = []
    for i, (dpid, n) in enumerate(slots):
        network = draw(st.sampled_from([A, B, C]))
        secure = draw(st.booleans())
        groups = tuple(draw(st.lists(st.sampled_from(GROUP_IDS), max_size=2, unique=True))) if secure else ()
        address = f"{network.cidr.rsplit('.', 1)[0]}.{2 + sum(p.network_id == network.id for p in ports)}"
        ports.append(Port(f"p{i}", network.id, f"p{i}", f"02:00:00:00:{int(dpid, 16):02x}:{n:02x}", address, dpid,
                          f"s{int(dpid, 16)}-eth{n}", secure, groups, key=10 + i))
    groups = tuple(SecurityGroup(g, g, draw(rules(g, 100 * (k + 1)))) for k, g in enumerate(GROUP_IDS))
    routers = (ROUTER,) if draw(st.booleans()) else ()
    return Policy((A, B, C), with_profiles(ports), groups, routers=routers)


@st.composite
def requests(draw: st.DrawFn, policy: Policy) -> Request:
    """From a port to another port of its network by address, to any port by MAC and address (across tenants
    too), or through the router to the other network (a port there, or an address nobody has)."""
    source = draw(st.sampled_from(policy.ports))
    others = [p for p in policy.ports if p != source]
    neighbours = [p for p in others if p.network_id == source.network_id]
    routed = policy.routers and source.network_id in (A.id, C.id)
    kind = draw(st.sampled_from(["mac"] + ["address"] * bool(neighbours) + ["router"] * bool(routed)))
    eth_dst = None
    if kind == "address":
        ip_dst = draw(st.sampled_from(neighbours)).ip_address
    elif kind == "mac":
        target = draw(st.sampled_from(others))
        ip_dst, eth_dst = target.ip_address, target.mac_address
    else:
        far = C.id if source.network_id == A.id else A.id
        ip_dst = draw(st.sampled_from([p.ip_address for p in others if p.network_id == far]
                                      + ["10.1.0.9" if far == C.id else "10.0.0.9"]))
    protocol = draw(st.sampled_from(["tcp", "udp", "icmp"]))
    return Request(port_id=source.id, ip_dst=ip_dst, eth_dst=eth_dst, protocol=protocol,
                   tp_dst=draw(st.sampled_from([22, 53, 80, 443])) if protocol != "icmp" else None,
                   ct_state=draw(st.sampled_from(list(CT_STATES))), ttl=draw(st.sampled_from([1, 2, 64])))


def installed(bridges: dict[str, Bridge], policy: Policy) -> Compiled:
    """`policy` compiled and installed on both bridges (replacing what they held)."""
    compiler = Compiler()
    compiler.load(policy, TOPOLOGY)
    compiler.commit()
    for dpid, bridge in bridges.items():
        Programmer(timeout=5.0).sync(bridge.connect(dpid).channel, dict(compiler.table(dpid)))
        bridge.disconnect()  # fail_mode=secure: the flows stay
    return compiler.compiled(TOPOLOGY)


def ovs_deliveries(dp_ports: dict[str, dict[int, int]], pkt: Packet, ct_state: str) -> list[tuple[str, object, dict]]:
    """Where OVS sends `pkt` (entering S1 or S2 as its in_port says), following it over the link."""
    state = CT_STATES[ct_state]
    ct_next = [] if ct_state == "new" else [",".join(name for bit, name in FLAGS.items() if state & bit)] \
        * RECIRCULATIONS
    peers = {(S1, LINK): (S2, LINK), (S2, LINK): (S1, LINK)}
    found, queue = [], deque([(pkt["dpid"], {k: v for k, v in pkt.items() if k != "dpid"})])
    while queue:
        assert len(found) + len(queue) < 20, "frame loops"
        dpid, arriving = queue.popleft()
        for port, frame in report_outputs(trace_report(BRIDGES[dpid], arriving, ct_next), arriving, dp_ports[dpid]):
            if (dpid, port) in peers:
                peer, peer_port = peers[(dpid, port)]
                queue.append((peer, {**frame, "in_port": peer_port}))
            else:
                found.append((dpid, port, frame))
    return sorted(found, key=repr)


@pytest.fixture(scope="module")
def bridges(make_bridge: Callable[[str, int], Bridge]) -> dict[str, Bridge]:
    return {dpid: make_bridge(name, 5) for dpid, name in BRIDGES.items()}


def test_explanations_agree_with_ofproto_trace(bridges: dict[str, Bridge]) -> None:
    dp_ports = {dpid: datapath_ports(name) for dpid, name in BRIDGES.items()}
    verdicts: Counter[str] = Counter()

    @settings(max_examples=60, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.data())
    def check(data: st.DataObject) -> None:
        policy = data.draw(policies())
        compiled = installed(bridges, policy)
        for _ in range(4):
            request = data.draw(requests(policy))
            told = explain(policy, compiled, request)
            predicted = sorted(((r.endpoint.dpid, port, frame) for r in told.reached
                                for port, frame in frames([(r.endpoint.ofport, r.packet)])), key=repr)
            seen = ovs_deliveries(dp_ports, {**told.packet, "dpid": told.source.dpid}, request.ct_state)
            assert [(d, str(p)) for d, p, _ in seen] == [(d, str(p)) for d, p, _ in predicted], request
            assert seen == predicted, f"{request}: OVS {seen} vs explain {predicted}"
            verdicts[told.verdict] += 1

    check()
    assert set(verdicts) == {"output", "drop", "controller"}, verdicts  # every kind of answer was checked

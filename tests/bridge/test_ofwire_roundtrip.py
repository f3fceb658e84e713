"""ofwire against a real OVS 3.1 bridge: what we encode is accepted and reads back byte-identical.

Byte identity of match and instructions after a round trip through the switch is what lets the
programmer diff desired against installed flows without decoding them, and see "no change" after
a controller restart.
"""

from __future__ import annotations

import itertools
import socket
import struct
import subprocess
import time

import pytest
from ofclient import OFClient, errors_of

from apps.actions import Multipath
from apps.flows import (
    CT_EST,
    CT_INV,
    CT_NEW,
    CT_RPL,
    CT_TRK,
    ETH_TYPE_ARP,
    ETH_TYPE_IP,
    ETH_TYPE_LLDP,
    FIELDS,
    MULTICAST_BIT,
    OFPP_IN_PORT,
    OFPVID_PRESENT,
    Conjunction,
    Ct,
    DecTtl,
    Flow,
    Move,
    Nat,
    Output,
    PopVlan,
    PushVlan,
    Resubmit,
    controller,
    ct_state,
    ip_to_int,
    match,
    set_field,
)
from apps.flowsim import FlowError, SwitchTables
from apps.pipeline import REG_DST_ZONE, REG_SRC_ZONE, table_id
from controller import lldp, ofwire

pytestmark = [pytest.mark.bridge, pytest.mark.timeout(120)]

BRIDGE = "owc1"
PORTS = {f"{BRIDGE}p1": 1, f"{BRIDGE}p2": 2}


def vsctl(*args: str) -> str:
    return subprocess.run(["ovs-vsctl", "-t", "10", *args], check=True, capture_output=True, text=True).stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def client():
    """A fresh secure-mode netdev bridge listening for OpenFlow, and a client connected to it."""
    port = free_port()
    vsctl("--if-exists", "del-br", BRIDGE)
    try:
        vsctl("add-br", BRIDGE, "--", "set", "bridge", BRIDGE, "datapath_type=netdev",
              "protocols=OpenFlow13", "fail_mode=secure")
        for name, ofport in PORTS.items():
            vsctl("add-port", BRIDGE, name, "--", "set", "interface", name, "type=internal",
                  f"ofport_request={ofport}")
        vsctl("set-controller", BRIDGE, f"ptcp:{port}:127.0.0.1")
        of = OFClient("127.0.0.1", port)
        try:
            yield of
        finally:
            of.close()
    finally:
        vsctl("--if-exists", "del-br", BRIDGE)


_xids = itertools.count(1)


def xid() -> int:
    return next(_xids)


def wire(flow: Flow) -> tuple[tuple[int, int, bytes], tuple[int, bytes]]:
    key = (table_id(flow.table), flow.priority, ofwire.encode_match(flow.match))
    return key, (flow.cookie, ofwire.encode_instructions(flow.actions, flow.goto, flow.meter))


def install(of: OFClient, flows: list[Flow], commit: bool = True) -> dict[int, tuple[int, int]]:
    """One atomic bundle of ADDs; returns the errors (by xid) seen before the barrier.

    Commits only if no ADD failed (an ADD's error does not stop a later COMMIT applying the rest).
    """
    bundle, flags = xid(), ofwire.BUNDLE_FLAGS
    messages = [ofwire.bundle_open(xid(), bundle, flags)]
    for flow in flows:
        (table, priority, match_bytes), (cookie, instructions) = wire(flow)
        message_xid = xid()
        inner = ofwire.flow_mod(message_xid, ofwire.OFPFC_ADD, table, priority, match_bytes, instructions, cookie)
        messages.append(ofwire.bundle_add(message_xid, bundle, flags, inner))
    of.send(b"".join(messages))
    errors = errors_of(of.barrier(xid()))
    finish = ofwire.bundle_commit if commit and not errors else ofwire.bundle_discard
    of.send(finish(xid(), bundle, flags))
    errors.update(errors_of(of.barrier(xid())))
    return errors


def installed(of: OFClient) -> dict[tuple[int, int, bytes], tuple[int, bytes]]:
    return {(f.table_id, f.priority, f.match): (f.cookie, f.instructions) for f in of.dump_flows(xid())}


MAC_A, MAC_B, GW_MAC = "0a:00:00:00:00:01", "0a:00:00:00:00:02", "0a:00:00:00:00:fe"
COOKIES = itertools.count(0x0200000000000001)

# Prerequisites (as match fields) that let a flow match or move each field.
PREREQUISITES = {
    "vlan_vid": {"vlan_vid": (OFPVID_PRESENT, OFPVID_PRESENT)},  # only a tagged frame's VID can be read or set
    **dict.fromkeys(("ip_proto", "ipv4_src", "ipv4_dst", "nw_ttl"), {"eth_type": ETH_TYPE_IP}),
    **dict.fromkeys(("tcp_src", "tcp_dst"), {"eth_type": ETH_TYPE_IP, "ip_proto": 6}),
    **dict.fromkeys(("udp_src", "udp_dst"), {"eth_type": ETH_TYPE_IP, "ip_proto": 17}),
    **dict.fromkeys(("icmpv4_type", "icmpv4_code"), {"eth_type": ETH_TYPE_IP, "ip_proto": 1}),
    **dict.fromkeys(("arp_op", "arp_spa", "arp_tpa", "arp_sha", "arp_tha"), {"eth_type": ETH_TYPE_ARP}),
}
# Fields no flow may set: read-only ones, and ct_mark (settable only inside ct's exec).
NOT_SETTABLE = {"in_port", "eth_type", "ip_proto", "ct_state", "ct_zone", "conj_id", "ct_mark"}
SAMPLE = {"eth_dst": MAC_B, "eth_src": MAC_A, "arp_sha": MAC_A, "arp_tha": MAC_B, "vlan_vid": OFPVID_PRESENT | 7,
          "ipv4_src": "10.0.0.1", "ipv4_dst": "10.0.0.2", "arp_spa": "10.0.0.1", "arp_tpa": "10.0.0.2",
          "eth_type": ETH_TYPE_IP, "ip_proto": 6}


def flow(table: str, priority: int, fields: dict, actions=(), goto: str | None = None) -> Flow:
    return Flow(table, priority, match(**fields), tuple(actions), goto, next(COOKIES))


# Conjunction 7 = reg2=2 AND tcp_dst=80 AND ipv4_src in 10.0.0.0/24; 8 = reg2=2 AND tcp_dst=22. The reg2
# clause flow is shared by both. All clauses of one conjunction: same table, same priority.
CONJUNCTIONS = [
    flow("ingress_acl", 500, {"reg2": 2}, [Conjunction(7, 1, 3), Conjunction(8, 1, 2)]),
    flow("ingress_acl", 500, {"eth_type": ETH_TYPE_IP, "ip_proto": 6, "tcp_dst": 80}, [Conjunction(7, 2, 3)]),
    flow("ingress_acl", 500, {"eth_type": ETH_TYPE_IP, "ipv4_src": "10.0.0.0/24"}, [Conjunction(7, 3, 3)]),
    flow("ingress_acl", 500, {"eth_type": ETH_TYPE_IP, "ip_proto": 6, "tcp_dst": 22}, [Conjunction(8, 2, 2)]),
    flow("ingress_acl", 500, {"conj_id": 7}, [Output(2)]),
    flow("ingress_acl", 500, {"conj_id": 8}, [Output(1)]),
]


def every_kind_of_flow() -> list[Flow]:
    """Flows covering every match field (exact and masked) and every action kind and field."""
    flows = [
        flow("classify", 100, {"in_port": 1, "eth_src": MAC_A},
             [set_field("reg0", 1), set_field("reg1", 100)], goto="arp_responder"),
        flow("classify", 100, {"in_port": 2, "vlan_vid": OFPVID_PRESENT | 100}, [PopVlan()], goto="l2_lookup"),
        flow("classify", 90, {"in_port": 2, "vlan_vid": (OFPVID_PRESENT, OFPVID_PRESENT)}),
        flow("classify", 80, {"in_port": 2, "vlan_vid": 0},
             [PushVlan(), set_field("vlan_vid", OFPVID_PRESENT | 5), Output(1)]),
        flow("classify", 65000, {"eth_type": ETH_TYPE_LLDP}, [controller()]),
        flow("classify", 0, {}),
        flow("classify", 110, {"in_port": 1, "eth_type": ETH_TYPE_ARP, "arp_op": 1, "arp_spa": "10.0.0.1",
                               "arp_tpa": "10.0.0.2", "arp_sha": MAC_A, "arp_tha": MAC_B}, [Output(OFPP_IN_PORT)]),
        # ARP responder: the frame goes back out where it came from, as a reply from the gateway.
        flow("arp_responder", 100, {"eth_type": ETH_TYPE_ARP, "arp_op": 1, "arp_tpa": "10.0.0.254", "reg1": 100},
             [Move("eth_src", "eth_dst", 48), set_field("eth_src", GW_MAC), set_field("arp_op", 2),
              Move("arp_sha", "arp_tha", 48), Move("arp_spa", "arp_tpa", 32), set_field("arp_sha", GW_MAC),
              set_field("arp_spa", "10.0.0.254"), Output(OFPP_IN_PORT)]),
        flow("arp_responder", 0, {}, goto="l2_lookup"),
        flow("l2_lookup", 100, {"eth_dst": (MULTICAST_BIT, MULTICAST_BIT), "reg1": 100}, [Output(1), Output(2)]),
        flow("l2_lookup", 100, {"eth_dst": MAC_B, "reg1": 100}, [set_field("reg2", 2)], goto="port_out"),
        flow("l2_lookup", 90, {"eth_type": ETH_TYPE_IP, "ip_proto": 6, "ipv4_src": "10.0.0.0/24",
                               "ipv4_dst": "10.1.0.5", "tcp_src": 1234, "tcp_dst": 80},
             [set_field("ipv4_dst", "10.1.0.6"), set_field("tcp_dst", 8080), Output(2)]),
        flow("l2_lookup", 90, {"eth_type": ETH_TYPE_IP, "ip_proto": 17, "ipv4_dst": "10.0.0.0/8",
                               "udp_src": 53, "udp_dst": 5353},
             [set_field("ipv4_src", "10.9.9.9"), set_field("udp_src", 54), set_field("udp_dst", 55), Output(1)]),
        flow("l2_lookup", 90, {"eth_type": ETH_TYPE_IP, "ip_proto": 1, "icmpv4_type": 8, "icmpv4_code": 0},
             [set_field("icmpv4_type", 0), set_field("icmpv4_code", 0), set_field("eth_dst", MAC_A),
              Output(OFPP_IN_PORT)]),
        flow("l2_lookup", 80, {f"reg{n}": n + 1 for n in range(8)},
             [set_field(f"reg{n}", 0xFFFFFFFF - n) for n in range(8)] + [Output(3, max_len=0)]),
        flow("l2_lookup", 70, {"reg2": (0x10, 0xF0), "reg3": (0x80000000, 0x80000000)}, goto="port_out"),
        flow("port_out", 100, {"reg2": 2}, [Output(2)]),
        # Conntrack: zone from a register or immediate, recirculation, commit with a mark.
        flow("egress_acl", 100, {"eth_type": ETH_TYPE_IP}, [Ct(zone_reg=REG_SRC_ZONE, table="egress_ct")]),
        flow("egress_ct", 100, {"ct_state": ct_state(CT_TRK | CT_EST, CT_RPL)}, goto="l2_lookup"),
        flow("egress_ct", 90, {"ct_state": CT_TRK | CT_INV}),  # exact: OVS reads it back masked 0xff
        flow("egress_ct", 80, {"eth_type": ETH_TYPE_IP, "ct_state": ct_state(CT_TRK | CT_NEW), "ct_zone": 7,
                               "ct_mark": (0, 1)}, [Ct(commit=True, zone=7)], goto="l2_lookup"),
        flow("ingress_ct", 100, {"eth_type": ETH_TYPE_IP, "ct_state": ct_state(CT_TRK | CT_NEW, CT_EST),
                                 "ct_mark": 0}, [Ct(commit=True, zone_reg=REG_DST_ZONE, set_mark=1)], goto="port_out"),
        # TCP from port 1 goes (as a subroutine) through the conjunctions below.
        flow("classify", 120, {"in_port": 1, "eth_type": ETH_TYPE_IP, "ip_proto": 6},
             [set_field("reg2", 2), Resubmit("ingress_acl")]),
        *CONJUNCTIONS,
        flow("lb_ct", 100, {"eth_type": ETH_TYPE_IP}, [Multipath(12, "reg10")], goto="lb_pick"),
    ]
    # A move out of every field, and into every writable one, with each field's prerequisites.
    for priority, name in enumerate(FIELDS, start=200):
        bits = 12 if name == "vlan_vid" else min(FIELDS[name], 32)  # a move sees the VID only, not PRESENT
        actions = [Move(name, "reg4", bits)]
        if name not in NOT_SETTABLE and not name.startswith("reg"):
            actions.append(Move("reg5", name, bits))
            actions.append(set_field(name, SAMPLE.get(name, 1)))
        flows.append(flow("port_out", priority, PREREQUISITES.get(name, {}), actions))
    return flows


def test_every_field_and_action_reads_back_byte_identical(client):
    flows = every_kind_of_flow()
    assert install(client, flows) == {}
    expected = dict(wire(f) for f in flows)
    got = installed(client)
    assert set(got) == set(expected), "matches read back differently"
    for key, value in expected.items():
        assert got[key] == value, f"instructions or cookie differ for {key}"
    dump = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", BRIDGE],
                          check=True, capture_output=True, text=True).stdout
    assert "move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[]" in dump
    assert "CONTROLLER:65535" in dump
    assert "ct(commit,zone=NXM_NX_REG4[0..15],exec(set_field:0x1->ct_mark))" in dump
    assert "conjunction(7,1/3),conjunction(8,1/2)" in dump
    assert "multipath(nw_src,0,hrw,12,0,NXM_NX_REG10[])" in dump


# ct_mark matched and set by bits (a mask), never whole: OF1.3's set_field has no mask, so these are
# NXAST_REG_LOAD inside ct's exec, one per run of mask bits; a masked set_field outside ct is the same.
MASKED_MARKS = [
    flow("egress_ct", 70, {"eth_type": ETH_TYPE_IP, "ct_state": ct_state(CT_TRK | CT_EST, CT_RPL), "ct_mark": (0, 1)},
         [Ct(commit=True, zone_reg=REG_SRC_ZONE, set_mark=0, mark_mask=1)], goto="l2_lookup"),
    flow("ingress_ct", 90, {"eth_type": ETH_TYPE_IP, "ct_state": ct_state(CT_TRK | CT_EST, CT_RPL)},
         [Ct(commit=True, zone_reg=REG_DST_ZONE, set_mark=1, mark_mask=1)]),
    flow("ingress_ct", 80, {"eth_type": ETH_TYPE_IP, "ct_state": ct_state(CT_TRK | CT_NEW), "ct_mark": (2, 2)},
         [Ct(commit=True, zone=7, set_mark=0x80000005, mark_mask=0x80000007)], goto="port_out"),
    flow("l2_lookup", 60, {"reg1": 5}, [set_field("reg3", (0x30, 0xF0)), Output(1)]),
]


def test_masked_ct_mark_forms_read_back_byte_identical(client):
    assert install(client, MASKED_MARKS) == {}
    assert installed(client) == dict(map(wire, MASKED_MARKS))
    dump = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "--no-stats", "dump-flows", BRIDGE],
                          check=True, capture_output=True, text=True).stdout
    for text in ("ct_mark=0/0x1", "ct(commit,zone=NXM_NX_REG3[0..15],exec(load:0->NXM_NX_CT_MARK[0]))",
                 "ct(commit,zone=NXM_NX_REG4[0..15],exec(load:0x1->NXM_NX_CT_MARK[0]))", "ct_mark=0x2/0x2",
                 "exec(load:0x5->NXM_NX_CT_MARK[0..2],load:0x1->NXM_NX_CT_MARK[31])", "load:0x3->NXM_NX_REG3[4..7]"):
        assert text in dump
    described = {text for f in MASKED_MARKS for text in ofwire.describe_instructions(wire(f)[1][1], {})}
    assert {"load:0x3->NXM_NX_REG3[4..7]",
            "ct(commit,zone=7,exec(load:0x5->NXM_NX_CT_MARK[0..2],load:0x1->NXM_NX_CT_MARK[31]))"} <= described


# NAT inside ct, and dec_ttl: every form of range OVS encodes, with and without commit, mark and table.
NATS = [Nat(), Nat("src", ip_to_int("203.0.113.5")),
        Nat("src", ip_to_int("203.0.113.5"), port_min=1024, port_max=65535),
        Nat("src", ip_to_int("10.0.0.5"), ip_to_int("10.0.0.9")), Nat("dst", ip_to_int("10.0.0.5"), port_min=80),
        Nat("dst", ip_to_int("10.0.0.5"), ip_to_int("10.0.0.6"), 8080, 8081)]
NAT_FLOWS = [
    flow("egress_acl", 100 + n, {"eth_type": ETH_TYPE_IP, "reg9": n},
         [Ct(commit=nat.kind is not None, zone=5, nat=nat, table="egress_ct")]) for n, nat in enumerate(NATS)
] + [
    flow("egress_ct", 100, {"eth_type": ETH_TYPE_IP, "reg15": 1},
         [Ct(commit=True, zone_reg="reg8", nat=NATS[2], set_mark=2, mark_mask=2), DecTtl(), set_field("nw_ttl", 255)],
         goto="l2_lookup"),
    flow("egress_ct", 90, {"eth_type": 0x86DD}, [DecTtl(), Ct(zone=9, nat=Nat())]),
]


def test_nat_and_dec_ttl_read_back_byte_identical(client):
    assert install(client, NAT_FLOWS) == {}
    assert installed(client) == dict(map(wire, NAT_FLOWS))
    dump = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "--no-stats", "dump-flows", BRIDGE],
                          check=True, capture_output=True, text=True).stdout
    for text in ("nat(src=203.0.113.5:1024-65535)", "nat(src=10.0.0.5-10.0.0.9)", "nat(dst=10.0.0.5:80)",
                 "nat(dst=10.0.0.5-10.0.0.6:8080-8081)", "ct(table=21,zone=5,nat)", "dec_ttl", "set_field:255->nw_ttl",
                 "ct(commit,zone=NXM_NX_REG8[0..15],nat(src=203.0.113.5:1024-65535),exec(load:0x1->NXM_NX_CT_MARK[1]))"):
        assert text in dump
    described = {text for f in NAT_FLOWS for text in ofwire.describe_instructions(wire(f)[1][1], {21: "egress_ct"})}
    assert {"ct(commit,zone=5,nat(src=203.0.113.5:1024-65535),table=egress_ct)", "ct(zone=5,nat,table=egress_ct)",
            "ct(commit,zone=NXM_NX_REG8[0..15],nat(src=203.0.113.5:1024-65535),exec(load:0x1->NXM_NX_CT_MARK[1]))",
            "dec_ttl", "set_field:255->nw_ttl"} <= described


@pytest.mark.parametrize(("actions", "fields"), [
    ([Ct(zone=5, nat=NATS[1])], {"eth_type": ETH_TYPE_IP}),                 # a range needs commit
    ([Ct(commit=True, zone=5, nat=NATS[1])], {"eth_type": 0x86DD}),           # an IPv4 range needs IPv4
    ([DecTtl()], {}),                                                         # dec_ttl needs IP
], ids=["nat-range-without-commit", "ipv4-nat-on-ipv6", "dec-ttl-without-ip"])
def test_what_ovs_refuses_flowsim_refuses(client, actions, fields):
    refused = flow("egress_acl", 100, fields, actions)
    assert install(client, [refused], commit=False) != {}
    with pytest.raises(FlowError):
        SwitchTables([refused])


def trace(flow_text: str) -> str:
    return subprocess.run(["ovs-appctl", "ofproto/trace", BRIDGE, flow_text],
                          check=True, capture_output=True, text=True).stdout


def test_packet_matching_every_clause_hits_the_conj_id_flow(client):
    assert install(client, every_kind_of_flow()) == {}
    hit = [line.strip() for line in trace("in_port=1,tcp,nw_src=10.0.0.5,tp_dst=80").splitlines()]
    conj_flow = f"{table_id('ingress_acl')}. conj_id=7, priority 500"
    assert any(line.startswith(conj_flow) for line in hit), hit
    assert hit[[line.startswith(conj_flow) for line in hit].index(True) + 1] == "output:2"
    assert hit[-1].startswith("Datapath actions: ") and hit[-1] != "Datapath actions: drop"
    # One clause short (source outside 10.0.0.0/24): no conjunction, nothing matches, dropped.
    miss = trace("in_port=1,tcp,nw_src=10.9.0.5,tp_dst=80")
    assert "conj_id" not in miss
    assert miss.rstrip().endswith("Datapath actions: drop")


def test_modify_strict_and_delete_strict_touch_exactly_one_flow(client):
    flows = [flow("l2_lookup", 100, {"eth_dst": mac, "reg1": 7}, [Output(1)]) for mac in (MAC_A, MAC_B)]
    assert install(client, flows) == {}
    (table, priority, match_a), _ = wire(flows[0])
    (_, _, match_b), (cookie_b, _) = wire(flows[1])
    new_instructions = ofwire.encode_instructions((Output(2),), "port_out")
    client.send(ofwire.flow_mod(xid(), ofwire.OFPFC_MODIFY_STRICT, table, priority, match_b, new_instructions,
                                cookie_b))
    client.send(ofwire.flow_mod(xid(), ofwire.OFPFC_DELETE_STRICT, table, priority, match_a, b"", 0))
    assert errors_of(client.barrier(xid())) == {}
    assert installed(client) == {(table, priority, match_b): (cookie_b, new_instructions)}


def test_bad_add_is_reported_with_its_xid_and_discard_changes_nothing(client):
    good = every_kind_of_flow()[:5]
    assert install(client, good) == {}
    before = installed(client)
    bundle, flags = 4242, ofwire.BUNDLE_FLAGS
    xids = {name: xid() for name in ("open", "ok", "no_prereq", "backward_goto", "ok2", "barrier")}
    adds = {
        "ok": flow("l2_lookup", 5, {"reg1": 1}, [Output(1)]),
        "no_prereq": Flow("l2_lookup", 5, (("ipv4_src", 0x0A000001, None),), (Output(1),)),  # no eth_type
        "backward_goto": flow("l2_lookup", 6, {"reg1": 2}, goto="classify"),
        "ok2": flow("l2_lookup", 7, {"reg1": 3}, [Output(2)]),
    }
    messages = [ofwire.bundle_open(xids["open"], bundle, flags)]
    for name, bad in adds.items():
        (table, priority, match_bytes), (cookie, instructions) = wire(bad)
        inner = ofwire.flow_mod(0, ofwire.OFPFC_ADD, table, priority, match_bytes, instructions, cookie)
        messages.append(ofwire.bundle_add(xids[name], bundle, flags, inner))
    client.send(b"".join(messages))
    errors = errors_of(client.barrier(xids["barrier"]))
    assert set(errors) == {xids["no_prereq"], xids["backward_goto"]}
    client.send(ofwire.bundle_discard(xid(), bundle, flags))
    assert errors_of(client.barrier(xid())) == {}
    assert installed(client) == before
    dump = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "--no-stats", "dump-flows", BRIDGE],
                          check=True, capture_output=True, text=True).stdout
    assert len(dump.splitlines()) == len(good)


def test_big_dump_spans_reply_parts_and_parses_back(client):
    flows = [flow("l2_lookup", 100, {"eth_dst": f"0a:00:00:{n >> 16 & 0xFF:02x}:{n >> 8 & 0xFF:02x}:{n & 0xFF:02x}",
                                     "reg1": n % 50}, [set_field("reg2", n % 48 + 1)], goto="port_out")
             for n in range(10000)]
    assert install(client, flows) == {}
    parts = client.flow_stats(xid())
    assert len(parts) > 1, "expected a multi-part reply"
    got = ofwire.parse_flow_stats(b"".join(part.data[16:] for part in parts))
    assert {(f.table_id, f.priority, f.match): (f.cookie, f.instructions) for f in got} == dict(map(wire, flows))


def test_lean_parser_feeds_os_ken_raw_bodies(client, monkeypatch):
    from os_ken.ofproto import ofproto_parser
    from os_ken.ofproto import ofproto_v1_3_parser as parser

    assert install(client, every_kind_of_flow()[:8]) == {}
    reply = client.flow_stats(xid())[0]
    header = struct.unpack_from("!BBHI", reply.data)
    stock = ofproto_parser.msg(None, *header, reply.data)
    monkeypatch.setitem(parser._MSG_PARSERS, ofwire.OFPT_MULTIPART_REPLY,
                        parser._MSG_PARSERS[ofwire.OFPT_MULTIPART_REPLY])
    ofwire.install_lean_flow_stats_parser()
    ofwire.install_lean_flow_stats_parser()  # idempotent
    lean = ofproto_parser.msg(None, *header, reply.data)
    assert type(lean) is parser.OFPFlowStatsReply
    assert (lean.type, lean.flags, lean.xid) == (stock.type, stock.flags, stock.xid)
    assert lean.body == reply.data[16:]
    ours = ofwire.parse_flow_stats(lean.body)
    assert [(f.table_id, f.priority, f.cookie, f.packet_count) for f in ours] == \
        [(s.table_id, s.priority, s.cookie, s.packet_count) for s in stock.body]
    # Other multipart types still get os-ken's own parsing.
    desc_xid = xid()
    client.send(struct.pack("!BBHIHH4x", 4, ofwire.OFPT_MULTIPART_REQUEST, 16, desc_xid, 0, 0))  # OFPMP_DESC
    while (desc := client.recv()).xid != desc_xid:  # skip port-status and other async messages
        pass
    assert ofproto_parser.msg(None, *struct.unpack_from("!BBHI", desc.data), desc.data).body.mfr_desc


def test_lldp_packet_out_comes_back_as_packet_in(client):
    assert install(client, [flow("classify", 65000, {"eth_type": ETH_TYPE_LLDP}, [controller()])]) == {}
    frame = lldp.frame("00000000000000ab", 7, "0a:00:00:00:00:07", b"secret", time.time())
    client.send(ofwire.packet_out(xid(), 0xFFFFFFF9, frame))  # OFPP_TABLE: through the pipeline
    while (message := client.recv()).type != 10:  # OFPT_PACKET_IN
        pass
    match_len = struct.unpack_from("!H", message.data, 26)[0]
    data = message.data[24 + match_len + (-match_len % 8) + 2:]
    assert data == frame
    assert lldp.sender(data, b"secret", time.time(), max_age=5) == ("00000000000000ab", 7)

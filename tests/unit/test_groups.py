"""Select groups: the engine keeps them per switch like flows, flowsim spreads connections over buckets by weight
as OVS's dp_hash table does, and GroupAction is checked in the context of the flow that calls it."""

from __future__ import annotations

import struct
from collections import Counter

import pytest

from apps.flows import (
    CT_DNAT,
    CT_NEW,
    CT_TRK,
    ETH_TYPE_IP,
    Ct,
    Flow,
    GroupAction,
    Nat,
    Output,
    PushVlan,
    ip_to_int,
    match,
)
from apps.flowsim import Conntrack, FlowError, SwitchTables, packet, run
from apps.groups import Bucket, Group, bucket_for, slots
from apps.incremental import Engine, FlowConflict, Unit
from controller import ofwire

IP = {"eth_type": ETH_TYPE_IP}
VIP = "10.0.0.100"


def backend(bucket_id: int, weight: int = 1) -> Bucket:
    """A bucket that NATs to 10.1.0.<bucket_id>:8080 and goes on in l2_lookup."""
    return Bucket(bucket_id, weight, (Ct(commit=True, zone=7, nat=Nat("dst", ip_to_int(f"10.1.0.{bucket_id}"),
                                                                        port_min=8080), table="l2_lookup"),))


def tcp(src: str, sport: int, dst: str = VIP, dport: int = 80) -> dict[str, int]:
    return packet(in_port=1, ip_proto=6, ipv4_src=src, ipv4_dst=dst, tcp_src=sport, tcp_dst=dport, **IP)


LB_FLOWS = [
    Flow("classify", 10, match(in_port=1, ipv4_dst=VIP, **IP), (GroupAction(5),)),
    Flow("l2_lookup", 10, match(ct_state=CT_TRK | CT_NEW | CT_DNAT, ct_zone=7, **IP), (Output(2),)),
]


# --- engine -----------------------------------------------------------------------------------------------

def _engine() -> Engine:
    """Unit "lb" of thing X puts group 5 with the buckets its input names on switch s1."""
    def unit(read, name):
        return {"s1": [Group(5, tuple(backend(b) for b in read(("thing", name))))]}

    return Engine({}, {"lb": Unit("thing", unit)})


def test_the_engine_keeps_groups_by_id_and_reports_their_changes():
    engine = _engine()
    engine.set(("thing", "x"), (1, 2))
    assert engine.commit() == {"s1": {("group", 5)}}
    assert engine.groups("s1") == {5: Group(5, (backend(1), backend(2)))} and engine.table("s1") == {}
    engine.set(("thing", "x"), (1, 2, 3))
    assert engine.commit() == {"s1": {("group", 5)}}
    assert engine.groups("s1")[5].buckets == (backend(1), backend(2), backend(3))
    engine.set(("thing", "x"), None)
    assert engine.commit() == {"s1": {("group", 5)}} and engine.groups("s1") == {}


def test_two_units_that_want_different_groups_under_one_id_conflict():
    engine = _engine()
    engine.set(("thing", "x"), (1,))
    engine.set(("thing", "y"), (1,))
    engine.commit()  # the same group from both: no conflict
    engine.set(("thing", "y"), (2,))
    with pytest.raises(FlowConflict):
        engine.commit()


# --- flowsim ----------------------------------------------------------------------------------------------

def test_slots_follow_ovs_dp_hash_table():
    """OVS 3.1's group_setup_dp_hash_table: max(16, the next power of 2 of total/min weight) hash values, dealt by
    Webster's method in bucket order (checked against ofproto/trace in tests/bridge/test_groups.py)."""
    group = Group(5, (backend(2, 2), backend(1, 1), backend(3, 3)))
    table = slots(group)
    assert len(table) == 16
    assert Counter(bucket.bucket_id for bucket in table) == {1: 3, 2: 5, 3: 8}
    assert len(slots(Group(5, (backend(1, 1), backend(2, 100))))) == 128
    assert slots(Group(5, (backend(1, 0),))) == ()


def test_weighted_choice_gives_each_bucket_its_share():
    """300 connections over weights 1/2/3 (16 hash values dealt 3/5/8): each bucket within its fair share."""
    group = Group(5, (backend(1, 1), backend(2, 2), backend(3, 3)))
    chosen = Counter(bucket_for(group, tcp(f"192.168.{n // 200}.{n % 200 + 1}", 1024 + n)).bucket_id
                     for n in range(300))
    for bucket_id, slots_of in {1: 3, 2: 5, 3: 8}.items():
        assert abs(chosen[bucket_id] - 300 * slots_of / 16) < 25, chosen


def test_a_connection_keeps_its_bucket_and_a_reply_hashes_alike():
    group = Group(5, (backend(1), backend(2), backend(3)))
    pkt = tcp("192.168.0.1", 5000)
    assert bucket_for(group, pkt) == bucket_for(group, dict(pkt))
    reply = {**pkt, "ipv4_src": pkt["ipv4_dst"], "ipv4_dst": pkt["ipv4_src"], "tcp_src": 80, "tcp_dst": 5000}
    assert bucket_for(group, reply) == bucket_for(group, pkt)


def test_a_bucket_nats_and_recirculates_and_the_connection_stays_after_the_group_changes():
    before = Group(5, (backend(1), backend(2)))
    conntrack = Conntrack()
    pkt = tcp("192.168.0.1", 5000)
    chosen = bucket_for(before, pkt)
    [(port, frame)] = run(SwitchTables(LB_FLOWS, groups=[before]), pkt, conntrack).outputs
    assert port == 2 and (frame["ipv4_dst"], frame["tcp_dst"]) == (ip_to_int(f"10.1.0.{chosen.bucket_id}"), 8080)
    # Another bucket now: the established connection keeps its translation (conntrack applies it).
    after = Group(5, (backend(3),))
    again = run(SwitchTables([LB_FLOWS[0], Flow("l2_lookup", 10, match(ct_zone=7, **IP), (Output(2),))],
                             groups=[after]), pkt, conntrack).outputs
    assert [frame["ipv4_dst"] for _, frame in again] == [frame["ipv4_dst"]]


def test_no_live_bucket_sends_nothing():
    assert run(SwitchTables(LB_FLOWS, groups=[Group(5, (backend(1, 0),))]), tcp("192.168.0.1", 5000)).outputs == []
    assert run(SwitchTables(LB_FLOWS, groups=[Group(5, ())]), tcp("192.168.0.1", 5000)).outputs == []


def test_a_group_action_names_a_group_of_the_switch_and_its_buckets_suit_the_calling_flow():
    with pytest.raises(FlowError, match="group 5 is not one of the switch's"):
        SwitchTables(LB_FLOWS)
    with pytest.raises(FlowError, match="ct needs"):  # ct in a bucket needs the calling flow to match IP
        SwitchTables([Flow("classify", 10, match(in_port=1), (GroupAction(5),))], groups=[Group(5, (backend(1),))])
    with pytest.raises(FlowError, match="ct table"):  # the bucket's ct table follows the calling flow's table
        SwitchTables([Flow("l2_lookup", 10, match(**IP), (GroupAction(5),))], groups=[Group(5, (backend(1),))])
    # A bucket acts on a copy: its push_vlan does not leave the calling flow's frame tagged.
    SwitchTables([Flow("classify", 10, match(**IP), (GroupAction(6),))], groups=[Group(6, (Bucket(0, 1, (
        PushVlan(), Output(2))),))])


@pytest.mark.parametrize(("group", "problem"), [
    (Group(5, (backend(1), backend(1))), "distinct"),
    (Group(5, (backend(1, 1), backend(2, 1000))), "hash values"),
    (Group(0xFFFFFFFC, (backend(1),)), "reserved"),
])
def test_groups_ovs_would_refuse_or_hash_otherwise_are_refused(group, problem):
    with pytest.raises(FlowError, match=problem):
        SwitchTables([], groups=[group])


# --- wire -------------------------------------------------------------------------------------------------

def test_group_mod_and_group_desc_round_trip():
    """What the switch reads back (tests/bridge/test_groups.py checks these bytes against OVS) parses into the
    buckets we encode, in bucket_id order."""
    group = Group(5, (backend(2, 2), backend(1, 1)))
    buckets = ofwire.encode_buckets(group)
    assert buckets == ofwire.encode_buckets(Group(5, (backend(1, 1), backend(2, 2))))
    message = ofwire.group_mod(9, ofwire.OFPGC_ADD, 5, buckets)
    assert struct.unpack_from("!BBHIHBxI", message) == (4, ofwire.OFPT_GROUP_MOD, len(message), 9, 0,
                                                        ofwire.OFPGT_SELECT, 5)
    body = struct.pack("!HBxI", 8 + len(buckets), ofwire.OFPGT_SELECT, 5) + buckets
    assert ofwire.parse_group_desc(body * 2) == [ofwire.InstalledGroup(5, ofwire.OFPGT_SELECT, buckets)] * 2
    assert [text.split(",actions=")[0] for text in ofwire.describe_buckets(buckets, {})] == ["weight:1", "weight:2"]
    assert ofwire.describe_instructions(ofwire.encode_instructions((GroupAction(5),), None), {}) == ["group:5"]

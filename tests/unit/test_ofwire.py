"""ofwire without a switch: encodings checked against os-ken's serializers (an independent encoder)
and against bytes OVS 3.1 is known to return, plus parsing, canonical forms and LLDP.

What OVS reads back byte for byte is proven in tests/bridge/test_ofwire_roundtrip.py.
"""

from __future__ import annotations

import struct
import time

import pytest
from os_ken.ofproto import nicira_ext, ofproto_parser, ofproto_protocol
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from apps.flows import (
    CT_EST,
    CT_INV,
    CT_NEW,
    CT_RPL,
    CT_TRK,
    FIELDS,
    MULTICAST_BIT,
    OFPP_CONTROLLER,
    OFPP_IN_PORT,
    OFPVID_PRESENT,
    Conjunction,
    Ct,
    Move,
    Output,
    PopVlan,
    PushVlan,
    Resubmit,
    SetField,
    ct_state,
    match,
    set_field,
)
from apps.pipeline import table_id
from controller import ofwire

DP = ofproto_protocol.ProtocolDesc(ofp.OFP_VERSION)
MAC = "0a:00:00:00:00:01"
SAMPLES = {"eth_dst": MAC, "eth_src": MAC, "arp_sha": MAC, "arp_tha": MAC, "ipv4_src": "10.1.2.3",
           "ipv4_dst": "10.1.2.3", "arp_spa": "10.1.2.3", "arp_tpa": "10.1.2.3", "vlan_vid": OFPVID_PRESENT | 42}


def serialized(msg) -> bytes:
    msg.serialize()
    return bytes(msg.buf)


def os_ken_oxm(**fields) -> bytes:
    """os-ken's OXM TLVs for `fields` (its ofp_match minus header and padding)."""
    buf = bytearray()
    parser.OFPMatch(**fields).serialize(buf, 0)
    return bytes(buf[4:struct.unpack_from("!H", buf, 2)[0]])


def os_ken_action(action) -> bytes:
    buf = bytearray()
    action.serialize(buf, 0)
    return bytes(buf)


# --- matches ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", FIELDS)
def test_each_field_exact_matches_os_ken(name):
    value = SAMPLES.get(name, 0x0A)
    assert ofwire.encode_match(match(**{name: value})) == os_ken_oxm(**{name: value})


@pytest.mark.parametrize("name", [n for n in FIELDS if n not in ("in_port", "ip_proto", "icmpv4_type",
                                                                  "icmpv4_code", "arp_op", "ct_zone", "conj_id")])
def test_each_maskable_field_masked_matches_os_ken(name):
    mask = 1 << ((8 if name == "ct_state" else FIELDS[name]) - 1)  # top bit only (of the 8 OVS keeps)
    assert ofwire.encode_match(match(**{name: (mask, mask)})) == os_ken_oxm(**{name: (mask, mask)})


def test_known_wire_forms():
    assert ofwire.encode_match(match(in_port=1)).hex() == "8000000400000001"
    assert ofwire.encode_match(match(eth_dst=(MULTICAST_BIT, MULTICAST_BIT))).hex() == \
        "8000070c" "010000000000" "010000000000"
    assert ofwire.encode_match(match(eth_type=0x800, ipv4_src="10.0.0.0/24")).hex() == \
        "80000a020800" "80001708" "0a000000" "ffffff00"
    assert ofwire.encode_match(match(vlan_vid=OFPVID_PRESENT | 100)).hex() == "80000c021064"
    assert ofwire.encode_match(match(vlan_vid=(OFPVID_PRESENT, OFPVID_PRESENT))).hex() == "80000d0410001000"
    assert ofwire.encode_match(match(reg7=(0x10, 0xF0))).hex() == "00010f08" "00000010" "000000f0"
    assert ofwire.encode_match(()) == b""


def test_conntrack_and_conj_id_wire_forms_as_ovs_returns_them():
    # Read back from OVS 3.1 after `ovs-ofctl add-flow ... ct_state=+trk+est-rpl,ct_zone=5,ct_mark=1/1`
    # and `conj_id=7`: NXM headers (these fields have no OXM one), conj_id is NXM_NX field 37.
    assert ofwire.encode_match(match(ct_state=ct_state(CT_TRK | CT_EST, CT_RPL), ct_zone=5,
                                     ct_mark=(1, 1))).hex() == (
        "0001d308" "00000022" "0000002a" "0001d402" "0005" "0001d708" "00000001" "00000001")
    assert ofwire.encode_match(match(conj_id=7)).hex() == "00014a04" "00000007"


def test_ct_state_keeps_eight_bits_like_ovs():
    """OVS stores 8 bits of ct_state: an exact match reads back masked 0xff, which is our exact form."""
    exact = ofwire.encode_match(match(ct_state=CT_TRK | CT_INV))
    assert exact.hex() == "0001d204" "00000030"
    assert ofwire.canonical_match(tlv(0x0001, 105, b"\0\0\0\x30", b"\0\0\0\xff")) == exact
    assert ofwire.encode_match(match(ct_state=(0x30, 0xFF))) == exact
    assert ofwire.encode_match(match(ct_state=(0x30, 0x1FF))) == exact
    assert ofwire.encode_match(match(ct_state=(0x130, 0x13F))) == ofwire.encode_match(match(ct_state=(0x30, 0x3F)))


def test_encoded_matches_are_already_canonical():
    for fields in ({"ct_state": ct_state(CT_TRK, CT_NEW)}, {"ct_state": CT_TRK}, {"ct_mark": (0, 1)},
                   {"eth_dst": (MULTICAST_BIT, MULTICAST_BIT)}, {"vlan_vid": (OFPVID_PRESENT, OFPVID_PRESENT)},
                   {"reg3": (0x80000000, 0x80000000), "ct_zone": 9, "conj_id": 0xFFFFFFFF}):
        encoded = ofwire.encode_match(match(**fields))
        assert ofwire.canonical_match(encoded) == encoded


def test_fields_follow_flows_order_whatever_the_keyword_order():
    assert ofwire.encode_match(match(reg1=5, eth_src=MAC, in_port=3, eth_dst=MAC)) == (
        os_ken_oxm(in_port=3) + os_ken_oxm(eth_dst=MAC) + os_ken_oxm(eth_src=MAC) + os_ken_oxm(reg1=5))


def test_encoders_are_memoized():
    flow_match = match(in_port=77, reg1=78)
    assert ofwire.encode_match(flow_match) is ofwire.encode_match(match(reg1=78, in_port=77))
    actions = (Output(77),)
    assert ofwire.encode_instructions(actions, "l2_lookup") is \
        ofwire.encode_instructions((Output(77),), "l2_lookup")


# --- actions and instructions ----------------------------------------------------------------------

def apply(*actions) -> bytes:
    return ofwire.encode_instructions(tuple(actions), None)


def test_output_push_pop_match_os_ken():
    assert apply(Output(3)) == serialized_instruction([parser.OFPActionOutput(3, 0)])
    assert apply(Output(OFPP_IN_PORT)) == serialized_instruction([parser.OFPActionOutput(ofp.OFPP_IN_PORT, 0)])
    assert apply(Output(OFPP_CONTROLLER, 0xFFFF)) == serialized_instruction(
        [parser.OFPActionOutput(ofp.OFPP_CONTROLLER, 0xFFFF)])
    assert apply(PushVlan(), PopVlan()) == serialized_instruction(
        [parser.OFPActionPushVlan(0x8100), parser.OFPActionPopVlan()])


@pytest.mark.parametrize("name", [n for n in FIELDS if n not in ("in_port", "eth_type", "ip_proto", "ct_state",
                                                                  "ct_zone", "conj_id")])
def test_each_set_field_matches_os_ken(name):
    value = SAMPLES.get(name, 0x0A)
    expected = os_ken_action(parser.OFPActionSetField(**{name: value}))
    assert apply(set_field(name, value))[8:] == expected
    assert len(expected) % 8 == 0


def serialized_instruction(actions, goto: int | None = None) -> bytes:
    instructions = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)] if actions else []
    if goto is not None:
        instructions.append(parser.OFPInstructionGotoTable(goto))
    buf = bytearray()
    for instruction in instructions:
        instruction.serialize(buf, len(buf))
    return bytes(buf)


def test_move_uses_the_nxm_headers_ovs_reads_back():
    # OVS returns NXAST_REG_MOVE with the oldest (NXM) header of each field, e.g. as seen in
    # `ovs-ofctl dump-flows`: move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[].
    assert apply(Move("eth_src", "eth_dst", 48)).hex()[16:] == (
        "ffff0018" "00002320" "0006" "0030" "0000" "0000" "00000406" "00000206")
    assert apply(Move("arp_sha", "arp_tha", 48)).hex()[16:] == (
        "ffff0018" "00002320" "0006" "0030" "0000" "0000" "00012206" "00012406")
    assert apply(Move("reg0", "reg2", 16, src_ofs=16, dst_ofs=8)).hex()[16:] == (
        "ffff0018" "00002320" "0006" "0010" "0010" "0008" "00010004" "00010404")
    assert nicira_ext.NXM_OF_ETH_SRC == 0x00000406 and nicira_ext.NXM_NX_ARP_THA == 0x00012406


def test_resubmit_ct_and_conjunction_as_ovs_returns_them():
    # Read back from OVS 3.1 after `ovs-ofctl add-flow` of the same actions in text form.
    assert apply(Ct(commit=True, zone_reg="reg4", set_mark=1)).hex()[16:] == (
        "ffff0028" "00002320" "0023" "0001" "00010804" "000f" "ff" "000000" "0000"
        "0019" "0010" "0001d604" "00000001" "00000000")  # exec(set_field:1->ct_mark), padded
    assert apply(Ct(zone_reg="reg3", table="egress_ct")).hex()[16:] == (
        "ffff0018" "00002320" "0023" "0000" "00010604" "000f" "15" "000000" "0000")
    assert apply(Ct(commit=True, zone=7)).hex()[16:] == (
        "ffff0018" "00002320" "0023" "0001" "00000000" "0007" "ff" "000000" "0000")
    assert apply(Resubmit("ingress_ct")).hex()[16:] == "ffff0010" "00002320" "000e" "fff8" "47" "000000"
    assert apply(Conjunction(7, 1, 3), Conjunction(8, 1, 2)).hex()[16:] == (
        "ffff0010" "00002320" "0022" "00" "03" "00000007" "ffff0010" "00002320" "0022" "00" "02" "00000008")


def test_masked_set_field_and_ct_mark_as_ovs_returns_them():
    # Read back from OVS 3.1 after `ovs-ofctl add-flow` of ct(commit,zone=5,exec(set_field:0x1/0x1->ct_mark)),
    # exec(set_field:0x5/0x5->ct_mark) and set_field:0x1/0x1->reg0: OF1.3's set_field has no mask, so OVS
    # returns NXAST_REG_LOAD, one per run of mask bits (ovs-ofctl: load:0x1->NXM_NX_CT_MARK[0]).
    assert apply(Ct(commit=True, zone=5, set_mark=1, mark_mask=1)).hex()[16:] == (
        "ffff0030" "00002320" "0023" "0001" "00000000" "0005" "ff" "000000" "0000"
        "ffff0018" "00002320" "0007" "0000" "0001d604" "0000000000000001")
    assert apply(Ct(commit=True, zone=5, set_mark=5, mark_mask=5)).hex()[16:] == (
        "ffff0048" "00002320" "0023" "0001" "00000000" "0005" "ff" "000000" "0000"
        "ffff0018" "00002320" "0007" "0000" "0001d604" "0000000000000001"
        "ffff0018" "00002320" "0007" "0080" "0001d604" "0000000000000001")
    assert apply(set_field("reg0", (1, 1))).hex()[16:] == (
        "ffff0018" "00002320" "0007" "0000" "00010004" "0000000000000001")


def test_masked_set_field_matches_os_ken_reg_load():
    assert apply(set_field("reg3", (0x30, 0xF0)))[8:] == os_ken_action(
        parser.NXActionRegLoad(ofs_nbits=nicira_ext.ofs_nbits(4, 7), dst="reg3", value=3))
    assert apply(set_field("reg3", (0xFFFFFFFF, 0xFFFFFFFF))) == apply(SetField("reg3", 0xFFFFFFFF))


def test_resubmit_ct_and_conjunction_match_os_ken():
    ofs_nbits = nicira_ext.ofs_nbits(0, 15)
    assert apply(Resubmit("port_out"))[8:] == os_ken_action(
        parser.NXActionResubmitTable(in_port=0xFFF8, table_id=table_id("port_out")))
    assert apply(Conjunction(9, 3, 4))[8:] == os_ken_action(parser.NXActionConjunction(2, 4, 9))
    assert apply(Ct(zone_reg="reg3", table="ingress_ct"))[8:] == os_ken_action(
        parser.NXActionCT(0, "reg3", ofs_nbits, table_id("ingress_ct"), 0, []))
    assert apply(Ct(commit=True, zone=0xFFFF, set_mark=0xDEADBEEF))[8:] == os_ken_action(
        parser.NXActionCT(1, None, 0xFFFF, 0xFF, 0, [parser.OFPActionSetField(ct_mark=0xDEADBEEF)]))


def test_instructions_apply_then_goto_and_empty_forms():
    actions = [parser.OFPActionSetField(reg2=2), parser.OFPActionOutput(1, 0)]
    assert ofwire.encode_instructions((set_field("reg2", 2), Output(1)), "port_out") == \
        serialized_instruction(actions, table_id("port_out"))
    assert ofwire.encode_instructions((), "l2_lookup") == serialized_instruction([], table_id("l2_lookup"))
    assert ofwire.encode_instructions((), None) == b""


def test_unknown_action_is_refused():
    with pytest.raises(TypeError):
        ofwire.encode_instructions(("drop",), None)


# --- messages --------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", [ofwire.OFPFC_ADD, ofwire.OFPFC_MODIFY_STRICT, ofwire.OFPFC_DELETE_STRICT])
def test_flow_mod_matches_os_ken(command):
    flow_match = match(in_port=1, eth_src=MAC, eth_type=0x800, ipv4_dst="10.0.0.0/8")
    instructions = ofwire.encode_instructions((Output(2),), "arp_responder")
    expected = parser.OFPFlowMod(
        DP, cookie=0x0200000000000001, table_id=3, command=command, priority=100,
        buffer_id=ofp.OFP_NO_BUFFER, out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY,
        match=parser.OFPMatch(in_port=1, eth_src=MAC, eth_type=0x800, ipv4_dst=("10.0.0.0", "255.0.0.0")),
        instructions=[parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, [parser.OFPActionOutput(2, 0)]),
                      parser.OFPInstructionGotoTable(table_id("arp_responder"))])
    expected.set_xid(77)
    assert ofwire.flow_mod(77, command, 3, 100, ofwire.encode_match(flow_match), instructions,
                           0x0200000000000001) == serialized(expected)


def test_flow_mod_pads_every_match_length():
    """os-ken's own parser finds the match and the instructions behind each padding length."""
    instructions = ofwire.encode_instructions((Output(1),), "arp_responder")
    for fields in ({}, {"eth_type": 0x800, "ip_proto": 6}, {"eth_dst": MAC}, {"reg0": 1, "reg1": 2}):
        message = ofwire.flow_mod(1, ofwire.OFPFC_ADD, 0, 1, ofwire.encode_match(match(**fields)), instructions, 0)
        assert len(message) % 8 == 0 and struct.unpack_from("!H", message, 2)[0] == len(message)
        parsed = ofproto_parser.msg(None, 4, ofwire.OFPT_FLOW_MOD, len(message), 1, message)
        assert dict(parsed.match.items()) == {name: value for name, value in fields.items()}
        assert [type(i).__name__ for i in parsed.instructions] == ["OFPInstructionActions", "OFPInstructionGotoTable"]


def test_bundle_messages_match_os_ken():
    flags = ofwire.BUNDLE_FLAGS
    assert flags == ofp.ONF_BF_ATOMIC | ofp.ONF_BF_ORDERED
    for ours, ctrl_type in ((ofwire.bundle_open, ofp.ONF_BCT_OPEN_REQUEST),
                            (ofwire.bundle_commit, ofp.ONF_BCT_COMMIT_REQUEST),
                            (ofwire.bundle_discard, ofp.ONF_BCT_DISCARD_REQUEST)):
        expected = parser.ONFBundleCtrlMsg(DP, 9, ctrl_type, flags, [])
        expected.set_xid(5)
        assert ours(5, 9, flags) == serialized(expected)
    inner = parser.OFPBarrierRequest(DP)
    expected = parser.ONFBundleAddMsg(DP, 9, flags, inner, [])
    expected.set_xid(6)
    assert ofwire.bundle_add(6, 9, flags, ofwire.barrier_request(6)) == serialized(expected)
    # The inner message takes the outer xid, as the bundle extension requires.
    assert ofwire.bundle_add(6, 9, flags, ofwire.barrier_request(1234)) == serialized(expected)


def test_barrier_flow_stats_and_packet_out_match_os_ken():
    barrier = parser.OFPBarrierRequest(DP)
    barrier.set_xid(3)
    assert ofwire.barrier_request(3) == serialized(barrier)
    stats = parser.OFPFlowStatsRequest(DP, cookie=0x0100000000000000, cookie_mask=0xFF00000000000000)
    stats.set_xid(4)
    assert ofwire.flow_stats_request(4, cookie=0x0100000000000000, cookie_mask=0xFF00000000000000) == \
        serialized(stats)
    stats = parser.OFPFlowStatsRequest(DP, table_id=60)
    stats.set_xid(4)
    assert ofwire.flow_stats_request(4, table_id=60) == serialized(stats)
    frame = bytes(range(60))
    out = parser.OFPPacketOut(DP, buffer_id=ofp.OFP_NO_BUFFER, in_port=ofp.OFPP_CONTROLLER,
                              actions=[parser.OFPActionOutput(5, 0)], data=frame)
    out.set_xid(8)
    assert ofwire.packet_out(8, 5, frame) == serialized(out)


# --- reading back ----------------------------------------------------------------------------------

def tlv(class_: int, field: int, value: bytes, mask: bytes | None = None) -> bytes:
    payload = value + (mask or b"")
    return struct.pack("!I", class_ << 16 | field << 9 | (mask is not None) << 8 | len(payload)) + payload


def flow_stats_entry(table_id: int, priority: int, oxm: bytes, instructions: bytes, cookie: int,
                     packets: int = 0, octets: int = 0, duration: int = 0) -> bytes:
    """One ofp_flow_stats as a switch sends it."""
    match_len = 4 + len(oxm)
    match_block = struct.pack("!HH", 1, match_len) + oxm + bytes(-match_len % 8)
    length = 48 + len(match_block) + len(instructions)
    return struct.pack("!HBxIIHHHH4xQQQ", length, table_id, duration, 999, priority, 0, 0, 0, cookie,
                       packets, octets) + match_block + instructions


# As OVS orders them: eth_src before eth_dst, addresses before ip_proto, registers last.
OVS_ORDER_OXM = (tlv(0x8000, 0, b"\0\0\0\x02") + tlv(0x8000, 4, bytes.fromhex("0a0000000001"))
                 + tlv(0x8000, 3, bytes.fromhex("0a0000000002")) + tlv(0x8000, 5, b"\x08\x00")
                 + tlv(0x8000, 11, bytes.fromhex("0a000000"), bytes.fromhex("ffffff00"))
                 + tlv(0x8000, 10, b"\x06") + tlv(0x8000, 14, b"\x00\x50") + tlv(0x0001, 1, b"\0\0\0\x64"))
OUR_MATCH = match(in_port=2, eth_src="0a:00:00:00:00:01", eth_dst="0a:00:00:00:00:02", eth_type=0x800,
                  ipv4_src="10.0.0.0/24", ip_proto=6, tcp_dst=80, reg1=100)


def test_parse_flow_stats_canonicalizes_and_keeps_everything_else():
    instructions = ofwire.encode_instructions((Output(1),), "port_out")
    body = (flow_stats_entry(60, 100, OVS_ORDER_OXM, instructions, 0x0200000000000007, 5, 500, 30)
            + flow_stats_entry(0, 0, b"", b"", 0))
    first, second = ofwire.parse_flow_stats(body)
    assert first == ofwire.InstalledFlow(60, 100, ofwire.encode_match(OUR_MATCH), instructions,
                                         0x0200000000000007, 5, 500, 30)
    assert second == ofwire.InstalledFlow(0, 0, b"", b"", 0, 0, 0, 0)
    assert ofwire.parse_flow_stats(b"") == []


def test_canonical_match_forms():
    full_mask = tlv(0x8000, 4, bytes.fromhex("0a0000000001"), b"\xff" * 6)
    assert ofwire.canonical_match(full_mask) == ofwire.encode_match(match(eth_src="0a:00:00:00:00:01"))
    vid_full = tlv(0x8000, 6, b"\x10\x05", b"\x1f\xff")
    assert ofwire.canonical_match(vid_full) == ofwire.encode_match(match(vlan_vid=0x1005))
    zero_mask = tlv(0x0001, 3, b"\0\0\0\0", b"\0\0\0\0")
    assert ofwire.canonical_match(zero_mask + tlv(0x0001, 1, b"\0\0\0\1")) == ofwire.encode_match(match(reg1=1))
    unapplied = tlv(0x8000, 12, bytes.fromhex("0a0000ff"), bytes.fromhex("ffffff00"))
    assert ofwire.canonical_match(tlv(0x8000, 5, b"\x08\x00") + unapplied) == \
        ofwire.encode_match(match(eth_type=0x800, ipv4_dst="10.0.0.0/24"))


def test_unknown_fields_are_kept_after_known_ones():
    ct_label = tlv(0x0001, 108, bytes(15) + b"\1", bytes(15) + b"\1")  # NXM_NX_CT_LABEL: not ours
    metadata = tlv(0x8000, 2, bytes(8))
    raw = ct_label + tlv(0x0001, 1, b"\0\0\0\1") + metadata + tlv(0x8000, 0, b"\0\0\0\1")
    canonical = ofwire.canonical_match(raw)
    assert canonical == ofwire.encode_match(match(in_port=1, reg1=1)) + ct_label + metadata  # by header
    assert canonical != ofwire.encode_match(match(in_port=1, reg1=1))


def test_describe_match_for_humans():
    described = ofwire.describe_match(ofwire.encode_match(OUR_MATCH) + tlv(0x8000, 2, bytes(8)))
    assert described == {
        "in_port": 2, "eth_dst": "0a:00:00:00:00:02", "eth_src": "0a:00:00:00:00:01", "eth_type": "0x0800",
        "ip_proto": 6, "ipv4_src": "10.0.0.0/24", "tcp_dst": 80, "reg1": 100,
        "oxm_0x8000_2": "0000000000000000",
    }
    assert ofwire.describe_match(ofwire.encode_match(match(eth_dst=(MULTICAST_BIT, MULTICAST_BIT),
                                                           vlan_vid=(0x1000, 0x1000)))) == {
        "eth_dst": "01:00:00:00:00:00/01:00:00:00:00:00", "vlan_vid": "0x1000/0x1000"}
    assert ofwire.describe_match(ofwire.encode_match(match(ipv4_dst=(0x0A000001, 0xFF0000FF)))) == \
        {"ipv4_dst": "10.0.0.1/255.0.0.255"}


def test_describe_conntrack_fields_like_ovs_ofctl():
    described = ofwire.describe_match(ofwire.encode_match(match(
        ct_state=ct_state(CT_TRK | CT_EST, CT_RPL), ct_zone=5, ct_mark=(1, 1), conj_id=7)))
    assert described == {"ct_state": "+trk+est-rpl", "ct_zone": 5, "ct_mark": "0x1/0x1", "conj_id": 7}
    assert ofwire.describe_match(ofwire.encode_match(match(ct_state=CT_TRK | CT_NEW))) == \
        {"ct_state": "+trk+new-est-rel-rpl-inv-snat-dnat"}


def test_describe_instructions_for_humans():
    instructions = ofwire.encode_instructions(
        (Move("eth_src", "eth_dst", 48), set_field("eth_src", MAC), set_field("arp_spa", "10.0.0.254"),
         Move("reg0", "reg2", 16, src_ofs=16), PushVlan(), SetField("vlan_vid", 0x1005), PopVlan(),
         Output(3), Output(OFPP_IN_PORT), Output(OFPP_CONTROLLER, 0xFFFF)), "l2_lookup")
    assert ofwire.describe_instructions(instructions, {60: "l2_lookup"}) == [
        "move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[]", f"set_field:{MAC}->eth_src", "set_field:10.0.0.254->arp_spa",
        "move:NXM_NX_REG0[16..31]->NXM_NX_REG2[0..15]", "push_vlan:0x8100", "set_field:4101->vlan_vid",
        "pop_vlan", "output:3", "output:IN_PORT", "CONTROLLER:65535", "goto_table:l2_lookup"]
    assert ofwire.describe_instructions(struct.pack("!HHB3x", 1, 8, 99), {}) == ["goto_table:99"]


def test_describe_resubmit_ct_and_conjunction():
    names = {21: "egress_ct", 70: "ingress_acl"}
    instructions = ofwire.encode_instructions(
        (Ct(commit=True, zone_reg="reg3", table="egress_ct", set_mark=1), Ct(zone=7), Ct(),
         Resubmit("ingress_acl"), Resubmit("port_out"), Conjunction(7, 1, 3)), None)
    assert ofwire.describe_instructions(instructions, names) == [
        "ct(commit,zone=NXM_NX_REG3[0..15],table=egress_ct,exec(set_field:1->ct_mark))", "ct(zone=7)", "ct()",
        "resubmit(,ingress_acl)", "resubmit(,80)", "conjunction(7,1/3)"]


def test_describe_masked_sets_like_ovs_ofctl():
    instructions = ofwire.encode_instructions(
        (Ct(commit=True, zone_reg="reg4", set_mark=0, mark_mask=1), Ct(commit=True, zone=5, set_mark=5, mark_mask=5),
         set_field("reg0", (0x10, 0x30))), None)
    assert ofwire.describe_instructions(instructions, {}) == [
        "ct(commit,zone=NXM_NX_REG4[0..15],exec(load:0->NXM_NX_CT_MARK[0]))",
        "ct(commit,zone=5,exec(load:0x1->NXM_NX_CT_MARK[0],load:0x1->NXM_NX_CT_MARK[2]))",
        "load:0x1->NXM_NX_REG0[4..5]"]


def test_lean_flow_stats_parser_gives_os_ken_raw_bodies(monkeypatch):
    monkeypatch.setitem(parser._MSG_PARSERS, ofwire.OFPT_MULTIPART_REPLY,
                        parser._MSG_PARSERS[ofwire.OFPT_MULTIPART_REPLY])
    ofwire.install_lean_flow_stats_parser()
    ofwire.install_lean_flow_stats_parser()
    group_desc = struct.pack("!HBxI", 24, ofwire.OFPGT_SELECT, 5) + struct.pack("!HHII4x", 16, 1, ofwire.OFPP_ANY,
                                                                                 ofwire.OFPG_ANY)
    flow = flow_stats_entry(60, 100, OVS_ORDER_OXM, b"", 7)
    for kind, cls, body in ((ofp.OFPMP_FLOW, parser.OFPFlowStatsReply, b""),
                            (ofp.OFPMP_FLOW, parser.OFPFlowStatsReply, flow),
                            (ofp.OFPMP_GROUP_DESC, parser.OFPGroupDescStatsReply, group_desc)):
        reply = struct.pack("!BBHIHH4x", 4, ofwire.OFPT_MULTIPART_REPLY, 16 + len(body), 9,
                            kind, ofwire.OFPMPF_REPLY_MORE) + body
        msg = ofproto_parser.msg(None, 4, ofwire.OFPT_MULTIPART_REPLY, len(reply), 9, reply)
        assert type(msg) is cls
        assert (msg.body, msg.flags, msg.xid, msg.type) == (body, ofwire.OFPMPF_REPLY_MORE, 9, kind)


# --- speed (CPU time, so a busy machine does not make it flaky) ------------------------------------

def test_encode_and_parse_50k_flows_fast_enough():
    """>= 100k flows/s encoded from a cold cache; a 50k-flow readback parsed well under a second."""
    flows = [(match(eth_dst=n | 0x0A0000000000, reg1=n % 50), (set_field("reg2", n % 48 + 1),))
             for n in range(50000)]
    ofwire.encode_match.cache_clear()
    ofwire.encode_instructions.cache_clear()
    start = time.process_time()
    body = b"".join(
        ofwire.flow_mod(n, ofwire.OFPFC_ADD, 60, 100, ofwire.encode_match(m),
                        ofwire.encode_instructions(a, "port_out"), n)
        for n, (m, a) in enumerate(flows))
    assert time.process_time() - start < 0.5
    entries = b"".join(
        flow_stats_entry(60, 100, ofwire.encode_match(m), ofwire.encode_instructions(a, "port_out"), n)
        for n, (m, a) in enumerate(flows))
    start = time.process_time()
    parsed = ofwire.parse_flow_stats(entries)
    assert time.process_time() - start < 0.5
    assert len(parsed) == 50000 and len(body) > 0

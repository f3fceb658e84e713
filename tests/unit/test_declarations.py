"""Every declared action and field is declared whole: wire form, text and simulation, so that a new one
cannot be half-declared; and the stages to come keep the numbers and order docs/pipeline.md gives them.
What the switch reads back is checked in tests/bridge/test_ofwire_roundtrip.py."""

from __future__ import annotations

import dataclasses
import inspect
import struct

import pytest

from apps.actions import ACTIONS, DESCRIBERS, NX_VENDOR_ID, OFPAT_EXPERIMENTER, Action, Multipath, WireKey
from apps.fields import BY_NXM, BY_OXM, DECLARED, FIELD, IPV4, MAC, Scope
from apps.flows import (
    ETH_TYPE_IP,
    OFPP_IN_PORT,
    OFPVID_PRESENT,
    Conjunction,
    Ct,
    DecTtl,
    Flow,
    GroupAction,
    Move,
    Nat,
    Output,
    PopVlan,
    PushVlan,
    Resubmit,
    SetField,
    controller,
    match,
    set_field,
)
from apps.flowsim import SwitchTables, packet, run
from apps.groups import Bucket, Group
from apps.pipeline import PIPELINE
from controller import ofwire

IP = {"eth_type": ETH_TYPE_IP, "ipv4_src": "10.0.0.1", "ipv4_dst": "10.0.0.2", "ip_proto": 17, "udp_src": 1,
      "udp_dst": 2}
TAGGED = {"vlan_vid": (OFPVID_PRESENT, OFPVID_PRESENT)}
# Per action, samples that together use every wire form it declares, each with what its flow must match.
SAMPLES: dict[type[Action], list[tuple[Action, dict]]] = {
    Output: [(Output(2), {}), (Output(OFPP_IN_PORT), {}), (controller(), {})],
    SetField: [(SetField("reg0", 7), {}), (set_field("reg0", (0x10, 0x30)), {})],
    PushVlan: [(PushVlan(), {})],
    PopVlan: [(PopVlan(), TAGGED)],
    Move: [(Move("reg0", "reg1", 16, src_ofs=16), {})],
    Resubmit: [(Resubmit("router_in"), {})],
    Ct: [(Ct(zone=3), {"eth_type": ETH_TYPE_IP}),
         (Ct(commit=True, zone_reg="reg3", set_mark=1, mark_mask=1, table="router_in"), {"eth_type": ETH_TYPE_IP}),
         (Ct(zone=3, nat=Nat()), {"eth_type": ETH_TYPE_IP}),
         (Ct(commit=True, zone=3, nat=Nat("src", 0x0A090909, port_min=1024, port_max=2000), set_mark=2,
             mark_mask=2), {"eth_type": ETH_TYPE_IP})],
    DecTtl: [(DecTtl(), {"eth_type": ETH_TYPE_IP})],
    Conjunction: [(Conjunction(9, 1, 2), {})],
    Multipath: [(Multipath(4, "reg10"), {"eth_type": ETH_TYPE_IP})],
    GroupAction: [(GroupAction(4), {"eth_type": ETH_TYPE_IP})],
}
# The switch's groups in the samples' flows: a bucket that NATs and one that outputs.
GROUPS = [Group(4, (Bucket(0, 1, (Ct(commit=True, zone=3, nat=Nat("dst", 0x0A090909, port_min=80)),)),
                    Bucket(1, 1, (Output(2),))))]
SAMPLE_LIST = [(action, fields) for samples in SAMPLES.values() for action, fields in samples]
NAMES = {table.number: table.name for table in PIPELINE}


def wire_key(raw: bytes) -> WireKey:
    kind = int.from_bytes(raw[:2], "big")
    return (kind, *struct.unpack_from("!IH", raw, 4)) if kind == OFPAT_EXPERIMENTER else (kind,)


def test_every_action_is_a_frozen_dataclass_with_every_side_and_samples():
    assert set(SAMPLES) == set(ACTIONS), "give each action samples here"
    for cls in ACTIONS:
        assert not inspect.isabstract(cls), f"{cls.__name__} leaves {sorted(cls.__abstractmethods__)} undeclared"
        assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen, cls.__name__
        assert cls.WIRE, f"{cls.__name__} declares no wire form"


def test_samples_use_every_declared_wire_form():
    used = {wire_key(raw) for action, _ in SAMPLE_LIST for raw in _actions(action.encode())}
    assert used == set(DESCRIBERS)
    assert all(key[:2] == (OFPAT_EXPERIMENTER, NX_VENDOR_ID) or len(key) == 1 for key in DESCRIBERS)


def _actions(raw: bytes) -> list[bytes]:
    """The top-level actions in `raw` (a masked set_field is several)."""
    found = []
    while raw:
        length = int.from_bytes(raw[2:4], "big")
        found.append(raw[:length])
        raw = raw[length:]
    return found


@pytest.mark.parametrize(("action", "fields"), SAMPLE_LIST, ids=[repr(a) for a, _ in SAMPLE_LIST])
def test_each_action_encodes_to_its_own_wire_forms_and_describes_them(action, fields):
    raw = action.encode()
    assert raw and len(raw) % 8 == 0
    for one in _actions(raw):
        assert len(one) % 8 == 0 and DESCRIBERS[wire_key(one)] is type(action)
    text = ofwire.describe_instructions(ofwire.encode_instructions((action,), None), NAMES)
    assert text and not any(t.startswith(("experimenter:", "action_type:", "instruction_type:")) for t in text)


@pytest.mark.parametrize(("action", "fields"), SAMPLE_LIST, ids=[repr(a) for a, _ in SAMPLE_LIST])
def test_each_action_is_checked_and_simulated(action, fields):
    """flowsim accepts a flow with it and runs a packet through it (a clause flow with its other clause)."""
    meter = "lldp" if action == controller() else None  # flowsim refuses an unmetered flow to the controller
    flow = Flow("classify", 10, match(**fields), (action,), meter=meter)
    flows = [flow]
    if isinstance(action, Conjunction):
        flows += [Flow("classify", 10, match(in_port=1), (Conjunction(action.id, 2, 2),)),
                  Flow("classify", 5, match(conj_id=action.id), (Output(2),))]
    pkt = packet(in_port=1, eth_src="0a:00:00:00:00:01", **IP,
                 **({"vlan_vid": OFPVID_PRESENT | 5} if fields == TAGGED else {}))
    first_hit = flows[-1] if isinstance(action, Conjunction) else flow  # a clause flow never runs itself
    assert run(SwitchTables(flows, groups=GROUPS), pkt).path[0] == ("classify", first_hit)


# --- fields ---------------------------------------------------------------------------------------------

SAMPLE_VALUES = {MAC: "0a:00:00:00:00:01", IPV4: "10.1.2.3"}


def sample(name: str) -> int | str:
    return SAMPLE_VALUES.get(FIELD[name].text, OFPVID_PRESENT | 5 if name == "vlan_vid" else 5)


def test_every_field_has_its_own_headers():
    assert len(BY_OXM) == len(BY_NXM) == len(DECLARED) == len(FIELD)
    for declared in DECLARED:
        assert declared.nxm[2] and declared.ovs_name and declared.kept & declared.full == declared.kept
        assert all(need in FIELD for need, _ in declared.prereqs)
    datapath_keys = [declared.datapath for declared in DECLARED if declared.datapath]
    assert len(set(datapath_keys)) == len(datapath_keys)


@pytest.mark.parametrize("name", FIELD)
def test_each_field_encodes_describes_and_matches_in_flowsim(name):
    declared = FIELD[name]
    prereqs = {need: min(allowed) for need, allowed in declared.prereqs}
    fields = {**prereqs, name: sample(name)}
    encoded = ofwire.encode_match(match(**fields))
    assert ofwire.canonical_match(encoded) == encoded
    described = ofwire.describe_match(encoded)[name]
    if declared.text in SAMPLE_VALUES:
        assert declared.text.parse(name, described) == (match(**{name: sample(name)})[0][1], declared.full)
    moved = ofwire.describe_instructions(ofwire.encode_instructions((Move(name, "reg7", 1),), None), {})
    assert moved == [f"move:{declared.nxm[2]}[0]->NXM_NX_REG7[0]"]
    if name == "conj_id":  # set only by a conjunctive lookup, never in a packet
        return
    flows = [Flow("classify", 1, match(**fields), (Output(2),))]
    [(port, frame)] = run(flows, packet(**{"in_port": 1, **fields})).outputs
    assert port == 2 and (name in frame) is (declared.scope is Scope.FRAME)


# --- stages to come -------------------------------------------------------------------------------------

def test_stateful_stages_keep_the_documented_order_and_numbers_are_unique():
    """docs/pipeline.md: egress ACL, router entry with DNAT and load balancing, routing, next hop, SNAT, then L2
    and ingress ACL."""
    stages = list(PIPELINE)
    assert len({stage.number for stage in stages}) == len({stage.name for stage in stages}) == len(stages)
    number = {stage.name: stage.number for stage in stages}
    order = ["egress_acl", "egress_ct", "router_in", "dnat_ct", "lb_ct", "lb_out", "lb_unnat", "routing", "neighbor",
             "snat", "snat_ct", "l2_lookup", "ingress_acl"]
    assert [number[name] for name in order] == sorted(number[name] for name in order)

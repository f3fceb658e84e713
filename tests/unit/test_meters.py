"""Meters: declared once with the pipeline, named by flows, encoded as OVS returns them (read back on a bridge in
tests/bridge/test_meter_limits.py)."""

from __future__ import annotations

import dataclasses
import struct

import pytest

from apps.compiler import compile_all
from apps.flows import Flow, controller, match
from apps.flowsim import FlowError, SwitchTables, packet, run
from apps.model import HealthMonitor
from apps.pipeline import METERS, meter_id
from controller import ofwire
from controller.programmer import wire
from tests.unit.test_load_balancing import BALANCER, MEMBERS
from tests.unit.test_routing import TOPOLOGY, policy

LIMITED = Flow("classify", 1, match(in_port=1), (controller(),), meter="neighbor")


def test_declared_meters_have_unique_names_and_ids_found_by_name():
    assert len({m.name for m in METERS}) == len({m.id for m in METERS}) == len(METERS)
    assert all(meter_id(meter.name) == meter.id and meter.rate_pps > 0 and meter.burst > 0 for meter in METERS)
    assert {"ttl_exceeded", "neighbor", "health", "lldp"} <= {meter.name for meter in METERS}


def test_a_meter_is_an_instruction_before_apply_actions_and_not_part_of_the_key():
    unlimited = Flow("classify", 1, match(in_port=1), (controller(),))
    assert LIMITED.key == unlimited.key and LIMITED != unlimited  # a changed meter reinstalls the flow
    (_, instructions), (_, plain) = wire(LIMITED)[1], wire(unlimited)[1]
    assert instructions == struct.pack("!HHI", 6, 8, 2) + plain
    assert ofwire.describe_instructions(instructions, {}) == ["meter:2", "CONTROLLER:65535"]


def test_meter_mod_is_pktps_with_a_burst_and_one_drop_band():
    assert ofwire.meter_mod(7, ofwire.OFPMC_ADD, METERS[0]) == struct.pack(
        "!BBHIHHIHHII4x", 4, 29, 32, 7, 0, 2 | 4, 1, 1, 16, 100, 100)
    assert ofwire.describe_error(12, 1) == ofwire.METER_EXISTS


def test_flowsim_runs_metered_flows_and_refuses_unknown_meters_and_unmetered_packet_ins():
    assert run([LIMITED], packet(in_port=1)).to_controller
    with pytest.raises(FlowError, match="unknown meter"):
        SwitchTables([Flow("classify", 1, (), (controller(),), meter="nope")])
    with pytest.raises(FlowError, match="to the controller without a meter"):
        SwitchTables([Flow("classify", 1, (), (controller(),))])


def test_every_flow_to_the_controller_goes_through_a_meter():
    """Compiled from a policy with every kind of packet-in (LLDP on trunk candidates, a router's TTL and next hops,
    an uplink's ARP replies, a monitored load balancer's probe answers): none reaches the controller unmetered."""
    monitored = dataclasses.replace(BALANCER, members=MEMBERS, health_monitor=HealthMonitor("tcp", 1.0, 1.0, 3))
    tables = compile_all(policy(load_balancers=(monitored,)), TOPOLOGY)
    to_controller = [flow for flows in tables.values() for flow in flows.values()
                     if any(action == controller() for action in flow.actions)]
    assert {flow.meter for flow in to_controller} == {meter.name for meter in METERS}  # each meter has its flows

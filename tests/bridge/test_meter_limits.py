"""Meters on a real OVS (userspace datapath): the Programmer installs every declared meter before its first
bundle (ADD, then MODIFY on a switch that has them), a flow under a meter reads back byte-identical, and
the meter really limits what reaches the controller."""

from __future__ import annotations

import re
import subprocess

import pytest

from apps.flows import ETH_TYPE_IP, Flow, controller, match
from apps.pipeline import METERS, meter_id
from controller import ofwire
from controller.programmer import Programmer, wire

pytestmark = [pytest.mark.bridge, pytest.mark.timeout(60)]

FRAME = bytes.fromhex("0a00000000020a00000000010800") + bytes.fromhex(
    "450000140000000040ff0000" "0a0000010a000002")  # IPv4, protocol 255, no payload


def meter_stats(bridge: str) -> str:
    return subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "meter-stats", bridge], check=True,
                          capture_output=True, text=True, timeout=10).stdout


def test_meters_install_and_limit_a_controller_flow(make_bridge):
    bridge = make_bridge("vmtr", 1)
    limited = Flow("classify", 100, match(eth_type=ETH_TYPE_IP), (controller(),), meter="ttl_exceeded")
    connection = bridge.connect("00000000000000b1")
    programmer = Programmer(timeout=5.0)
    assert programmer.sync(connection.channel, {limited.key: limited}).added == 1
    config = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-meters", "vmtr"], check=True,
                            capture_output=True, text=True, timeout=10).stdout
    for meter in METERS:
        assert (f"meter={meter.id} pktps burst bands=\ntype=drop rate={meter.rate_pps} burst_size={meter.burst}"
                in config), config
    installed = {(f.table_id, f.priority, f.match): (f.cookie, f.instructions)
                 for f in connection.channel.dump_flows(5.0)}
    assert installed == dict([wire(limited)])
    dump = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "--no-stats", "dump-flows", "vmtr"], check=True,
                          capture_output=True, text=True, timeout=10).stdout
    assert f"meter:{meter_id('ttl_exceeded')},CONTROLLER:65535" in dump.replace("actions=", "")
    # 1,000 frames at once through the pipeline: the meter (100 pps, burst 100) passes a few hundred at most.
    connection.channel.send(b"".join(ofwire.packet_out(n, 0xFFFFFFF9, FRAME) for n in range(1000)))
    connection.channel.batch().finish(5.0)
    stats = meter_stats("vmtr")
    found = re.search(r"meter:1 flow_count:1 packet_in_count:(\d+) .*\n\s*0: packet_count:(\d+)", stats)
    assert found, stats
    seen, dropped = int(found[1]), int(found[2])
    assert seen == 1000 and 500 < dropped < 1000, stats
    # A new connection (a reconnect, a controller restart): the meters exist, so they are modified, not refused.
    bridge.disconnect()
    again = bridge.connect("00000000000000b1")
    assert Programmer(timeout=5.0).sync(again.channel, {limited.key: limited}).changes == 0


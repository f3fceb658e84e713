"""Select groups on a real OVS 3.1 netdev bridge: installed in the flows' bundle, read back byte-identical,
modified and deleted hitlessly by the programmer; and a TCP packet through a group of two ct-nat buckets gets,
for every dp_hash value, the bucket and the translation apps.flowsim predicts.

ofproto/trace cannot follow a select group by itself: it prints hash(sym_l4(0)),recirc(ID) and frees ID. A real
packet sent into the bridge keeps the recirculation alive while its datapath flows live (seconds), so the test
sends one, then traces that recirculation with each dp_hash value in turn.
"""

from __future__ import annotations

import re
import socket
import struct
import subprocess
import time

import pytest
from datapath import datapath_outputs
from test_pipeline_trace import datapath_ports, sent

from apps.flows import CT_DNAT, CT_NEW, CT_TRK, ETH_TYPE_IP, Ct, Flow, GroupAction, Nat, Output, ip_to_int, match
from apps.flowsim import SwitchTables, packet, run
from apps.groups import Bucket, Group, slots
from apps.pipeline import table_id
from controller import ofwire
from controller.programmer import Programmer, ProgrammingError

pytestmark = [pytest.mark.bridge, pytest.mark.timeout(60)]

DPID = "00000000000000a8"
VIP = "10.0.0.100"


def backend(bucket_id: int, weight: int, last: int) -> Bucket:
    return Bucket(bucket_id, weight, (Ct(commit=True, zone=7, nat=Nat("dst", ip_to_int(f"10.1.0.{last}"),
                                                                        port_min=8080), table="l2_lookup"),))


GROUP = Group(5, (backend(7, 2, 2), backend(3, 1, 1)))  # bucket ids out of order: the wire orders them
FLOWS = [
    Flow("classify", 10, match(in_port=1, eth_type=ETH_TYPE_IP), (GroupAction(5),)),
    Flow("l2_lookup", 10, match(eth_type=ETH_TYPE_IP, ct_state=CT_TRK | CT_NEW | CT_DNAT, ct_zone=7), (Output(2),)),
]
DESIRED = {flow.key: flow for flow in FLOWS}


def test_groups_install_in_the_bundle_and_read_back_byte_identical(make_bridge):
    bridge = make_bridge("vgrp1", 2)
    result = Programmer(timeout=5.0).sync(bridge.connect(DPID).channel, DESIRED, groups={5: GROUP})
    assert (result.added, result.groups) == (2, 1)
    bridge.disconnect()
    restarted = Programmer(timeout=5.0)
    channel = bridge.connect(DPID).channel
    assert restarted.installed_groups(channel) == {5: (ofwire.OFPGT_SELECT, ofwire.encode_buckets(GROUP))}
    assert ofwire.describe_buckets(ofwire.encode_buckets(GROUP), {table_id("l2_lookup"): "l2_lookup"})[0] == \
        "weight:1,actions=ct(commit,zone=7,nat(dst=10.1.0.1:8080),table=l2_lookup)"
    assert restarted.sync(channel, DESIRED, groups={5: GROUP}).changes == 0  # a resync sends nothing

    changed = Group(5, (*GROUP.buckets, backend(9, 1, 3)))
    assert restarted.sync(channel, DESIRED, [("group", 5)], {5: changed}).groups == 1  # one OFPGC_MODIFY
    assert Programmer(timeout=5.0).installed_groups(bridge.connect(DPID).channel)[5][1] == \
        ofwire.encode_buckets(changed)

    result = restarted.sync(channel, {}, [*DESIRED, ("group", 5)], {})  # the flows go first, then the group
    assert (result.deleted, result.groups) == (2, 1)
    fresh = bridge.connect(DPID).channel
    assert Programmer(timeout=5.0).installed_groups(fresh) == {} and Programmer(timeout=5.0).installed(fresh) == {}


def test_a_refused_group_is_named_and_nothing_is_applied(make_bridge):
    bridge = make_bridge("vgrp2", 2)
    channel = bridge.connect(DPID).channel
    reserved = Group(0xFFFFFFFF, GROUP.buckets)  # OFPG_ANY: OVS refuses it
    with pytest.raises(ProgrammingError) as refused:
        Programmer(timeout=5.0).sync(channel, DESIRED, groups={5: GROUP, reserved.group_id: reserved})
    [refusal] = refused.value.refusals
    assert refusal.key == ("group", 0xFFFFFFFF) and refusal.flow == reserved
    assert "GROUP_MOD_FAILED" in refusal.error
    fresh = bridge.connect(DPID).channel
    assert Programmer(timeout=5.0).installed_groups(fresh) == {} and Programmer(timeout=5.0).installed(fresh) == {}


def _frame(pkt: dict[str, int]) -> bytes:
    """An Ethernet/IPv4/TCP SYN of `pkt` (checksums left 0: the datapath does not check them)."""
    tcp = struct.pack("!HHIIBBHHH", pkt["tcp_src"], pkt["tcp_dst"], 1, 0, 5 << 4, 2, 65535, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0, pkt["ipv4_src"].to_bytes(4, "big"),
                     pkt["ipv4_dst"].to_bytes(4, "big"))
    return bytes.fromhex("0a00000000020a0000000001") + struct.pack("!H", ETH_TYPE_IP) + ip + tcp


def _datapath_flows(until: str) -> str:
    """The shared netdev datapath's flows, once one matches `until` (the upcall that installs them takes a moment)."""
    deadline = time.monotonic() + 5
    while True:
        flows = subprocess.run(["ovs-appctl", "dpctl/dump-flows", "netdev@ovs-netdev"], check=True,
                               capture_output=True, text=True, timeout=10).stdout
        if re.search(until, flows, re.M) or time.monotonic() > deadline:
            return flows
        time.sleep(0.05)


def _trace(bridge: str, spec: str) -> list[str]:
    report = subprocess.run(["ovs-appctl", "ofproto/trace", bridge, spec, "--ct-next", "trk,new,dnat"], check=True,
                            capture_output=True, text=True, timeout=10).stdout
    return [line.removeprefix("Datapath actions: ") for line in report.splitlines()
            if line.startswith("Datapath actions: ")]


def test_each_dp_hash_value_gets_the_bucket_and_translation_flowsim_predicts(make_bridge):
    bridge = make_bridge("vgrp3", 2)
    Programmer(timeout=5.0).sync(bridge.connect(DPID).channel, DESIRED, groups={5: GROUP})
    bridge.disconnect()
    subprocess.run(["ip", "link", "set", "vgrp3p1", "up"], check=True)
    pkt = packet(in_port=1, eth_type=ETH_TYPE_IP, ip_proto=6, ipv4_src="10.0.0.1", ipv4_dst=VIP, tcp_src=5000,
                 tcp_dst=80, nw_ttl=64)
    dp_ports = datapath_ports("vgrp3")
    dp_in = next(dp for dp, of in dp_ports.items() if of == 1)
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
        sock.bind(("vgrp3p1", 0))
        sock.send(_frame(pkt))
    hashed = rf"^recirc_id\(0\),in_port\({dp_in}\),.*actions:hash\(sym_l4\(0\)\),recirc\((0x[0-9a-f]+)\)$"
    first = re.search(hashed, _datapath_flows(hashed), re.M)
    assert first, "no datapath flow hashed the packet"
    recirc = first[1]
    picked = rf"^recirc_id\({recirc}\),dp_hash\(0x([0-9a-f]+)/0x([0-9a-f]+)\),.*actions:(.*)$"
    flows = _datapath_flows(picked)
    # The real packet's own bucket: its dp_hash value, masked to the group's table, picks the bucket flowsim's
    # slots() has there.
    chosen = re.search(picked, flows, re.M)
    assert chosen, flows
    table = slots(GROUP)
    assert int(chosen[2], 16) + 1 == len(table)
    nat = table[int(chosen[1], 16) & int(chosen[2], 16)].actions[0].nat
    assert f"nat(dst=10.1.0.{nat.ip_min & 0xFF}:8080)" in chosen[3]
    spec = "in_port=1,tcp,nw_src=10.0.0.1,nw_dst=10.0.0.100,tp_src=5000,tp_dst=80,nw_ttl=64"
    frame = sent(pkt)
    for slot, bucket in enumerate(table):
        dp_hash = 1 << 16 | slot  # 0 would mean "not hashed yet" (OVS's pick_dp_hash_select_group)
        passes = ["hash(sym_l4(0)),recirc(" + recirc + ")", *_trace("vgrp3", f"recirc_id={recirc},dp_hash={dp_hash},"
                                                                             + spec)]
        expected = run(SwitchTables(FLOWS, groups=[Group(5, (bucket,))]), pkt).outputs
        assert [(port, frame["ipv4_dst"]) for port, frame in expected] == [(2, bucket.actions[0].nat.ip_min)]
        assert datapath_outputs(passes, frame, dp_ports) == expected, (slot, passes)
    assert {bucket.bucket_id for bucket in table} == {3, 7}

"""NAT and dec_ttl in a real OVS: ofproto/trace of ct(commit, nat(...)) then a second table shows the translation
(and the TTL) that apps.flowsim predicts; an exhausted TTL sends nothing in either."""

from __future__ import annotations

import pytest
from test_pipeline_trace import datapath_ports, in_order, report_outputs, sent, trace_report

from apps.flows import CT_NEW, CT_SNAT, CT_TRK, ETH_TYPE_IP, Ct, DecTtl, Flow, Nat, Output, ip_to_int, match
from apps.flowsim import SwitchTables, packet, run
from controller.programmer import Programmer

pytestmark = [pytest.mark.bridge, pytest.mark.timeout(60)]

NATTED = "10.9.9.9"


def nat_flows(nat: Nat) -> list[Flow]:
    """ct(commit, zone=7, nat) recirculating to l2_lookup, where only a new, source-translated packet passes."""
    return [
        Flow("classify", 10, match(in_port=1, eth_type=ETH_TYPE_IP), (Ct(commit=True, zone=7, nat=nat,
                                                                          table="l2_lookup"),)),
        Flow("l2_lookup", 10, match(eth_type=ETH_TYPE_IP, ct_state=CT_TRK | CT_NEW | CT_SNAT, ct_zone=7),
             (DecTtl(), Output(2))),
    ]


@pytest.mark.parametrize(("nat", "ttl", "expected"), [
    (Nat("src", ip_to_int(NATTED)), 64, {"ipv4_src": ip_to_int(NATTED), "nw_ttl": 63}),
    (Nat("src", ip_to_int(NATTED), port_min=1024, port_max=2000), 64,
     {"ipv4_src": ip_to_int(NATTED), "tcp_src": 1024, "nw_ttl": 63}),
    (Nat("src", ip_to_int(NATTED)), 1, None),
], ids=["address", "address-and-port", "ttl-runs-out"])
def test_trace_shows_the_translation_flowsim_predicts(make_bridge, nat, ttl, expected):
    flows = nat_flows(nat)
    bridge = make_bridge("vnat", 2)  # the same bridge each time: the sync makes it hold exactly these flows
    Programmer(timeout=5.0).sync(bridge.connect("00000000000000a7").channel, {f.key: f for f in flows})
    bridge.disconnect()
    pkt = packet(in_port=1, eth_type=ETH_TYPE_IP, ip_proto=6, ipv4_src="10.0.0.1", ipv4_dst="10.0.0.2",
                 tcp_src=5000, tcp_dst=80, nw_ttl=ttl)
    simulated = run(SwitchTables(flows), pkt).outputs
    assert simulated == ([] if expected is None else [(2, {**sent(pkt), **expected})])
    report = trace_report("vnat", pkt, ct_next=["trk,new,snat"])
    assert report_outputs(report, pkt, datapath_ports("vnat")) == in_order(simulated), report

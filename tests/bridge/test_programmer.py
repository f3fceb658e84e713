"""The production Programmer and Channel against a real OVS bridge (see conftest.Connection).

What is checked is the switch's own view (ovs-ofctl), not the programmer's belief: exactly the
compiled flows, nothing sent when nothing changed, counters and ages kept across a controller
restart and a policy change, foreign flows removed, and a refused bundle leaving no trace.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import subprocess
import time
from collections.abc import Callable
from typing import NamedTuple

import pytest

from apps.compiler import compile_all
from apps.flows import APP_CODES, Ct, Flow, cookie, match
from apps.model import Policy, Port, with_profiles
from apps.pipeline import PRIO_DEFAULT, REG_NETWORK, REG_OUT_PORT, table_id
from apps.topology import Switch, SwitchPort, Topology
from controller import ofwire
from controller.programmer import Programmer, ProgrammingError, SyncResult, wire
from mininet_topos import ovs
from tests.unit.fabric_cases import S1, TENANT_A, TENANT_B, line_of_three, mac, one_switch, ring_of_three

pytestmark = pytest.mark.timeout(60)

BRIDGE = "pbtp"
TIMEOUT = 5.0
AGE = 0.3  # once every flow is this old, a reset (duration back near 0) cannot pass for aging
OFPP_TABLE = 0xFFFFFFF9

POLICY, TOPOLOGY = one_switch()
A2_OWNERS = {cookie(app, "a2") for app in APP_CODES}  # port a2's flows, whichever app made them


def compiled(policy: Policy = POLICY) -> dict[tuple, Flow]:
    return compile_all(policy, TOPOLOGY)[S1]


def delta(old: dict[tuple, Flow], new: dict[tuple, Flow]) -> SyncResult:
    """What a sync from `old` to `new` must send: a changed flow is modified in place when its owner
    (cookie) stays, which keeps its counters, and re-added under its new owner otherwise."""
    changed = [key for key in old.keys() & new.keys() if old[key] != new[key]]
    moved = sum(old[key].cookie != new[key].cookie for key in changed)
    return SyncResult(added=len(new.keys() - old.keys()) + moved, modified=len(changed) - moved,
                      deleted=len(old.keys() - new.keys()))


WITHOUT_A2 = dataclasses.replace(POLICY, ports=tuple(p for p in POLICY.ports if p.id != "a2"))
N_A2_FLOWS = sum(f.cookie in A2_OWNERS for f in compiled().values())
A2_REMOVED = delta(compiled(), compiled(WITHOUT_A2))


def ofctl(*args: str) -> str:
    return subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", *args], check=True, capture_output=True,
                          text=True, timeout=10).stdout


class SwitchFlow(NamedTuple):
    cookie: int
    duration: float
    n_packets: int
    actions: str


_DUMP_LINE = re.compile(r"\s*cookie=(0x[0-9a-f]+), duration=([\d.]+)s, table=(\d+), n_packets=(\d+), "
                        r"n_bytes=\d+, (\S+) actions=(\S+)$")


def switch_flows(bridge: str) -> dict[str, SwitchFlow]:
    """"table=N,priority=P,match" -> the flow, as ovs-ofctl shows it (durations to the millisecond)."""
    flows = {}
    for line in ofctl("dump-flows", bridge).splitlines():
        if line.startswith("OFPST_FLOW reply"):  # one per reply part
            continue
        parsed = _DUMP_LINE.fullmatch(line)
        assert parsed, f"unparsed dump line: {line!r}"
        cookie_hex, duration, table, packets, key, actions = parsed.groups()
        flows[f"table={table},{key}"] = SwitchFlow(int(cookie_hex, 16), float(duration), int(packets), actions)
    return flows


def rules(bridge: str) -> dict[str, tuple[int, str]]:
    """The flow table without its statistics."""
    return {key: (f.cookie, f.actions) for key, f in switch_flows(bridge).items()}


def wait_for_flows(bridge: str, condition: Callable[[dict[str, SwitchFlow]], bool],
                   timeout: float = 5.0) -> dict[str, SwitchFlow]:
    deadline = time.monotonic() + timeout
    while not condition(flows := switch_flows(bridge)):
        assert time.monotonic() < deadline, f"flows never met the condition: {flows}"
        time.sleep(0.02)
    return flows


def aged(flows: dict[str, SwitchFlow]) -> bool:
    return min(f.duration for f in flows.values()) >= AGE


def udp_frame(src_ip: str, dst_ip: str) -> bytes:
    """A minimal valid Ethernet/IPv4/UDP frame (UDP checksum 0 means none), for conntrack to track."""
    header = bytearray(bytes.fromhex("450000200000000040110000") + ipaddress.IPv4Address(src_ip).packed
                       + ipaddress.IPv4Address(dst_ip).packed)
    total = sum(int.from_bytes(header[i:i + 2], "big") for i in range(0, 20, 2))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    header[10:12] = (~total & 0xFFFF).to_bytes(2, "big")
    udp = bytes.fromhex("9c400035000c0000") + b"ping"
    return (bytes.fromhex("0200000000010200000000020800") + bytes(header) + udp).ljust(60, b"\0")


def arp_request_frame(src_mac: str, src_ip: str, target_ip: str) -> bytes:
    sender = bytes.fromhex(src_mac.replace(":", ""))
    arp = (bytes.fromhex("0001080006040001") + sender + ipaddress.IPv4Address(src_ip).packed
           + bytes(6) + ipaddress.IPv4Address(target_ip).packed)
    return (b"\xff" * 6 + sender + b"\x08\x06" + arp).ljust(60, b"\0")


@pytest.fixture
def bridge(make_bridge):
    bridge = make_bridge(BRIDGE, 4)
    try:
        yield bridge
    finally:
        bridge.delete()


@pytest.fixture
def programmed(bridge):
    """one_switch() installed; (connection, the programmer that installed it)."""
    connection = bridge.connect(S1)
    programmer = Programmer(TIMEOUT)
    programmer.sync(connection.channel, compiled())
    return connection, programmer


def test_install_holds_exactly_the_compiled_flows_and_a_resync_sends_nothing(bridge):
    connection = bridge.connect(S1)
    programmer = Programmer(TIMEOUT)
    flows = compiled()
    assert programmer.sync(connection.channel, flows) == SyncResult(added=len(flows))
    assert len(switch_flows(bridge.name)) == len(flows)
    assert Programmer(TIMEOUT).installed(connection.channel) == dict(map(wire, flows.values()))
    assert programmer.sync(connection.channel, compiled()) == SyncResult()
    assert (programmer.stats["bundles"], programmer.stats["readbacks"]) == (1, 1)


def test_restarted_controller_changes_nothing_and_keeps_counters_and_ages(bridge, programmed):
    connection, _ = programmed
    # One ARP request from a1 for a2's address: hits a1's classify flow and a2's ARP reply flow.
    frame = arp_request_frame(mac("a", 1), "10.0.0.2", "10.0.0.3")
    packet_out = connection.channel.batch()
    packet_out.add(lambda xid: ofwire.packet_out(xid, OFPP_TABLE, frame, in_port=1))
    assert packet_out.finish(TIMEOUT) == []  # after the barrier, the counters are final
    before = wait_for_flows(bridge.name, aged)
    assert sum(f.n_packets for f in before.values()) >= 2

    bridge.disconnect()  # the old controller is gone; a new one connects with an empty cache
    restarted = Programmer(TIMEOUT)
    assert restarted.sync(bridge.connect(S1).channel, compiled()) == SyncResult()
    assert (restarted.stats["readbacks"], restarted.stats["bundles"]) == (1, 0)

    after = switch_flows(bridge.name)
    assert after.keys() == before.keys()
    for key, flow in after.items():
        assert (flow.cookie, flow.actions, flow.n_packets) == (before[key].cookie, before[key].actions,
                                                               before[key].n_packets), key
        assert flow.duration >= before[key].duration, f"{key} was re-added"


def test_policy_change_sends_only_the_delta_and_leaves_the_rest_alone(bridge, programmed):
    connection, programmer = programmed
    before = wait_for_flows(bridge.name, aged)
    gone = {key for key, flow in before.items() if flow.cookie in A2_OWNERS}
    assert len(gone) == N_A2_FLOWS > 0

    assert programmer.sync(connection.channel, compiled(WITHOUT_A2)) == A2_REMOVED

    after = switch_flows(bridge.name)
    kept = before.keys() - gone
    assert kept <= after.keys() and len(after) == len(kept) + A2_REMOVED.added  # e.g. LLDP from a2's interface
    assert A2_REMOVED.deleted == len(gone) and A2_REMOVED.modified > 0  # e.g. net-a's flood flow loses port 2
    assert sum(after[key].actions != before[key].actions for key in kept) == A2_REMOVED.modified
    for key in kept:
        assert after[key].duration >= before[key].duration, f"{key} was re-added"
    assert Programmer(TIMEOUT).installed(connection.channel) == dict(map(wire, compiled(WITHOUT_A2).values()))


# Flows someone else added: in our tables and others, with match fields and instructions we never
# use (NXM, experimenter OXM, masked IPv6), which must still be deletable from their read-back form.
FOREIGN_FLOWS = (
    f"table={table_id('l2_lookup')},priority=5,{REG_NETWORK}=999,actions=drop",
    "table=200,priority=1,actions=drop",
    "table=0,priority=7,ipv6,ipv6_src=2001:db8::/32,actions=drop",
    "table=0,priority=8,tcp,tcp_flags=+syn-ack,actions=drop",
    "table=0,priority=9,ct_state=+trk,ip,actions=drop",
    "table=0,priority=4,ip,nw_src=10.1.0.0/16,actions=write_metadata:0x3,goto_table:60",
)


def test_foreign_flows_are_removed_and_an_overwritten_flow_is_restored(bridge, programmed):
    connection, _ = programmed
    expected = rules(bridge.name)
    for foreign in FOREIGN_FLOWS:
        ofctl("add-flow", bridge.name, foreign)
    a1_port_out = f"table={table_id('port_out')},priority={PRIO_DEFAULT},{REG_OUT_PORT}=1"
    ofctl("add-flow", bridge.name, f"{a1_port_out},cookie=0xbad,actions=output:2")  # replaces ours
    tampered = rules(bridge.name)
    assert len(tampered) == len(expected) + len(FOREIGN_FLOWS) and (0xBAD, "output:2") in tampered.values()

    restarted = Programmer(TIMEOUT)  # only a read-back can see what others did
    assert restarted.sync(connection.channel, compiled()) == SyncResult(added=1, deleted=len(FOREIGN_FLOWS))
    assert rules(bridge.name) == expected


def test_refused_bundle_applies_nothing_names_the_flow_and_the_next_sync_recovers(bridge, programmed):
    connection, programmer = programmed
    before = rules(bridge.name)
    backwards = Flow("port_out", PRIO_DEFAULT, match(**{REG_OUT_PORT: 77}), goto="classify",
                     cookie=cookie("isolation", "bad"))  # a backward goto: OVS refuses it
    with pytest.raises(ProgrammingError, match="refused 1 flow") as refused:
        programmer.sync(connection.channel, {**compiled(WITHOUT_A2), backwards.key: backwards})
    assert [(r.flow, r.error) for r in refused.value.refusals] == [(backwards, "BAD_INSTRUCTION/2")]
    assert rules(bridge.name) == before, "part of a refused bundle was applied"
    assert programmer.stats["bundle_failures"] == 1

    assert programmer.sync(connection.channel, compiled(WITHOUT_A2)) == A2_REMOVED
    assert programmer.stats["readbacks"] == 1, "a refused bundle changed nothing: no need to read back"
    assert Programmer(TIMEOUT).installed(connection.channel) == dict(map(wire, compiled(WITHOUT_A2).values()))


def test_a_full_table_refuses_the_whole_bundle_at_commit_and_blames_the_add(bridge, programmed):
    """OVS finds a full table only when the bundle commits; the error still names the add that overflowed."""
    connection, programmer = programmed
    before = rules(bridge.name)
    l2 = table_id("l2_lookup")
    in_l2 = sum(1 for f in compiled().values() if f.table == "l2_lookup")
    ovs.vsctl("--", "--id=@ft", "create", "Flow_Table", f"flow_limit={in_l2 + 1}", "overflow_policy=refuse",
              "--", "set", "Bridge", bridge.name, f"flow_tables:{l2}=@ft")
    extra = [Flow("l2_lookup", PRIO_DEFAULT, match(**{REG_NETWORK: 9, "eth_dst": mac("z", n)}), goto="ingress_acl",
                  cookie=cookie("isolation", f"extra{n}")) for n in (1, 2)]
    with pytest.raises(ProgrammingError) as refused:
        programmer.sync(connection.channel, {**compiled(), **{f.key: f for f in extra}})
    assert [(r.flow, r.error) for r in refused.value.refusals] == [(extra[1], "FLOW_MOD_FAILED/TABLE_FULL")]
    assert rules(bridge.name) == before
    ovs.vsctl("clear", "Bridge", bridge.name, "flow_tables")
    assert programmer.sync(connection.channel, {**compiled(), **{f.key: f for f in extra}}) == SyncResult(added=2)


def test_a_conntrack_zone_is_flushed_over_openflow(bridge):
    """NXT_CT_FLUSH_ZONE empties exactly one zone of the datapath's conntrack."""
    connection = bridge.connect(S1)
    zones = (61234, 61235)
    commit = [Flow("classify", PRIO_DEFAULT, match(eth_type=0x0800, ipv4_src=f"10.99.0.{n}"),
                   (Ct(commit=True, zone=zone),), cookie=cookie("system", "test")) for n, zone in enumerate(zones)]
    Programmer(TIMEOUT).sync(connection.channel, {f.key: f for f in commit})
    for n in range(len(zones)):
        frame = udp_frame(f"10.99.0.{n}", "10.99.1.1")
        connection.channel.send(ofwire.packet_out(connection.channel.next_xid(), OFPP_TABLE, frame))

    def entries(zone: int) -> int:
        out = subprocess.run(["ovs-appctl", "dpctl/dump-conntrack", "netdev@ovs-netdev", f"zone={zone}"],
                             capture_output=True, text=True, check=True).stdout
        return len(out.splitlines())

    deadline = time.monotonic() + 10
    while not all(entries(zone) == 1 for zone in zones):
        assert time.monotonic() < deadline, "conntrack entries were never committed"
        time.sleep(0.05)
    batch = connection.channel.batch()
    batch.add(lambda xid: ofwire.ct_flush_zone(xid, zones[0]))
    assert batch.finish(TIMEOUT) == []
    assert (entries(zones[0]), entries(zones[1])) == (0, 1)
    batch = connection.channel.batch()
    batch.add(lambda xid: ofwire.ct_flush_zone(xid, zones[1]))
    assert batch.finish(TIMEOUT) == []


@pytest.mark.parametrize("case", [one_switch, lambda: one_switch(secure_a1=False), line_of_three, ring_of_three],
                         ids=["one-switch", "insecure-port", "line", "ring"])
def test_every_compiled_flow_reads_back_as_installed(bridge, case):
    """A restarted controller must see "no change" for every flow the compiler makes, on every switch."""
    connection = bridge.connect("any")
    for dpid, flows in compile_all(*case()).items():
        Programmer(TIMEOUT).sync(connection.channel, flows)
        assert Programmer(TIMEOUT).sync(connection.channel, flows) == SyncResult(), dpid


def many_ports(n_ports: int) -> tuple[Policy, Topology]:
    """One switch, n_ports VMs alternating between the two tenants (flows: about 5 per port)."""
    interfaces = tuple(SwitchPort(f"vm{i}", i, f"aa:00:00:00:{i >> 8:02x}:{i & 0xFF:02x}")
                       for i in range(1, n_ports + 1))
    ports = with_profiles(Port(f"p{i}", (TENANT_A, TENANT_B)[i % 2].id, f"p{i}",
                               f"02:00:00:01:{i >> 8:02x}:{i & 0xFF:02x}", f"10.0.{i >> 8}.{i & 0xFF}", S1, f"vm{i}")
                          for i in range(1, n_ports + 1))
    return Policy((TENANT_A, TENANT_B), ports), Topology((Switch(S1, interfaces),))


def test_large_table_streams_in_chunks_and_reads_back_across_reply_parts(bridge):
    """Over _CHUNK messages per write, and a flow dump the switch splits into several replies."""
    connection = bridge.connect(S1)
    flows = compile_all(*many_ports(1000))[S1]
    assert len(flows) > 4000
    assert Programmer(TIMEOUT).sync(connection.channel, flows) == SyncResult(added=len(flows))
    restarted = Programmer(TIMEOUT)
    assert restarted.sync(connection.channel, flows) == SyncResult()
    assert len(restarted.installed(connection.channel)) == len(flows)
    assert len(switch_flows(bridge.name)) == len(flows)

"""Health probes through a real OVS 3.1: the flows apps.compiler makes for a balancer with a monitor, installed by the
Programmer; a member in a network namespace (a veth on the bridge) with a Python TCP listener. The checker's SYN,
sent as a packet-out out of the member's port, draws a SYN-ACK that its probe-answer flow hands the controller (the
member found the VIP's MAC by ARP through the flows); the checker's RST then leaves the same port. A closed port
answers with an RST: a failure (the listener is stopped for that)."""

from __future__ import annotations

import random
import struct
import subprocess
import time
from types import SimpleNamespace

import pytest
from ofclient import OFClient
from os_ken.ofproto import ofproto_v1_3, ofproto_v1_3_parser

from apps.compiler import Compiler
from apps.model import HealthMonitor, LbMember, LoadBalancer, Network, Policy, Port, with_profiles
from apps.pipeline import table_id
from apps.topology import Switch, SwitchPort, Topology
from controller import health, ofwire
from controller.programmer import Programmer
from controller.runtime import packet_in_kind
from mininet_topos import ovs

pytestmark = [pytest.mark.bridge, pytest.mark.timeout(90)]

DPID = "00000000000000c1"
BRIDGE, NETNS, VETH, PEER = "hpb", "hpb-ns", "hpbv2", "hpbv2n"
MEMBER_IP, MEMBER_MAC = "10.0.0.12", "fa:16:3e:00:00:12"
VIP = "10.0.0.100"
OFPT_PACKET_IN = 10
OPEN = 8080


def sh(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True, timeout=10).stdout


@pytest.fixture(scope="module")
def member(make_bridge):
    """The bridge with the compiled flows; the member at ofport 2 in its namespace, listening on OPEN."""
    made = make_bridge(BRIDGE, 1)
    listener = None
    try:
        sh("ip", "netns", "add", NETNS)
        sh("ip", "link", "add", VETH, "type", "veth", "peer", "name", PEER)
        sh("ip", "link", "set", PEER, "netns", NETNS)
        sh("ip", "link", "set", VETH, "up")
        for command in (["ip", "link", "set", PEER, "address", MEMBER_MAC], ["ip", "addr", "add", f"{MEMBER_IP}/24",
                        "dev", PEER], ["ip", "link", "set", PEER, "up"], ["ip", "link", "set", "lo", "up"]):
            sh("ip", "netns", "exec", NETNS, *command)
        ovs.vsctl("add-port", BRIDGE, VETH, "--", "set", "interface", VETH, "ofport_request=2")
        listener = subprocess.Popen(
            ["ip", "netns", "exec", NETNS, "python3", "-c",
             "import socket,time\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
             f"s.bind(('0.0.0.0',{OPEN}))\ns.listen(16)\nprint('up',flush=True)\ntime.sleep(600)"],
            stdout=subprocess.PIPE, text=True)
        assert listener.stdout.readline().strip() == "up"
        network = Network("n1", "a", "10.0.0.0/24", "10.0.0.1", 5)
        port = Port("p2", "n1", "a2", MEMBER_MAC, MEMBER_IP, DPID, VETH, key=2)
        monitor = HealthMonitor("tcp", 1.0, 1.0, 2)
        balancer = LoadBalancer("lb1", "web", "n1", VIP, "tcp", 80, key=700, mac="fa:16:3f:01:02:bc",
                                health_monitor=monitor,
                                members=(LbMember("m1", "lb1", MEMBER_IP, OPEN, key=1, status="ONLINE"),))
        policy = Policy((network,), with_profiles((port,)), load_balancers=(balancer,))
        topology = Topology((Switch(DPID, (SwitchPort(f"{BRIDGE}p1", 1, "aa:00:00:00:c1:01"),
                                            SwitchPort(VETH, 2, "aa:00:00:00:c1:02"))),))
        compiler = Compiler()
        compiler.load(policy, topology)
        compiler.commit()
        connection = made.connect(DPID)
        Programmer(timeout=5.0).sync(connection.channel, dict(compiler.table(DPID)),
                                     groups=dict(compiler.groups(DPID)))
        made.disconnect()  # fail_mode=secure: the flows stay
        client = OFClient("127.0.0.1", made.listen_port)
        try:
            yield SimpleNamespace(client=client, policy=policy, listener=listener)
        finally:
            client.close()
    finally:
        if listener is not None:
            listener.kill()
            listener.wait(timeout=5)
        subprocess.run(["ip", "netns", "del", NETNS], check=False, capture_output=True)
        subprocess.run(["ip", "link", "del", VETH], check=False, capture_output=True)


def packet_ins(client: OFClient, seconds: float) -> list:
    """Packet-ins for `seconds`, parsed by os-ken as ofapp gets them."""
    found = []
    deadline = time.monotonic() + seconds
    client.timeout = 0.2
    while time.monotonic() < deadline:
        try:
            message = client.recv()
        except TimeoutError:
            continue
        if message.type != OFPT_PACKET_IN:
            continue
        datapath = SimpleNamespace(ofproto=ofproto_v1_3, ofproto_parser=ofproto_v1_3_parser, id=1)
        version, msg_type, length, xid = struct.unpack_from("!BBHI", message.data)
        found.append(ofproto_v1_3_parser.OFPPacketIn.parser(datapath, version, msg_type, length, xid, message.data))
    return found


def probe_until(member, seconds: float = 10.0) -> tuple[health.HealthChecker, list]:
    """Probe the member once a second until an answer to a probe comes (the first SYN may go while the member
    still ARPs for the VIP); the checker sees every packet-in."""
    found, statuses = health.targets(member.policy)
    checker = health.HealthChecker(rng=random.Random(1))
    checker.update(found, statuses, time.time())
    answers = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for probe in checker.due(time.time()).probes:
            member.client.send(ofwire.packet_out(1, 2, probe.frame))
        for msg in packet_ins(member.client, 0.5):
            assert msg.table_id == table_id("classify") and packet_in_kind(msg.table_id, bytes(msg.data)) \
                == "probe_answer"
            assert msg.match["in_port"] == 2
            answered = checker.answer(DPID, VETH, bytes(msg.data), time.time())
            answers.append((health.parse_answer(bytes(msg.data)), answered))
            for reply in answered.replies:
                member.client.send(ofwire.packet_out(2, 2, reply))
        if any(a.matched for _, a in answers):
            return checker, answers
    raise AssertionError(f"no answer to a probe within {seconds} s: {answers}")


def half_open(port: int) -> str:
    return sh("ip", "netns", "exec", NETNS, "ss", "-tnH", "state", "syn-recv", f"( sport = :{port} )")


def test_a_listening_member_answers_with_a_syn_ack_and_is_reset(member):
    checker, answers = probe_until(member)
    parsed, answered = next((p, a) for p, a in answers if a.matched)
    assert (parsed.kind, parsed.vip, parsed.member, parsed.member_port) == ("tcp", VIP, MEMBER_IP, OPEN)
    assert parsed.flags & (health.SYN | health.ACK) == health.SYN | health.ACK
    assert answered.replies and checker.counters["probe_failures_total"] == 0
    time.sleep(0.3)
    assert half_open(OPEN).strip() == ""  # the RST freed it


def test_a_closed_port_answers_with_an_rst(member):
    member.listener.kill()
    member.listener.wait(timeout=5)
    checker, answers = probe_until(member)
    parsed, answered = next((p, a) for p, a in answers if a.matched)
    assert parsed.flags & health.RST and answered.replies == ()
    assert checker.counters["probe_failures_total"] >= 1

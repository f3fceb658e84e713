"""The OpenFlow pipeline, declared once: every other module names tables and registers from here.

Numbers leave gaps for the stages later features insert, in the order docs/pipeline.md sets out, so that
adding a stage never renumbers the others. The bits of ct_mark are declared here too. docs/pipeline.md
explains each stage.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Table:
    name: str
    number: int
    purpose: str
    next: tuple[str, ...]  # tables this one may continue to (goto_table or resubmit)


PIPELINE: tuple[Table, ...] = (
    Table("classify", 0,
          "in_port -> logical port and network (registers); VM ports take untagged frames only; port security "
          "drops spoofed MAC/IP/ARP; inter-switch frames are untagged into their network; LLDP to the controller; "
          "an uplink's frames enter its external network as an unfiltered port's, its ARP replies to a router "
          "go to the controller",
          ("arp_responder", "router_in", "l2_lookup")),
    Table("arp_responder", 10,
          "answers ARP requests for addresses known in the packet's network from the switch",
          ("egress_acl",)),
    Table("egress_acl", 20,
          "security groups, leaving the source port: ARP, own DHCP and unfiltered ports pass, DHCP server "
          "replies from any other port drop; IP goes through conntrack in the source port's zone",
          ("egress_ct", "router_in")),
    Table("egress_ct", 21,
          "after conntrack: replies and related pass, invalid drops, the source port's egress rules "
          "decide the rest (new connections committed, revoked ones marked)",
          ("router_in",)),
    Table("router_in", 30,
          "frames to a router's MAC on one of its networks: the router answers ping to its addresses, a TTL "
          "about to run out goes to the controller (time-exceeded), the rest is routed; from its external "
          "network, on its gateway switch, ct(nat) in the router's zone (un-SNAT, established DNAT)",
          ("dnat_ct", "lb_ct", "lb_unnat", "routing", "l2_lookup")),
    Table("dnat_ct", 31,
          "after the router's conntrack: translated and related packets are routed, a new connection to a "
          "floating IP is committed with its fixed IP as destination (ct(commit, nat(dst))), the rest drops",
          ("routing",)),
    Table("lb_ct", 32,
          "after a load balancer's conntrack (its zone): a new connection to its VIP goes to its select group, "
          "whose bucket commits it translated to one member (ct(commit, nat(dst=member))), or with source_ip_hash "
          "to the member of its source's slot (multipath into reg10); established ones, already translated, go on; "
          "a hairpin's reply, after the hairpin zone, goes through the balancer's zone",
          ("lb_pick", "lb_out", "lb_unnat")),
    Table("lb_pick", 33,
          "source_ip_hash: the slot (reg10, one per unit of weight) -> ct(commit, nat(dst=its member))",
          ("lb_out",)),
    Table("lb_out", 34,
          "a translated connection to the member: on the VIP's network by next hop, else through the router; "
          "one from the member itself (hairpin) is first committed in the balancer's hairpin zone with the VIP as "
          "its source (ct(commit, nat(src=VIP)))",
          ("neighbor", "routing", "lb_hairpin")),
    Table("lb_unnat", 35,
          "after a member's reply passed its balancer's zone (the VIP back as its source where this switch "
          "translated the connection): routed if the member sent it to its router, back to the member from the "
          "VIP's MAC if it was a hairpin's, else on to L2",
          ("routing", "neighbor", "l2_lookup")),
    Table("lb_hairpin", 36,
          "after the hairpin zone: a member's connection to itself, now from the VIP, back to the member (from "
          "the VIP's MAC by next hop, or through the router it came by)",
          ("neighbor", "routing")),
    Table("routing", 40,
          "longest prefix in the router (reg8): dec_ttl, eth_src the router's MAC, reg1/reg7 the next "
          "network, reg9 the next hop; external destinations are routed on the gateway switch only (the "
          "others pass the frame toward it unchanged)",
          ("neighbor", "l2_lookup")),
    Table("neighbor", 45,
          "(network, next hop) -> eth_dst: ports, and on external networks the MAC bindings the controller "
          "resolved; an unresolved external next hop goes to the controller (ARP through the uplink)",
          ("snat", "l2_lookup", "router_in")),
    Table("snat", 50,
          "on a router's gateway switch, what it routes out to its external network: ct(nat) in its zone "
          "(un-DNAT of floating-IP replies, established SNAT)",
          ("snat_ct", "l2_lookup")),
    Table("snat_ct", 51,
          "new connections leave from their floating IP, else (enable_snat) from the gateway IP with port "
          "translation; established and related pass, invalid drops",
          ("l2_lookup",)),
    Table("l2_lookup", 60,
          "destination MAC within the network -> local port (registers) or tagged out the next-hop link; "
          "broadcast/multicast -> each local port of the network through ingress_acl, and the flood tree; on a "
          "router's gateway switch, IP another router sent to its MAC on the external network re-enters router_in",
          ("ingress_acl", "router_in")),
    Table("ingress_acl", 70,
          "security groups, entering the destination port: ARP, own DHCP and unfiltered ports pass; "
          "IP goes through conntrack in the destination port's zone",
          ("ingress_ct", "port_out")),
    Table("ingress_ct", 71,
          "after conntrack: replies and related pass, invalid drops, the destination port's ingress rules "
          "decide the rest",
          ("port_out",)),
    Table("port_out", 80,
          "output register -> the local port",
          ()),
)

TABLES: dict[str, Table] = {t.name: t for t in PIPELINE}


def table_id(name: str) -> int:
    return TABLES[name].number


# Registers carried between stages (NXM_NX_REGn, 32 bits each).
REG_IN_PORT = "reg0"   # ofport of the local VM port the packet came from; 0 = from a trunk
REG_NETWORK = "reg1"   # segmentation id of the packet's network
REG_OUT_PORT = "reg2"  # ofport of the local VM port chosen as destination
REG_SRC_ZONE = "reg3"  # key (= conntrack zone) of the source port
REG_DST_ZONE = "reg4"  # key (= conntrack zone) of the destination port
REG_SRC_PROFILE = "reg5"  # profile of the source port: the key of its set of security groups
REG_DST_PROFILE = "reg6"  # profile of the destination port
REG_SCOPE = "reg7"     # where the packet's addresses mean what they say: its network's segmentation id, or for
#                        the networks of a router (whose CIDRs never overlap) ROUTER_SCOPE | the router's key
REG_ROUTER = "reg8"    # key (= conntrack zone) of the router routing the packet
REG_NEXTHOP = "reg9"   # IPv4 address of the next hop routing chose (resolved to eth_dst by neighbor)
REG_SLOT = "reg10"     # a load balancer's slot for the packet's source (source_ip_hash)
ROUTER_SCOPE = 1 << 16  # above every segmentation id (1..4094)

# ct_mark is a set of named bits, each matched and set with its own mask (never the whole mark), so that a
# stage setting one bit never clears another's. Bits are handed out from bit 0 upwards; 2-31 are free.
CT_MARK_REVOKED = 1 << 0  # no security-group rule allows the connection any more: its replies stop too
CT_MARK_NATTED = 1 << 1   # reserved: the connection was translated in this zone (routers' NAT needs no mark)

# Priorities shared by the stages.
PRIO_MISS = 0
PRIO_LOW = 10
PRIO_DEFAULT = 100
PRIO_HIGH = 1000
PRIO_CONTROL = 65000  # controller-bound protocol traffic (LLDP) ahead of any policy


@dataclass(frozen=True)
class Meter:
    """A rate limit every switch has from its first flows on, for flows (Flow.meter) that send to the
    controller: part of the pipeline, like the tables, so no compiler owns it."""

    name: str
    id: int
    rate_pps: int
    burst: int
    purpose: str


METERS: tuple[Meter, ...] = (
    Meter("ttl_exceeded", 1, 100, 100,
          "packets whose TTL ran out in a router, to the controller for ICMP time-exceeded"),
    Meter("neighbor", 2, 100, 100, "next hops to resolve and ARP replies from uplinks, to the controller"),
    Meter("health", 3, 1000, 1000, "load-balancer members' answers to the controller's health probes"),
    Meter("lldp", 4, 200, 200, "LLDP from trunk candidates (links being discovered or kept), to the controller"),
)
_METER_IDS = {meter.name: meter.id for meter in METERS}


def meter_id(name: str) -> int:
    return _METER_IDS[name]

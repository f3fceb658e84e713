"""The OpenFlow pipeline, declared once: every other module names tables and registers from here.

Numbers leave gaps for the stages later features insert (security groups, load balancing,
routing, NAT) so that adding a stage never renumbers the others. docs/pipeline.md explains
each stage with examples. The bits of ct_mark are declared here too.
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
          "drops spoofed MAC/IP/ARP; inter-switch frames are untagged into their network; LLDP to the controller",
          ("arp_responder", "l2_lookup")),
    Table("arp_responder", 10,
          "answers ARP requests for addresses known in the packet's network from the switch",
          ("egress_acl",)),
    Table("egress_acl", 20,
          "security groups, leaving the source port: ARP, own DHCP and unfiltered ports pass, DHCP server "
          "replies from any other port drop; IP goes through conntrack in the source port's zone",
          ("egress_ct", "l2_lookup")),
    Table("egress_ct", 21,
          "after conntrack: replies and related pass, invalid drops, the source port's egress rules "
          "decide the rest (new connections committed, revoked ones marked)",
          ("l2_lookup",)),
    Table("l2_lookup", 60,
          "destination MAC within the network -> local port (registers) or tagged out the next-hop link; "
          "broadcast/multicast -> each local port of the network through ingress_acl, and the flood tree",
          ("ingress_acl",)),
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

# ct_mark is a set of named bits, each matched and set with its own mask (never the whole mark), so that a
# stage setting one bit never clears another's. Bits are handed out from bit 0 upwards; 2-31 are free.
CT_MARK_REVOKED = 1 << 0  # no security-group rule allows the connection any more: its replies stop too
CT_MARK_NATTED = 1 << 1   # reserved for the NAT stages: the connection was translated in this zone

# Priorities shared by the stages.
PRIO_MISS = 0
PRIO_LOW = 10
PRIO_DEFAULT = 100
PRIO_HIGH = 1000
PRIO_CONTROL = 65000  # controller-bound protocol traffic (LLDP) ahead of any policy

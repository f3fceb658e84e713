"""OpenFlow select groups, as load balancers use them: one flow hands a connection to one of several buckets.

A group is a value like a flow: units return it in their per-switch lists, the engine keeps one per group id
(apps.incremental), the programmer installs it (controller.programmer) and flowsim runs it (apps.flowsim).
Its buckets' actions are apps.actions declarations, run by `GroupAction` in the context of the calling flow.

What OVS 3.1 does with a select group on our OpenFlow 1.3 channel (checked on a netdev bridge):
- OF1.3 group-mods carry no bucket ids and no selection method (both are OF1.5 properties, and a message of
  another version than the channel's is refused): OVS numbers buckets by position, so ours go on the wire in
  bucket_id order, and every group uses OVS's default, dp_hash over a symmetric L4 hash (the 5-tuple);
- dp_hash maps 16 to 256 hash values to buckets by weight (Webster's method, in bucket order: `slots`), so
  changing the buckets may move new connections between buckets, never established ones: the buckets commit
  their connection's NAT in conntrack, which applies it to the connection's later packets whatever bucket
  they reach.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

from apps.actions import Action
from apps.fields import IP_PROTO, Packet, read

MAX_HASH_VALUES = 256  # beyond this OVS leaves dp_hash for a slow-path hash (group_set_selection_method)
_L4 = {IP_PROTO["tcp"]: ("tcp_src", "tcp_dst"), IP_PROTO["udp"]: ("udp_src", "udp_dst")}

GroupKey = tuple[str, int]  # ("group", group_id): a group's key among a switch's flow keys (apps.incremental)


@dataclass(frozen=True)
class Bucket:
    """`weight` 0 is never chosen; `bucket_id` orders the buckets on the wire (OVS numbers them by position)."""

    bucket_id: int
    weight: int
    actions: tuple[Action, ...]


@dataclass(frozen=True)
class Group:
    """A select group. `selection` names the fields to hash (empty: the 5-tuple); OVS 3.1 takes a selection
    method only from OpenFlow 1.5, so on our channel every group hashes the 5-tuple, and so does flowsim.
    `cookie` names the owner, as a flow's does (OF1.3 groups carry none on the wire)."""

    group_id: int
    buckets: tuple[Bucket, ...]
    selection: tuple[str, ...] = ()
    cookie: int = 0

    @property
    def key(self) -> GroupKey:
        return ("group", self.group_id)

    @property
    def ordered(self) -> tuple[Bucket, ...]:
        """The buckets as the switch holds them."""
        return tuple(sorted(self.buckets, key=lambda bucket: bucket.bucket_id))

    def problem(self) -> str | None:
        """Why OVS would refuse the group, or run it otherwise than flowsim does; None when it is fine."""
        if not 0 <= self.group_id <= 0xFFFFFF00:
            return f"group id {self.group_id} is reserved or out of range"
        ids = [bucket.bucket_id for bucket in self.buckets]
        if len(set(ids)) != len(ids) or not all(0 <= bucket_id <= 0xFFFFFF00 for bucket_id in ids):
            return f"bucket ids must be distinct and below 0xffffff00: {ids}"
        if not all(0 <= bucket.weight <= 0xFFFF for bucket in self.buckets):
            return "bucket weights must fit 16 bits"
        if any(bucket.weight for bucket in self.buckets) and not slots(self):
            return f"weights {[bucket.weight for bucket in self.buckets]} need more than {MAX_HASH_VALUES} hash values"
        return None


def is_group_key(key: tuple) -> bool:
    return len(key) == 2 and key[0] == "group"


@lru_cache(maxsize=1 << 12)
def slots(group: Group) -> tuple[Bucket, ...]:
    """The bucket of each dp_hash value (the hash masked to the table size), as OVS's
    group_setup_dp_hash_table fills it; empty when all weights are 0 or they spread too far for dp_hash."""
    ordered = group.ordered  # a property that sorts: once, not once per hash value
    weights = [bucket.weight for bucket in ordered]
    live = [weight for weight in weights if weight]
    if not live:
        return ()
    needed = -(-sum(weights) // min(live))  # DIV_ROUND_UP(total, min weight)
    n_hash = max(16, 1 << (needed - 1).bit_length())
    if n_hash > MAX_HASH_VALUES:
        return ()
    divisors, values = [1] * len(weights), [float(weight) for weight in weights]
    chosen = []
    for _ in range(n_hash):
        winner = max(range(len(weights)), key=lambda i: (values[i], -i))  # the first of the highest
        divisors[winner] += 2
        values[winner] = weights[winner] / divisors[winner]
        chosen.append(ordered[winner])
    return tuple(chosen)


def packet_hash(pkt: Packet) -> int:
    """A stable stand-in for OVS's symmetric L4 hash: the same for both directions of a connection."""
    ends = sorted((read(pkt, "ipv4_src") or 0, read(pkt, "ipv4_dst") or 0))
    ports = sorted(read(pkt, name) or 0 for name in _L4.get(read(pkt, "ip_proto") or 0, ()))
    data = b"".join(value.to_bytes(4, "big") for value in (*ends, read(pkt, "ip_proto") or 0, *ports))
    return int.from_bytes(hashlib.blake2b(data, digest_size=4).digest(), "big")


def bucket_for(group: Group, pkt: Packet) -> Bucket | None:
    """The bucket the switch gives `pkt`'s connection (None: no live bucket, the packet goes nowhere)."""
    table = slots(group)
    return table[packet_hash(pkt) % len(table)] if table else None

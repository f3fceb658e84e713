"""Where hypervisors plugged ports: OVSDB interfaces whose `external_ids:iface-id` names a port.

libvirt, Nova and OVN hypervisors set `external_ids:iface-id` on a VM's interface to its port's id. A port created
without a `binding` is attached to the interface that claims it: by the port's id, or by its name when no port has
that id and exactly one port has that name (a tenant picks names, so a name two ports share attaches neither). This
is topology, not policy: the compiler takes it as an input next to the switches' ports and it never reaches the
store. An explicit binding always wins: it keeps its port away from any interface, and its interface (like an
uplink or a pinned trunk) away from any port. When several interfaces claim one port, the one it had stays while it
still claims it (a newcomer cannot steal a port), else the lowest (dpid, name) wins; the others are reported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from apps.model import Port

Binding = tuple[str, str]  # (dpid, interface name)


@dataclass(frozen=True, order=True)
class Claim:
    """An OVS interface, as OVSDB has it: `name` on the bridge whose datapath id is `dpid`, with
    external_ids:iface-id `iface_id`."""

    dpid: str
    name: str
    iface_id: str

    @property
    def binding(self) -> Binding:
        return (self.dpid, self.name)


@dataclass(frozen=True)
class Attachment:
    """What OVSDB says of one port: the interface it is attached to (None: none), and why some claim was refused."""

    binding: Binding | None
    conflict: str | None = None


def placed(port: Port, attachment: Attachment | None) -> Port:
    """The port as the compilers (and the health checks) see it: its own binding, else where OVSDB attached it."""
    if port.dpid or attachment is None or attachment.binding is None:
        return port
    return replace(port, dpid=attachment.binding[0], interface=attachment.binding[1])


def resolve(claims: Iterable[Claim], port_by_id: Callable[[str], bool | None],
            ports_named: Callable[[str], tuple[str, ...]], taken: Callable[[Binding], str | None],
            previous: Mapping[str, Attachment]) -> dict[str, Attachment]:
    """port id -> its attachment, for every port some interface claims.

    `port_by_id(id)`: None when no port has that id, else whether the port may be attached (it has no binding of its
    own); `ports_named(name)`: the ids of the ports with that name; `taken(binding)`: what else holds an interface
    (an explicit binding, an uplink, a pinned trunk), None if nothing; `previous`: the last result, so a port keeps
    its interface while that interface still claims it.
    """
    wanted: dict[str, list[Claim]] = {}
    notes: dict[str, list[str]] = {}
    for claim in sorted(set(claims)):
        for port_id, note in _claimed_ports(claim, port_by_id, ports_named):
            if note is None and (holder := taken(claim.binding)) is not None:
                note = f"{_named(claim)} ignored: it is {holder}"
            if note is None:
                wanted.setdefault(port_id, []).append(claim)
            else:
                notes.setdefault(port_id, []).append(note)
    found: dict[str, Attachment] = {}
    for port_id in sorted(wanted.keys() | notes.keys()):
        candidates = wanted.get(port_id, [])
        had = previous.get(port_id)
        chosen = next((c for c in candidates if had is not None and c.binding == had.binding),
                      candidates[0] if candidates else None)
        refused = notes.get(port_id, []) + [f"{_named(c)} claims it too" for c in candidates if c is not chosen]
        if chosen is not None and refused:
            refused.insert(0, f"attached to {_named(chosen)}")
        found[port_id] = Attachment(None if chosen is None else chosen.binding, "; ".join(refused) or None)
    return found


def _claimed_ports(claim: Claim, port_by_id: Callable[[str], bool | None],
                   ports_named: Callable[[str], tuple[str, ...]]) -> list[tuple[str, str | None]]:
    """The ports an interface claims, each with why it cannot have it (None: it may)."""
    attachable = port_by_id(claim.iface_id)
    if attachable is None:
        named = ports_named(claim.iface_id)
        if len(named) > 1:  # every one of them is told; none is attached
            note = f"{_named(claim)} ignored: ports {', '.join(sorted(named))} share the name {claim.iface_id!r}"
            return [(port_id, note) for port_id in named]
        if not named:
            return []
        attachable = port_by_id(named[0])
        port_id = named[0]
    else:
        port_id = claim.iface_id
    return [(port_id, None if attachable else f"{_named(claim)} ignored: the port has a binding of its own")]


def _named(claim: Claim) -> str:
    return f"interface {claim.name} of switch {claim.dpid}"

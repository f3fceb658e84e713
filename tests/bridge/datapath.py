"""ofproto/trace's "Datapath actions:" read back into the frames a switch sends, and where it sends them.

Why one table of datapath actions here, rather than a part of each OpenFlow action in apps/actions.py:
these are what OVS makes of a whole pass after translating it, and they do not map to OpenFlow actions one
to one. A set_field of a register or a resubmit emits nothing; a move into eth_dst and a set_field of
eth_src come out as one set(eth(src=...,dst=...)), and only as the net change before each output; a
set_field of vlan_vid comes out as pop_vlan,push_vlan(...); ct with a table comes out as ct(...) then
recirc(...), whose pass is traced separately. What is per field -- the header and key of the datapath's
set(header(key=...)), the field's name in OVS flow syntax -- is declared with the field
(apps.fields.Field.datapath and .ovs_name); the datapath's own vocabulary is _VOCABULARY below. A datapath
action that NAT, groups, meters or dec_ttl bring (ct(nat(...)), hash, meter, a set of a new field) is a row
there or a field's `datapath` (ct(nat), set(ipv4(ttl)), dec_ttl's exhausted-TTL upcall and a select group's
hash(...),recirc(...) are). An action
this parser does not know fails the test: ignoring it could turn a wrong fate into a passing one.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from apps.fields import DECLARED, IPV4, OFPVID_PRESENT, Packet
from apps.flowsim import CONTROLLER, Port

Outputs = list[tuple[Port, Packet]]
_SET_KEYS = {declared.datapath: declared for declared in DECLARED if declared.datapath}


@dataclass
class _Reading:
    """The frame as the actions of one pass so far left it, and what the passes sent."""

    passes: list[str]
    dp_ports: dict[int, int]
    frame: Packet = field(default_factory=dict)
    outputs: Outputs = field(default_factory=list)
    resumes: deque[Packet] = field(default_factory=deque)  # frames as at each recirc(), for the passes to come

    def output(self, port: Port) -> None:
        self.outputs.append((port, dict(self.frame)))

    def unmodelled(self, action: str) -> AssertionError:
        return AssertionError(f"unmodelled datapath action {action!r} in {self.passes!r}")


def _push_vlan(found: re.Match[str], reading: _Reading) -> None:
    reading.frame["vlan_vid"] = OFPVID_PRESENT | int(found[1])


def _set(found: re.Match[str], reading: _Reading) -> None:
    """set(header(key=value,...)): each key names a field by its declared `datapath`."""
    for item in found[2].split(","):
        key, text = item.split("=")
        declared = _SET_KEYS.get((found[1], key))
        if declared is None:
            raise reading.unmodelled(found[0])
        value, mask = (int(text), declared.full) if text.isdigit() else declared.text.parse(declared.name, text)
        if mask != declared.full:
            raise reading.unmodelled(found[0])
        reading.frame[declared.name] = value


def _nat(found: re.Match[str], reading: _Reading) -> None:
    """ct(...,nat(src=IP[-IP][:PORT[-PORT]])): ofproto/trace resumes with the lowest address and port of the
    range ("Replacing src/dst IP/ports to simulate NAT"); a plain nat it cannot resolve, so it changes nothing."""
    if found[1] is None:
        return
    end = "src" if found[1] == "src" else "dst"
    reading.frame[f"ipv4_{end}"] = IPV4.parse("", found[2])[0]
    if found[3] is not None:
        layer4 = {6: "tcp", 17: "udp"}[reading.frame["ip_proto"]]
        reading.frame[f"{layer4}_{end}"] = int(found[3])


# Each datapath action ofproto/trace prints, and what it does to the frame being followed, in order.
_VOCABULARY: tuple[tuple[re.Pattern[str], Callable[[re.Match[str], _Reading], None]], ...] = (
    (re.compile(r"drop"), lambda found, reading: None),
    (re.compile(r"\d+"), lambda found, reading: reading.output(reading.dp_ports[int(found[0])])),
    (re.compile(r"pop_vlan"), lambda found, reading: reading.frame.pop("vlan_vid")),
    (re.compile(r"push_vlan\(vid=(\d+),pcp=0\)"), _push_vlan),
    (re.compile(r"set\((\w+)\((.*)\)\)"), _set),
    # A packet whose TTL ran out goes to userspace for the controllers that asked for it: none do.
    (re.compile(r"userspace\(.*controller\(reason=2,dont_send=1,.*\)\)"), lambda found, reading: None),
    (re.compile(r"userspace\(.*controller\(.*\)\)"), lambda found, reading: reading.output(CONTROLLER)),
    # A meter drops nothing in a trace (it limits rates, not single packets).
    (re.compile(r"meter\(\d+\)"), lambda found, reading: None),
    (re.compile(r"recirc\(0x[0-9a-f]+\)"), lambda found, reading: reading.resumes.append(dict(reading.frame))),
    # A select group (dp_hash): the hash of the 5-tuple, then a recirculation where the bucket runs.
    (re.compile(r"hash\(sym_l4\(0\)\)"), lambda found, reading: None),
    (re.compile(r"ct\((?!.*nat).*\)"), lambda found, reading: None),  # conntrack without NAT leaves the frame alone
    (re.compile(r"ct\(.*,nat(?:\((src|dst)=([\d.]+)(?:-[\d.]+)?(?::(\d+)(?:-\d+)?)?\))?\)"), _nat),
)


def _split_actions(text: str) -> list[str]:
    """Split at the commas that are not inside parentheses."""
    actions, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            actions.append(text[start:i])
            start = i + 1
    return [*actions, text[start:]]


def datapath_outputs(passes: list[str], frame: Packet, dp_ports: dict[int, int]) -> Outputs:
    """(OpenFlow port, frame as sent) for each output of a trace's "Datapath actions:" lines.

    `passes` holds one line per datapath pass in the order traced: the packet's own, then one per
    recirculation (ct with a table, a select group's hash) in the order they were emitted, each resuming
    with the frame as it was at its recirc(). Edits apply in order; OVS emits only the net change before each output.
    """
    reading = _Reading(passes, dp_ports, resumes=deque([dict(frame)]))
    for actions in passes:
        reading.frame = reading.resumes.popleft()
        for action in _split_actions(actions):
            found, edit = next(((found, edit) for pattern, edit in _VOCABULARY
                                if (found := pattern.fullmatch(action))), (None, None))
            if edit is None:
                raise reading.unmodelled(action)
            edit(found, reading)
    assert not reading.resumes, f"a recirculation was not traced: {passes!r}"
    return reading.outputs

"""Incremental compilation: flows recomputed per object, dependencies recorded as they are read.

Three kinds of node, each named by a key tuple whose first item is its kind:

- inputs, set from outside: the policy's objects, the topology, and a few indexes of them (apps/index.py);
- derived values: pure functions of other nodes, memoized (a port's placement, a network's members on
  a switch, the paths toward a switch). One may be recomputed once more after its object is gone (the
  unit reading it goes in the same commit, later), so it must accept a missing input;
- units: pure functions that contribute flows to switches, one per object (a port, a network, a rule,
  a switch). A unit exists while the input it is anchored to exists: unit ("isolation.port", P) lives as
  long as input ("port", P).

Derived values and units read other nodes through a `Reader`, which records what they read. When inputs
change, `commit()` recomputes exactly the nodes that read something that changed, lowest level first (a
node only reads nodes of lower levels, so each is recomputed once, after everything it reads), and stops
wherever a recomputed value equals the old one. Unit contributions are merged per switch into the
desired flow table, and `commit()` returns per switch the keys of the flows that changed. A full compile
is the very same code run on every unit, so incremental and full compiles cannot disagree unless a node
reads something without going through its Reader.

Units may also return apps.groups Groups: the engine keeps each switch's groups by id (`groups(dpid)`), two
units wanting different groups under one id conflict as flows do, and `commit()` reports a changed group by
its key ("group", group_id) among the switch's flow keys.

Clause flows of conjunctive matches are shared: several units (rules, ports, members) contribute
`Share`s of the same (table, priority, match), and the flow carries the union of their conjunctions.
"""

from __future__ import annotations

import bisect
import gc
import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from apps.flows import Conjunction, Flow, Match
from apps.groups import Group, GroupKey, is_group_key

Key = tuple
FlowKey = tuple[str, int, Match]
ChangeKey = FlowKey | GroupKey  # what commit() reports per switch
UNIT_LEVEL = 1000
_MISSING = object()


class FlowConflict(Exception):
    """Two units want different flows under the same (table, priority, match)."""


@dataclass(frozen=True)
class Derived:
    """A memoized value: `compute(read, *args)` for key (kind, *args); it may read only lower levels."""

    level: int
    compute: Callable[..., Any]


@dataclass(frozen=True)
class Unit:
    """Flows of one object: `compute(read, *args) -> {dpid: [Flow | Share | Group]}`, one per input key of
    `anchor`."""

    anchor: str
    compute: Callable[..., Mapping[str, Iterable[Flow | Share | Group]]]


@dataclass(frozen=True)
class Share:
    """A unit's part of a shared conjunctive clause flow: the flow's actions are all parts' conjunctions."""

    table: str
    priority: int
    match: Match
    conjunctions: frozenset[Conjunction]
    cookie: int

    @property
    def key(self) -> FlowKey:
        return (self.table, self.priority, self.match)


Read = Callable[[Key], Any]


def _conj_order(conjunction: Conjunction) -> tuple[int, int]:
    return (conjunction.id, conjunction.clause)


Parts = dict[Key, "Flow | Share | Group"]  # everything units contribute under one key of one switch, by unit


def _render(key: ChangeKey, parts: Parts) -> Flow | Group | None:
    """The flow of one key: its units' one flow (equal if several), or the union of their clause shares."""
    if len(parts) == 1:  # by far the most common: one unit's own flow
        part = next(iter(parts.values()))
        if part.__class__ is not Share:
            return part
    flows = [part for part in parts.values() if part.__class__ is not Share]
    shares = [part for part in parts.values() if part.__class__ is Share]
    if flows and shares:
        raise FlowConflict(f"{key}: a flow ({flows[0]}) and a clause ({shares[0]})")
    if flows:
        for other in flows[1:]:
            if other != flows[0]:
                raise FlowConflict(f"{key}: {flows[0]} vs {other}")
        return flows[0]
    if shares:
        cookies = {share.cookie for share in shares}
        if len(cookies) > 1:
            raise FlowConflict(f"{key}: clause cookies {cookies}")
        conjunctions = set().union(*(share.conjunctions for share in shares))
        return Flow(key[0], key[1], key[2], tuple(sorted(conjunctions, key=_conj_order)), cookie=cookies.pop())
    return None


class _Clause(dict):
    """The parts under a clause flow's key, with the flow's conjunctions kept sorted as shares come and go:
    a clause shared by 1,000 rules changes by one conjunction, not by a sort of 1,000."""

    __slots__ = ("counts", "order", "conjunctions", "cookies", "flows")

    def __init__(self) -> None:
        super().__init__()
        self.counts: dict[Conjunction, int] = {}
        self.order: list[tuple[int, int]] = []  # (id, clause) of each conjunction, sorted
        self.conjunctions: list[Conjunction] = []  # in the same order
        self.cookies: dict[int, int] = {}  # cookie -> how many shares carry it
        self.flows = 0  # parts that are whole flows (a conflict, unless there are none)

    @classmethod
    def of(cls, parts: Parts) -> _Clause:
        clause = cls()
        for unit, part in parts.items():
            clause.put(unit, part)
        return clause

    def put(self, unit: Key, part: Flow | Share | None) -> None:
        """Replace the part of `unit` (None: take it away)."""
        old = self.pop(unit, None)
        if old is not None:
            self._count(old, -1)
        if part is not None:
            self[unit] = part
            self._count(part, 1)

    def _count(self, part: Flow | Share, delta: int) -> None:
        if part.__class__ is not Share:
            self.flows += delta
            return
        self.cookies[part.cookie] = self.cookies.get(part.cookie, 0) + delta
        if not self.cookies[part.cookie]:
            del self.cookies[part.cookie]
        for conjunction in part.conjunctions:
            count = self.counts.get(conjunction, 0) + delta
            place = (conjunction.id, conjunction.clause)
            if count == 1 and delta == 1:
                at = bisect.bisect_left(self.order, place)
                self.order.insert(at, place)
                self.conjunctions.insert(at, conjunction)
            elif not count:
                at = bisect.bisect_left(self.order, place)
                del self.order[at], self.conjunctions[at]
            if count:
                self.counts[conjunction] = count
            else:
                self.counts.pop(conjunction, None)

    def render(self, key: FlowKey) -> Flow | None:
        if self.flows:
            return _render(key, self)
        if len(self.cookies) > 1:
            raise FlowConflict(f"{key}: clause cookies {set(self.cookies)}")
        if not self.conjunctions:
            return None
        return Flow(key[0], key[1], key[2], tuple(self.conjunctions), cookie=next(iter(self.cookies)))


class Engine:
    def __init__(self, derived: Mapping[str, Derived], units: Mapping[str, Unit]) -> None:
        self._derived = dict(derived)
        self._units = dict(units)
        self._levels = {kind: d.level for kind, d in self._derived.items()} | dict.fromkeys(self._units, UNIT_LEVEL)
        self._anchored: dict[str, list[str]] = {}
        for name, unit in self._units.items():
            self._anchored.setdefault(unit.anchor, []).append(name)
        self._values: dict[Key, Any] = {}                # inputs and computed derived values
        self._deps: dict[Key, frozenset[Key]] = {}       # derived and unit nodes -> what they read
        self._dependents: dict[Key, set[Key]] = {}       # node -> derived and unit nodes that read it
        self._contributions: dict[Key, dict[str, dict[ChangeKey, Flow | Share | Group]]] = {}  # unit, dpid, key
        self._entries: dict[str, dict[ChangeKey, Parts]] = {}
        self._tables: dict[str, dict[FlowKey, Flow]] = {}
        self._groups: dict[str, dict[int, Group]] = {}
        self._before: dict[Key, Any] = {}  # inputs set since the last commit -> their value then
        self.recomputed: Counter[str] = Counter()  # kind -> recomputations by the last commit (tests, metrics)

    # --- inputs -----------------------------------------------------------------------------------
    def set(self, key: Key, value: Any) -> None:
        """Set an input (None removes it); takes effect at the next commit()."""
        old = self._values.get(key, _MISSING)
        if value is None:
            if old is _MISSING:
                return
            del self._values[key]
        else:
            if old is value or (old is not _MISSING and old == value):
                return
            self._values[key] = value
        self._before.setdefault(key, old)  # a key set back to what it was is no change

    def get(self, key: Key) -> Any:
        """A node's value from outside any computation (computed if needed; no dependency recorded)."""
        return self._read(key)

    # --- results ------------------------------------------------------------------------------------
    @property
    def tables(self) -> Mapping[str, Mapping[FlowKey, Flow]]:
        """dpid -> the desired flows of that switch, as of the last commit()."""
        return self._tables

    def table(self, dpid: str) -> Mapping[FlowKey, Flow]:
        return self._tables.get(dpid, {})

    def groups(self, dpid: str) -> Mapping[int, Group]:
        """The desired groups of a switch by group id, as of the last commit()."""
        return self._groups.get(dpid, {})

    # --- propagation --------------------------------------------------------------------------------
    def commit(self) -> dict[str, set[ChangeKey]]:
        """Bring every node up to date with the inputs set since the last commit.

        Returns per switch the keys whose desired flow or group was added, changed or removed.

        Python's cycle collector is paused meanwhile, and what the commit made is then frozen out of its
        reach: a compile allocates hundreds of thousands of objects with no cycles among them, and the
        collector scanning them again and again took more than half of a full compile (measured: 2.35 s
        against 1.10 s for 5,000 ports). Freed objects still go at once, by reference counting.
        """
        paused = gc.isenabled()
        gc.disable()
        try:
            return self._commit()
        finally:
            gc.freeze()
            if paused:
                gc.enable()

    def _commit(self) -> dict[str, set[ChangeKey]]:
        self.recomputed = Counter()
        delta: dict[str, set[ChangeKey]] = {}
        queue: list[tuple[int, int, Key]] = []
        queued: set[Key] = set()
        counter = 0

        def push(node: Key) -> None:
            nonlocal counter
            if node not in queued:
                queued.add(node)
                counter += 1
                heapq.heappush(queue, (self._level(node), counter, node))

        before, self._before = self._before, {}
        changed = [key for key, old in before.items() if self._values.get(key, _MISSING) != old]
        for key in changed:
            for dependent in self._dependents.get(key, ()):
                push(dependent)
            for unit_name in self._anchored.get(key[0], ()):
                push((unit_name, *key[1:]))
        touched: dict[str, set[ChangeKey]] = {}  # keys whose parts changed: rendered once, at the end
        while queue:
            _, _, node = heapq.heappop(queue)
            queued.discard(node)
            if node[0] in self._units:
                self._update_unit(node, touched)
            elif node in self._deps:  # a derived value someone still reads
                old = self._values.get(node, _MISSING)
                new = self._compute(node)
                if new != old:
                    for dependent in self._dependents.get(node, ()):
                        push(dependent)
        for dpid, keys in touched.items():
            entries = self._entries.setdefault(dpid, {})
            table = self._tables.setdefault(dpid, {})
            for key in keys:
                parts = entries.get(key)
                flow = (parts.render(key) if parts.__class__ is _Clause else _render(key, parts)) if parts else None
                if flow is None:
                    entries.pop(key, None)
                if is_group_key(key):
                    self._put_group(dpid, key, flow, delta)
                elif table.get(key) != flow:
                    delta.setdefault(dpid, set()).add(key)
                    if flow is None:
                        del table[key]
                    else:
                        table[key] = flow
        return delta

    def _put_group(self, dpid: str, key: GroupKey, group: Group | None, delta: dict[str, set[ChangeKey]]) -> None:
        groups = self._groups.setdefault(dpid, {})
        if groups.get(key[1]) != group:
            delta.setdefault(dpid, set()).add(key)
            if group is None:
                del groups[key[1]]
            else:
                groups[key[1]] = group

    def _level(self, node: Key) -> int:
        return self._levels.get(node[0], 0)

    def _read(self, key: Key) -> Any:
        if key[0] in self._derived and key not in self._deps:
            return self._compute(key)
        return self._values.get(key)

    def _compute(self, node: Key) -> Any:
        """(Re)compute a derived value or a unit's contributions, recording what it reads."""
        level = self._level(node)
        reads: set[Key] = set()

        def read(key: Key) -> Any:
            if self._level(key) >= level:
                raise ValueError(f"{node} may not read {key}: not of a lower level")
            reads.add(key)
            return self._read(key)

        self.recomputed[node[0]] += 1
        definition = self._units.get(node[0]) or self._derived[node[0]]
        value = definition.compute(read, *node[1:])
        self._track(node, frozenset(reads))
        if node[0] not in self._units:
            self._values[node] = value
        return value

    def _track(self, node: Key, reads: frozenset[Key]) -> None:
        old = self._deps.get(node, frozenset())
        for key in old - reads:
            dependents = self._dependents.get(key)
            if dependents is not None:
                dependents.discard(node)
                if not dependents:
                    del self._dependents[key]
                    self._release(key)
        for key in reads - old:
            self._dependents.setdefault(key, set()).add(node)
        self._deps[node] = reads

    def _release(self, key: Key) -> None:
        """Forget a derived value nobody reads any more (and, in turn, what only it read)."""
        if key[0] in self._derived and key in self._deps and not self._dependents.get(key):
            self._values.pop(key, None)
            self._track(key, frozenset())
            del self._deps[key]

    def _update_unit(self, unit: Key, touched: dict[str, set[ChangeKey]]) -> None:
        anchor = (self._units[unit[0]].anchor, *unit[1:])
        if anchor in self._values:
            produced = self._compute(unit)
            new = {dpid: _by_key(unit, parts) for dpid, parts in produced.items()}
        else:  # its object is gone: so are its flows
            new = {}
            self._track(unit, frozenset())
            self._deps.pop(unit, None)
        old = self._contributions.pop(unit, {})
        if new:
            self._contributions[unit] = new
        for dpid in old.keys() | new.keys():
            before, after = old.get(dpid, {}), new.get(dpid, {})
            if before == after:
                continue
            entries = self._entries.setdefault(dpid, {})
            keys = touched.setdefault(dpid, set())
            if not before:  # a new unit, or new on this switch (a full compile is all this)
                for key, part in after.items():
                    parts = entries.get(key)
                    if parts is None and part.__class__ is not Share:
                        entries[key] = {unit: part}
                    else:
                        _place(entries, key, unit, part)
                keys.update(after)
                continue
            for key, part in after.items():
                previous = before.get(key)
                if previous is part or previous == part:
                    continue
                keys.add(key)
                _place(entries, key, unit, part)
            for key in before.keys() - after.keys():
                keys.add(key)
                _place(entries, key, unit, None)


def _place(entries: dict[ChangeKey, Parts], key: ChangeKey, unit: Key, part: Flow | Share | Group | None) -> None:
    """Put a unit's part under a key (None: take it away); a key with shares keeps its conjunctions sorted."""
    parts = entries.get(key)
    if parts is None:
        parts = entries[key] = _Clause() if part.__class__ is Share else {}
    elif part.__class__ is Share and parts.__class__ is not _Clause:
        parts = entries[key] = _Clause.of(parts)
    if parts.__class__ is _Clause:
        parts.put(unit, part)
    elif part is None:
        parts.pop(unit, None)
    else:
        parts[unit] = part


def _by_key(unit: Key, parts: Iterable[Flow | Share | Group]) -> dict[ChangeKey, Flow | Share | Group]:
    """A unit's parts on one switch by key: its shares of one clause merge, equal flows (groups) are one."""
    parts = list(parts)
    merged: dict[ChangeKey, Flow | Share | Group] = {part.key: part for part in parts}
    if len(merged) == len(parts):  # no two under one key: nothing to merge
        return merged
    merged = {}
    for part in parts:
        other = merged.get(part.key)
        if other is None or other == part:
            merged[part.key] = part
        elif isinstance(part, Share) and isinstance(other, Share) and part.cookie == other.cookie:
            merged[part.key] = Share(part.table, part.priority, part.match, other.conjunctions | part.conjunctions,
                                     part.cookie)
        else:
            raise FlowConflict(f"{unit} makes two flows under {part.key}: {other} vs {part}")
    return merged

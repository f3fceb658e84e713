"""Which flows count whose traffic: packets and bytes per security-group rule, router, static route, floating IP and
load-balancer member, summed from the switches' flow counters (controller.counters reads and sums them).

An object's own cookie (apps.flows.cookie) marks the flows that count its traffic, each packet once wherever it
goes: a conjunctive rule's conj_id flow (packets in the direction its connections were opened, every one of them:
rules are evaluated on every original-direction packet), a router's routes to its networks and its default route
and each static route's own flows (every packet the router routes, where it is routed), a floating IP's two flows
on its router's gateway switch (what comes in to it from outside and what its port sends out through it), a
member's way to it (what clients send it, where their connection entered the balancer). Everything else of theirs
carries aux_cookie. One case is shared: rules that allow everything in their direction (no protocol, no remote)
compile into one flow per profile and direction, whose packets count for each such rule of the profile's groups,
since each of them allowed them. When several rules would allow a packet, the switch counts it against the one
whose flow matched it: a rule's counter says what it let through, not everything it would have.
"""

from __future__ import annotations

from collections import defaultdict

from apps.flows import cookie
from apps.model import Policy
from apps.pipeline import table_id
from apps.routing import route_cookie, route_id
from apps.security_groups import STAGES, profile_cookie, single_condition

KINDS = ("security_group_rule", "router", "router_route", "floating_ip", "lb_member")
ObjectRef = tuple[str, str]          # (kind, id); a route's id is "router id/destination/nexthop"
Counted = tuple[int, int | None]     # (cookie, table id), or (cookie, None) for its flows in every table


def counted_flows(policy: Policy) -> dict[Counted, tuple[ObjectRef, ...]]:
    """The flows that count objects' traffic, by cookie (and table where a cookie's flows count differently), and the
    objects each counts for. A profile's shared flows are listed even when no rule of it allows everything (they
    count for nobody then): a rule added later counts from then on, not the profile's history."""
    counted: dict[Counted, tuple[ObjectRef, ...]] = {}
    everything: defaultdict[tuple[str, str], list[ObjectRef]] = defaultdict(list)  # (group, direction) -> rules
    for group in policy.security_groups:
        for rule in group.rules:
            ref = ("security_group_rule", rule.id)
            if single_condition(rule):
                everything[(group.id, rule.direction)].append(ref)
            else:
                counted[(cookie("security_groups", rule.id), None)] = (ref,)
    profiles = {port.profile: port.security_group_ids for port in policy.ports if port.port_security_enabled}
    for profile, group_ids in profiles.items():
        for direction, stage in STAGES.items():
            counted[(profile_cookie(profile), table_id(stage.ct))] = tuple(
                ref for group_id in dict.fromkeys(group_ids) for ref in everything[(group_id, direction)])
    for router in policy.routers:
        mine = ("router", router.id)
        counted[(cookie("routing", router.id), None)] = (mine,)
        for route in router.routes:
            counted[(route_cookie(router.id, route), None)] = (("router_route", route_id(router.id, route)), mine)
    for floating_ip in policy.floating_ips:
        counted[(cookie("routing", floating_ip.id), None)] = (("floating_ip", floating_ip.id),)
    for balancer in policy.load_balancers:
        for member in balancer.members:
            counted[(cookie("load_balancing", member.id), None)] = (("lb_member", member.id),)
    return counted

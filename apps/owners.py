"""Cookie -> owning object, so a flow read from a switch can say which policy object made it."""

from __future__ import annotations

from apps.flows import cookie
from apps.model import Policy


def owners(policy: Policy) -> dict[int, str]:
    """Every cookie the compilers can produce for `policy`, named as 'app:kind/id'."""
    named = {cookie("system", "pipeline"): "system:pipeline", cookie("system", "discovery"): "system:discovery"}
    named.update({cookie("isolation", n.id): f"isolation:network/{n.id}" for n in policy.networks})
    named.update({cookie("isolation", p.id): f"isolation:port/{p.id}" for p in policy.ports})
    named.update({cookie("security_groups", "pipeline"): "security_groups:pipeline",
                  cookie("security_groups", "clauses"): "security_groups:clauses"})
    named.update({cookie("security_groups", p.id): f"security_groups:port/{p.id}" for p in policy.ports})
    named.update({cookie("security_groups", r.id): f"security_groups:rule/{r.id}"
                  for g in policy.security_groups for r in g.rules})
    return named

// What the views share: lookups over one poll's data, network colours, links to objects, counters.

import {count, h, shortId} from "./dom.js";

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
  "#bcbd22", "#7f7f7f"];

/** Lookups over a snapshot of the API's lists (rebuilt on every poll). */
export function indexOf(data) {
  const byId = (items) => new Map((items || []).map((item) => [item.id, item]));
  const networks = [...(data.networks || [])].sort((a, b) =>
    (b.external - a.external) || (a.name || "").localeCompare(b.name || "") || a.id.localeCompare(b.id));
  const colours = new Map(networks.map((n, i) => [n.id, PALETTE[i % PALETTE.length]]));
  const bound = new Map();  // "dpid/interface" -> {kind: "port"|"uplink", object, network}
  for (const port of data.ports || []) {
    bound.set(`${port.binding.dpid}/${port.binding.interface}`, {kind: "port", object: port, network: port.network_id});
  }
  for (const network of networks) {
    if (network.uplink) bound.set(`${network.uplink.dpid}/${network.uplink.interface}`,
      {kind: "uplink", object: network, network: network.id});
  }
  const rules = new Map();  // rule id -> [rule, group]
  for (const group of data.groups || []) for (const rule of group.rules || []) rules.set(rule.id, [rule, group]);
  return {
    networks,
    network: byId(networks),
    port: byId(data.ports),
    group: byId(data.groups),
    router: byId(data.routers),
    floatingIp: byId(data.floatingIps),
    loadBalancer: byId(data.loadBalancers),
    rule: rules,
    colour: (networkId) => colours.get(networkId) || "#999",
    bound: (dpid, iface) => bound.get(`${dpid}/${iface}`),
  };
}

/** A name to show: the object's own, else its short id. */
export function nameOf(object) {
  return object ? object.name || shortId(object.id) : "?";
}

/** The page that shows each kind of object, by the kinds flow owners use ("routing:router/<id>", or a trace's). */
const PAGE_OF = {
  network: "networks", port: "ports", security_group: "security-groups", rule: "security-groups",
  security_group_rule: "security-groups", router: "routers", mac_binding: "routers", floating_ip: "floating-ips",
  load_balancer: "load-balancers", member: "load-balancers", load_balancer_member: "load-balancers",
};

/** A link to an object's row on its page (#/page/id), which the page highlights. */
export function objectLink(page, id, label) {
  return h("a", {href: `#/${page}/${encodeURIComponent(id)}`, class: "object-link"}, label);
}

export function networkLink(idx, id) {
  const network = idx.network.get(id);
  return network ? objectLink("networks", id, nameOf(network)) : shortId(id);
}

export function portLink(idx, id) {
  const port = idx.port.get(id);
  return port ? objectLink("ports", id, nameOf(port)) : shortId(id);
}

export function groupLink(idx, id) {
  const group = idx.group.get(id);
  return group ? objectLink("security-groups", id, nameOf(group)) : shortId(id);
}

/** A rule in a few words: "ingress tcp 22 from 10.0.0.0/8". */
export function ruleSummary(idx, rule) {
  const ports = rule.port_range_min == null ? "" : rule.port_range_min === rule.port_range_max
    ? ` ${rule.port_range_min}` : ` ${rule.port_range_min}-${rule.port_range_max}`;
  const peer = rule.remote_ip_prefix || (rule.remote_group_id ? `group ${nameOf(idx.group.get(rule.remote_group_id))}`
    : "anywhere");
  return `${rule.direction} ${rule.protocol || "any"}${ports} ${rule.direction === "ingress" ? "from" : "to"} ${peer}`;
}

/**
 * The objects behind a flow's owner, as links: a trace stage names it {kind, id, name, ...} (a profile lists its
 * security_groups), the controller's flows "app:kind/id". Returns [{page, id, label}], or [] for the pipeline's
 * own flows (no object).
 */
export function ownerRefs(idx, owner) {
  if (!owner) return [];
  const given = typeof owner === "string" ? /^(?:[\w-]+:)?(\w+)\/(.+)$/.exec(owner) : null;
  const {kind, id, name} = typeof owner === "string" ? {kind: given && given[1], id: given && given[2]} : owner;
  if (kind === "profile") {
    return (owner.security_groups || []).map((g) => ({page: "security-groups", id: g.id,
      label: `group ${nameOf(idx.group.get(g.id) || g)}`}));
  }
  const page = PAGE_OF[kind];
  if (!page || !id) return [];
  const rule = idx.rule.get(id);
  if (rule) return [{page, id, label: `rule "${ruleSummary(idx, rule[0])}" of group ${nameOf(rule[1])}`}];
  const named = idx.port.get(id) || idx.network.get(id) || idx.router.get(id) || idx.floatingIp.get(id)
    || idx.loadBalancer.get(id);
  const within = owner.load_balancer ? ` of ${nameOf(owner.load_balancer)}` : "";
  return [{page, id, label: `${kind.replace(/_/g, " ")} ${named ? nameOf(named) : name || shortId(id)}${within}`}];
}

/** The two cells of an object's flow counters, or "n/a" when the controller reports none. */
export function statCells(object) {
  const stats = object && object.stats;
  if (!stats || typeof stats.packets !== "number") {
    const title = "not available: the controller reports no counters for this object";
    return [[{class: "na", title}, "n/a"], [{class: "na", title}, "n/a"]];
  }
  return [[{class: "stat stat-packets"}, count(stats.packets)], [{class: "stat stat-bytes"}, count(stats.bytes)]];
}

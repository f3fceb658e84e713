// The policy pages: one table (or one section per object) for each kind the REST API serves. Every object's row
// carries data-id, so a link #/page/<id> (from a trace, or another page) finds and highlights it.

import * as api from "./api.js";
import {apiErrorNode, badge, h, put, row, shortId, syncOptions, table} from "./dom.js";
import {groupLink, nameOf, networkLink, objectLink, portLink, ruleSummary, statCells} from "./model.js";

const yesNo = (value) => (value ? "yes" : "no");

/** A page that re-renders wholly on every poll (it holds no form). */
function listView(title, render) {
  return {
    title,
    mount(root) {
      const body = h("div");
      put(root, h("h2", {}, title), body);
      return {update: (data, idx) => put(body, render(data, idx))};
    },
  };
}

export const networksView = listView("Networks", (data, idx) => table(
  ["name", "id", "cidr", "gateway", "segmentation id", "external", "uplink", "ports", "status"],
  idx.networks.map((n) => row(n.id, [
    [{class: "name"}, h("span", {class: "swatch", "data-colour": idx.colour(n.id)}), nameOf(n)], shortId(n.id),
    n.cidr, n.gateway_ip ?? "none", String(n.segmentation_id), yesNo(n.external),
    n.uplink ? `${n.uplink.dpid} / ${n.uplink.interface}` : "",
    String((data.ports || []).filter((p) => p.network_id === n.id).length), badge(n.status)])),
  {class: "networks"}));

export const portsView = listView("Ports", (data, idx) => table(
  ["name", "id", "network", "MAC", "IP", "status", "binding", "security groups", "port security"],
  (data.ports || []).map((p) => row(p.id, [
    [{class: "name"}, nameOf(p)], shortId(p.id), networkLink(idx, p.network_id), p.mac_address, p.ip_address,
    badge(p.status), `${p.binding.dpid} / ${p.binding.interface}`,
    p.port_security_enabled === false ? h("span", {class: "muted"}, "off: not filtered")
      : p.security_group_ids.length ? p.security_group_ids.map((g, i) => [i ? ", " : "", groupLink(idx, g)])
        : h("span", {class: "muted"}, "none: nothing in or out"),
    yesNo(p.port_security_enabled)])),
  {class: "ports"}));

// -- security groups: rules with their counters, added and removed here ------------------------------------------

function portRange(rule) {
  if (rule.port_range_min == null) return "any";
  return rule.port_range_min === rule.port_range_max ? String(rule.port_range_min)
    : `${rule.port_range_min}-${rule.port_range_max}`;
}

/** A form value as the API expects it: a whole number as a number, anything else as typed (the API judges it). */
function numberOrText(value) {
  return /^-?\d+$/.test(value.trim()) ? Number(value) : value;
}

function ruleForm(outcome, refresh) {
  const group = h("select", {name: "security_group_id", "aria-label": "group"});
  const direction = h("select", {name: "direction"}, h("option", {value: "ingress"}, "ingress"),
    h("option", {value: "egress"}, "egress"));
  const protocol = h("select", {name: "protocol"}, ["", "tcp", "udp", "icmp"].map((p) =>
    h("option", {value: p}, p || "any")));
  const min = h("input", {name: "port_range_min", size: 6, placeholder: "from", inputmode: "numeric"});
  const max = h("input", {name: "port_range_max", size: 6, placeholder: "to", inputmode: "numeric"});
  const prefix = h("input", {name: "remote_ip_prefix", size: 16, placeholder: "remote CIDR (any)"});
  const remoteGroup = h("select", {name: "remote_group_id"});
  const submit = h("button", {type: "submit"}, "Add rule");
  const form = h("form", {class: "rule-form", id: "add-rule"},
    h("label", {}, "group ", group), h("label", {}, "direction ", direction), h("label", {}, "protocol ", protocol),
    h("label", {}, "ports ", min, "–", max), h("label", {}, "remote ", prefix), h("label", {}, "or group ", remoteGroup),
    submit);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = {security_group_id: group.value, direction: direction.value};
    if (protocol.value) body.protocol = protocol.value;
    if (min.value.trim()) body.port_range_min = numberOrText(min.value);
    if (max.value.trim()) body.port_range_max = numberOrText(max.value);
    if (prefix.value.trim()) body.remote_ip_prefix = prefix.value.trim();
    if (remoteGroup.value) body.remote_group_id = remoteGroup.value;
    submit.disabled = true;
    try {
      const rule = await api.post("/security-group-rules", body);
      put(outcome, h("div", {class: "api-ok", role: "status"}, `rule ${rule.id} added`));
      refresh();
    } catch (exc) {
      put(outcome, apiErrorNode(exc.error));
    } finally {
      submit.disabled = false;
    }
  });
  return {form, update: (groups) => {
    const named = groups.map((g) => [g.id, nameOf(g)]);
    syncOptions(group, named);
    syncOptions(remoteGroup, [["", "none"], ...named]);
  }};
}

function groupSection(data, idx, group, remove) {
  const users = (data.ports || []).filter((p) => p.security_group_ids.includes(group.id));
  const rules = (group.rules || []).map((r) => row(r.id, [
    r.direction, r.protocol || "any", portRange(r),
    r.remote_group_id ? ["group ", groupLink(idx, r.remote_group_id)] : r.remote_ip_prefix || "anywhere",
    ...statCells(r),
    h("button", {type: "button", class: "remove-rule", "data-rule": r.id, title: ruleSummary(idx, r),
      onclick: (event) => remove(r, event.currentTarget)}, "remove")]));
  return h("section", {class: "group", "data-id": group.id},
    h("h3", {}, nameOf(group), " ", h("span", {class: "muted"}, shortId(group.id))),
    group.description ? h("p", {}, group.description) : null,
    h("p", {}, "ports: ", users.length ? users.map((p, i) => [i ? ", " : "", portLink(idx, p.id)]) : "none"),
    table(["direction", "protocol", "ports", "remote", "packets", "bytes", ""], rules, {class: "rules"}));
}

export const securityGroupsView = {
  title: "Security groups",
  mount(root, refresh) {
    const outcome = h("div", {class: "outcome", id: "rule-outcome"});
    const form = ruleForm(outcome, refresh);
    const body = h("div");
    const remove = async (rule, button) => {
      button.disabled = true;
      try {
        await api.del(`/security-group-rules/${rule.id}`);
        put(outcome, h("div", {class: "api-ok", role: "status"}, `rule ${rule.id} removed`));
        refresh();
      } catch (exc) {
        put(outcome, apiErrorNode(exc.error));
        button.disabled = false;
      }
    };
    put(root, h("h2", {}, "Security groups"), form.form, outcome, body);
    return {update(data, idx) {
      const groups = [...(data.groups || [])].sort((a, b) => nameOf(a).localeCompare(nameOf(b)));
      form.update(groups);
      put(body, groups.map((g) => groupSection(data, idx, g, remove)));
    }};
  },
};

// -- routers, floating IPs, load balancers ------------------------------------------------------------------------

function routerSection(idx, r) {
  const gw = r.external_gateway;
  return h("section", {class: "router", "data-id": r.id},
    h("h3", {}, nameOf(r), " ", h("span", {class: "muted"}, shortId(r.id)), " ", badge(r.status)),
    h("p", {}, "gateway: ", gw ? [networkLink(idx, gw.network_id), ` ${gw.ip_address ?? ""}`,
      gw.enable_snat === false ? " (no SNAT)" : " (SNAT)", r.gateway_dpid ? ` on ${r.gateway_dpid}` : ""] : "none"),
    table(["packets", "bytes"], [statCells(r)], {class: "stats"}),
    h("h4", {}, "Interfaces"),
    table(["network", "address"], (r.interfaces || []).map((i) => [networkLink(idx, i.network_id), i.ip_address])),
    h("h4", {}, "Routes"),
    table(["destination", "next hop", "packets", "bytes"], (r.routes || []).map((route) =>
      [route.destination, route.nexthop, ...statCells(route)])),
    h("h4", {}, "MAC bindings"),
    // Next hops resolved on the external network; a trace names one "<network id>/<address>".
    table(["address", "MAC"], (r.mac_bindings || []).map((b) =>
      row(gw ? `${gw.network_id}/${b.ip_address}` : b.ip_address, [b.ip_address, b.mac_address]))));
}

export const routersView = listView("Routers", (data, idx) => (data.routers || []).length
  ? data.routers.map((r) => routerSection(idx, r)) : h("p", {class: "empty"}, "no routers"));

export const floatingIpsView = listView("Floating IPs", (data, idx) => table(
  ["address", "id", "network", "port", "fixed address", "router", "status", "packets", "bytes"],
  (data.floatingIps || []).map((f) => row(f.id, [
    [{class: "name"}, f.floating_ip_address], shortId(f.id), networkLink(idx, f.network_id),
    f.port_id ? portLink(idx, f.port_id) : "unattached", f.fixed_ip_address ?? "",
    f.router_id ? objectLink("routers", f.router_id, nameOf(idx.router.get(f.router_id))) : "",
    badge(f.status), ...statCells(f)])),
  {class: "floating-ips"}));

function monitorText(monitor) {
  return monitor ? `${monitor.type} every ${monitor.interval_s} s, timeout ${monitor.timeout_s} s, `
    + `${monitor.max_retries} retries` : "none";
}

function balancerSection(idx, lb) {
  return h("section", {class: "load-balancer", "data-id": lb.id},
    h("h3", {}, nameOf(lb), " ", h("span", {class: "muted"}, shortId(lb.id)), " ", badge(lb.status)),
    h("p", {}, `VIP ${lb.vip_address} ${lb.protocol}/${lb.port} on `, networkLink(idx, lb.network_id),
      `, ${lb.algorithm}; health monitor: ${monitorText(lb.health_monitor)}`),
    table(["packets", "bytes"], [statCells(lb)], {class: "stats"}),
    table(["member", "port", "weight", "admin", "status", "packets", "bytes"], (lb.members || []).map((m) =>
      row(m.id, [m.ip_address, String(m.port), String(m.weight), m.admin_state_up ? "up" : "down", badge(m.status),
        ...statCells(m)])), {class: "members"}));
}

export const loadBalancersView = listView("Load balancers", (data, idx) => (data.loadBalancers || []).length
  ? data.loadBalancers.map((lb) => balancerSection(idx, lb)) : h("p", {class: "empty"}, "no load balancers"));

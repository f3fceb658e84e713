// Topology: the switches with the links LLDP found (a link seen once and gone since shows as down), their ports
// coloured by network; below, the logical view: networks, routers, floating IPs, load balancers and members' health.

import {h, put, svg} from "./dom.js";
import {nameOf} from "./model.js";

const LOCAL_PORT = 0xfffffffe;
const SWITCH_W = 120;
const SWITCH_H = 44;
const PORT_STEP = 16;

/** A link's key from either end, the same both ways: "dpidA:portA-dpidB:portB". */
function linkKey(dpid, port, peerDpid, peerPort) {
  return [`${dpid}:${port}`, `${peerDpid}:${peerPort}`].sort().join("-");
}

/**
 * Links seen since the page opened: those in the latest GET /switches are up, the others down.
 * Returns the list of {key, ends: [[dpid, port], [dpid, port]], up}.
 */
export function trackLinks(known, switches) {
  const now = new Set();
  for (const sw of switches) {
    for (const link of sw.links || []) {
      const key = linkKey(sw.dpid, link.port, link.peer_dpid, link.peer_port);
      now.add(key);
      if (!known.has(key)) known.set(key, {key, ends: [[sw.dpid, link.port], [link.peer_dpid, link.peer_port]]});
    }
  }
  for (const link of known.values()) link.up = now.has(link.key);
  return [...known.values()];
}

function bridgeName(sw) {
  const local = (sw.ports || []).find((p) => p.ofport === LOCAL_PORT);
  return local ? local.name : sw.dpid.replace(/^0+(?=.)/, "");
}

function layout(switches) {
  const n = switches.length;
  const radius = n <= 1 ? 0 : Math.max(150, (n * (SWITCH_W + 40)) / (2 * Math.PI));
  const spots = switches.map((sw, i) => {
    const angle = -Math.PI / 2 + (2 * Math.PI * i) / Math.max(n, 1);
    return [sw.dpid, [radius * Math.cos(angle), radius * Math.sin(angle)]];
  });
  // Fit the box to the switches (and their ports below them), with a margin for labels.
  const xs = spots.map(([, [x]]) => x);
  const ys = spots.map(([, [, y]]) => y);
  const left = Math.min(0, ...xs) - SWITCH_W / 2 - 40;
  const top = Math.min(0, ...ys) - SWITCH_H / 2 - 30;
  const width = Math.max(0, ...xs) + SWITCH_W / 2 + 40 - left;
  const height = Math.max(0, ...ys) + SWITCH_H / 2 + 40 - top;
  return {width, height, at: new Map(spots.map(([dpid, [x, y]]) => [dpid, [x - left, y - top]]))};
}

function portTitle(idx, sw, port, linked) {
  const owner = idx.bound(sw.dpid, port.name);
  const state = port.up === false ? " (down)" : "";
  if (linked) return `${port.name}: link to ${linked}${state}`;
  if (!owner) return `${port.name}: not bound${state}`;
  const network = nameOf(idx.network.get(owner.network));
  if (owner.kind === "uplink") return `${port.name}: uplink of external network ${network}${state}`;
  return `${port.name}: port ${nameOf(owner.object)} ${owner.object.ip_address} on ${network}${state}`;
}

function fabric(idx, switches, links) {
  const {width, height, at} = layout(switches);
  const peerName = new Map();  // "dpid:ofport" -> "peer bridge"
  const names = new Map(switches.map((sw) => [sw.dpid, bridgeName(sw)]));
  for (const link of links.filter((l) => l.up)) {
    const [[a, pa], [b, pb]] = link.ends;
    peerName.set(`${a}:${pa}`, names.get(b) || b);
    peerName.set(`${b}:${pb}`, names.get(a) || a);
  }
  const portName = (dpid, ofport) => {
    const sw = switches.find((s) => s.dpid === dpid);
    const port = sw && (sw.ports || []).find((p) => p.ofport === ofport);
    return port ? port.name : `port ${ofport}`;
  };
  const lines = links.filter((l) => at.has(l.ends[0][0]) && at.has(l.ends[1][0])).map((link) => {
    const [[a, pa], [b, pb]] = link.ends;
    const [x1, y1] = at.get(a);
    const [x2, y2] = at.get(b);
    const state = link.up ? "up" : "down";
    return svg("g", {class: `link ${state}`, "data-link": link.key, "data-state": state},
      svg("title", {}, `${portName(a, pa)} - ${portName(b, pb)}: ${state}`),
      svg("line", {x1, y1, x2, y2}),
      link.up ? null : svg("text", {x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 6, class: "link-state"}, "down"));
  });
  const nodes = switches.map((sw) => {
    const [x, y] = at.get(sw.dpid);
    const ports = (sw.ports || []).filter((p) => p.ofport !== LOCAL_PORT).sort((p, q) => p.ofport - q.ofport);
    const start = x - ((ports.length - 1) * PORT_STEP) / 2;
    const dots = ports.map((port, i) => {
      const owner = idx.bound(sw.dpid, port.name);
      const linked = peerName.get(`${sw.dpid}:${port.ofport}`);
      const kind = linked ? "trunk" : owner ? owner.kind : "unbound";
      return svg("g", {class: `port port-${kind}${port.up === false ? " port-down" : ""}`, "data-port": port.name},
        svg("title", {}, portTitle(idx, sw, port, linked)),
        svg("circle", {cx: start + i * PORT_STEP, cy: y + SWITCH_H / 2 + 12, r: 6,
          fill: owner ? idx.colour(owner.network) : linked ? "#555" : "#fff"}));
    });
    return svg("g", {class: `switch ${sw.connected ? "connected" : "disconnected"}`, "data-dpid": sw.dpid},
      svg("title", {}, `${sw.dpid}${sw.connected ? "" : " (disconnected)"}`),
      svg("rect", {x: x - SWITCH_W / 2, y: y - SWITCH_H / 2, width: SWITCH_W, height: SWITCH_H, rx: 8}),
      svg("text", {x, y: y - 3, class: "switch-name"}, bridgeName(sw)),
      svg("text", {x, y: y + 13, class: "switch-dpid"}, sw.connected ? sw.dpid : "disconnected"),
      dots);
  });
  return svg("svg", {viewBox: `0 0 ${width} ${height}`, width, height, class: "fabric", role: "img",
    "aria-label": "switches and links"}, lines, nodes);
}

// -- the logical view ---------------------------------------------------------------------------------------------

const ROUTER_STEP = 96;
const CHIP_H = 20;
const LINE_H = 26;
const LABEL_W = 6.6;  // px per character of a chip's 11px text, near enough for layout

/** A chip: its width and a function drawing it at (x, y); `dots` follow the label (members' health). */
function chip(label, attrs, dots = []) {
  const textW = 12 + label.length * LABEL_W;
  const width = textW + dots.length * 14;
  return {width, draw: (x, y) => svg("g", attrs,
    svg("rect", {x, y, width, height: CHIP_H, rx: 4, class: "chip-box"}),
    svg("text", {x: x + 6, y: y + 14, class: "chip-text"}, label),
    dots.map((dot, i) => {
      dot.setAttribute("transform", `translate(${x + textW + i * 14 + 2}, ${y + CHIP_H / 2})`);
      return dot;
    }))};
}

function memberDot(member) {
  const status = (member.status || "unknown").toLowerCase();
  return svg("g", {class: `member member-${status}`, "data-id": member.id},
    svg("title", {}, `${member.ip_address}:${member.port} ${member.status}`), svg("circle", {r: 5}));
}

/** What sits on a network: its ports, floating IPs (on an external network) and load balancers. */
function chipsOn(idx, data, network) {
  const on = (items) => (items || []).filter((item) => item.network_id === network.id);
  return [
    ...on(data.ports).map((port) => chip(`${nameOf(port)} ${port.ip_address}`,
      {class: `chip port-chip status-${(port.status || "").toLowerCase()}`, "data-id": port.id})),
    ...on(data.floatingIps).map((fip) => {
      const port = idx.port.get(fip.port_id);
      return chip(`fip ${fip.floating_ip_address} → ${port ? nameOf(port) : "unattached"}`,
        {class: "chip fip-chip", "data-id": fip.id});
    }),
    ...on(data.loadBalancers).map((lb) => chip(`lb ${nameOf(lb)} ${lb.vip_address}:${lb.port}`,
      {class: "chip lb-chip", "data-id": lb.id}, (lb.members || []).map(memberDot))),
  ];
}

/** Networks as coloured bars, what is on each as chips (wrapped), routers as spines with a leg to each network. */
function logical(idx, data, width) {
  const routers = [...(data.routers || [])].sort((a, b) => nameOf(a).localeCompare(nameOf(b)));
  const barX = 20 + routers.length * ROUTER_STEP;
  const items = [];
  const barY = new Map();
  let y = 40;
  for (const network of idx.networks) {
    barY.set(network.id, y);
    items.push(svg("g", {class: "net-row", "data-id": network.id},
      svg("text", {x: barX, y: y - 6, class: "net-label"},
        `${nameOf(network)}  ${network.cidr}${network.external ? "  (external)" : ""}`),
      svg("rect", {x: barX, y, width: width - barX - 10, height: 8, rx: 3, fill: idx.colour(network.id)})));
    let x = barX;
    let line = y + 14;
    for (const {width: w, draw} of chipsOn(idx, data, network)) {
      if (x > barX && x + w > width - 10) {
        x = barX;
        line += LINE_H;
      }
      items.push(draw(x, line));
      x += w + 6;
    }
    y = line + LINE_H + 30;
  }
  routers.forEach((router, i) => {
    const x = 30 + i * ROUTER_STEP;
    const legs = (router.interfaces || []).map((itf) => [itf.network_id, itf.ip_address]);
    if (router.external_gateway) legs.push([router.external_gateway.network_id, router.external_gateway.ip_address]);
    const ys = legs.filter(([net]) => barY.has(net)).map(([net, ip]) => [barY.get(net) + 4, ip]);
    const low = Math.min(30, ...ys.map(([legY]) => legY));
    const high = Math.max(30, ...ys.map(([legY]) => legY));
    items.push(svg("g", {class: "router", "data-id": router.id},
      svg("title", {}, `router ${nameOf(router)}`),
      svg("line", {x1: x, y1: low, x2: x, y2: high, class: "router-spine"}),
      ys.map(([legY, ip]) => [svg("line", {x1: x, y1: legY, x2: barX, y2: legY, class: "router-leg"}),
        svg("circle", {cx: x, cy: legY, r: 5, class: "router-leg-dot"}),
        svg("text", {x: x + 8, y: legY - 4, class: "router-ip"}, ip)]),
      svg("text", {x: x - 6, y: low - 6, class: "router-name"}, `⊕ ${nameOf(router)}`)));
  });
  const height = Math.max(y - 20, 60);
  return svg("svg", {viewBox: `0 0 ${width} ${height}`, width, height, class: "logical", role: "img",
    "aria-label": "networks, routers, floating IPs and load balancers"}, items);
}

function legend(idx) {
  return h("ul", {class: "legend"},
    idx.networks.map((n) => h("li", {}, h("span", {class: "swatch", "data-colour": idx.colour(n.id)}),
      `${nameOf(n)} ${n.cidr}`)),
    h("li", {}, h("span", {class: "swatch swatch-trunk"}), "inter-switch link"),
    h("li", {}, h("span", {class: "swatch swatch-unbound"}), "not bound"));
}

export const topologyView = {
  title: "Topology",
  mount(root) {
    const summary = h("p", {class: "summary"});
    const legendBox = h("div");
    const fabricBox = h("div", {class: "diagram", id: "fabric"});
    const logicalBox = h("div", {class: "diagram", id: "logical"});
    put(root, h("div", {class: "topology"},
      h("div", {}, h("h2", {}, "Switches and links"), summary, legendBox, fabricBox),
      h("div", {}, h("h2", {}, "Networks, routers, floating IPs, load balancers"), logicalBox)));
    return {
      update(data, idx) {
        const links = data.links;
        const down = links.filter((l) => !l.up).length;
        put(summary, `${data.switches.length} switches (${data.switches.filter((s) => s.connected).length} connected), `
          + `${links.length - down} links up, ${down} down`);
        put(legendBox, legend(idx));
        put(fabricBox, fabric(idx, data.switches, links));
        put(logicalBox, logical(idx, data, 660));
      },
    };
  },
};

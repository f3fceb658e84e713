// The page: asks for the API token when the controller wants one, polls the REST API every POLL_MS, and shows
// the view the location's hash names (#/topology, #/security-groups/<id>, ...), highlighting the object named.

import * as api from "./api.js";
import {h, put} from "./dom.js";
import {indexOf} from "./model.js";
import {
  floatingIpsView, loadBalancersView, networksView, portsView, routersView, securityGroupsView,
} from "./policy.js";
import {topologyView, trackLinks} from "./topology.js";
import {traceView} from "./trace.js";

const POLL_MS = 1500;

const VIEWS = {
  topology: topologyView,
  networks: networksView,
  ports: portsView,
  "security-groups": securityGroupsView,
  routers: routersView,
  "floating-ips": floatingIpsView,
  "load-balancers": loadBalancersView,
  trace: traceView,
};

const LISTS = {
  switches: "/switches", networks: "/networks", ports: "/ports", groups: "/security-groups", routers: "/routers",
  floatingIps: "/floating-ips", loadBalancers: "/load-balancers",
};

const features = {trace: false};
const knownLinks = new Map();
let data = null;
let current = {name: null, view: null, focus: null, scrolled: null};
let timer = null;
let polling = false;

const main = document.getElementById("view");
const status = document.getElementById("status");
const tokenDialog = document.getElementById("token-dialog");

function route() {
  const [, name = "topology", focus = null] = /^#\/([\w-]+)(?:\/(.+))?/.exec(location.hash) || [];
  return {name: VIEWS[name] ? name : "topology", focus: focus && decodeURIComponent(focus)};
}

function show() {
  const {name, focus} = route();
  if (name !== current.name) {
    current = {name, view: VIEWS[name].mount(main, refresh, features), focus, scrolled: null};
    document.title = `${VIEWS[name].title} · ovs-sdn`;
    for (const link of document.querySelectorAll("nav a")) {
      link.classList.toggle("active", link.getAttribute("href") === `#/${name}`);
    }
  }
  current.focus = focus;
  render();
}

function render() {
  if (!data || !current.view) return;
  current.view.update(data, indexOf(data));
  for (const swatch of main.querySelectorAll("[data-colour]")) swatch.style.background = swatch.dataset.colour;
  if (current.focus) {
    const target = [...main.querySelectorAll("[data-id]")].find((el) => el.dataset.id === current.focus);
    if (target) {
      target.classList.add("focused");
      if (current.scrolled !== current.focus) target.scrollIntoView({block: "center"});  // once: then the user scrolls
      current.scrolled = current.focus;
    }
  }
}

async function poll() {
  polling = true;
  clearTimeout(timer);
  try {
    const names = Object.keys(LISTS);
    const lists = await Promise.all(names.map((n) => api.get(LISTS[n])));
    data = Object.fromEntries(names.map((n, i) => [n, lists[i] || []]));
    data.links = trackLinks(knownLinks, data.switches);
    const connected = data.switches.filter((s) => s.connected).length;
    put(status, h("span", {class: "ok"}, `${connected} switch${connected === 1 ? "" : "es"} connected`),
      ` · updated ${new Date().toLocaleTimeString()}`);
    render();
    timer = setTimeout(poll, POLL_MS);
  } catch (exc) {
    if (exc.error && exc.error.code === 401) return;  // the token dialog is up; it restarts polling
    put(status, h("span", {class: "bad"}, `not updated: ${exc.message}`));
    timer = setTimeout(poll, POLL_MS);
  } finally {
    polling = false;
  }
}

/** Poll now (after a change made from the page), unless a poll is under way. */
function refresh() {
  if (!polling) poll();
}

function askToken(error) {
  clearTimeout(timer);
  api.setToken(null);
  put(document.getElementById("token-error"), error ? error.message : "");
  tokenDialog.hidden = false;
  const field = document.getElementById("token");
  field.value = "";
  field.focus();
}

async function start() {
  try {
    const doc = await api.get("/openapi.json");
    features.trace = Boolean(doc && doc.paths && doc.paths["/trace"] && doc.paths["/trace"].post);
  } catch (exc) {
    if (exc.error && exc.error.code === 401) return;
  }
  show();
  poll();
}

tokenDialog.addEventListener("submit", (event) => {
  event.preventDefault();
  api.setToken(document.getElementById("token").value.trim());
  tokenDialog.hidden = true;
  start();
});

api.whenUnauthorized(askToken);
window.addEventListener("hashchange", show);

api.get("/health").then((health) => {
  document.getElementById("version").textContent = `controller ${health.version}`;
  if (health.token_required && !api.token()) askToken(null);
  else start();
}).catch((exc) => put(status, h("span", {class: "bad"}, `controller not answering: ${exc.message}`)));

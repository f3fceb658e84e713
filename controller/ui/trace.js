// "Why can't A reach B?": a packet from a port to an address, traced by POST /v1/trace through the switches'
// tables; the page shows each stage, the verdict, the object that decided, and the security groups in play.

import * as api from "./api.js";
import {apiErrorNode, badge, h, put, syncOptions, table, text} from "./dom.js";
import {groupLink, nameOf, objectLink, ownerRefs, portLink} from "./model.js";

const NOT_AVAILABLE = "not available: this controller does not serve POST /v1/trace";

/** The stage that decided the packet's fate: one the API marks, else the last (where a drop happens). */
function decidingStage(stages) {
  const marked = stages.findIndex((s) => s.deciding || s.decisive);
  return marked >= 0 ? marked : stages.length - 1;
}

function groupsOf(idx, port) {
  if (port.port_security_enabled === false) return "port security off: no groups apply";
  if (!port.security_group_ids.length) return "no groups: nothing in or out";
  return port.security_group_ids.map((g, i) => [i ? ", " : "", groupLink(idx, g)]);
}

/** Where a copy of the packet left: the port (linked), an external network's uplink, or a switch interface. */
function reached(idx, out) {
  if (!out || typeof out !== "object") return text(out);
  const where = `${out.dpid ?? ""}/${out.interface ?? out.ofport ?? ""}`;
  if (out.port && out.port.id) return [portLink(idx, out.port.id), ` (${where})`];
  if (out.uplink_of) return `the uplink of ${nameOf(idx.network.get(out.uplink_of.id) || out.uplink_of)} (${where})`;
  return where;
}

/** The owner's objects as links; the pipeline's own flows by name ("security_groups pipeline"). */
function ownerLinks(idx, owner) {
  const refs = ownerRefs(idx, owner);
  if (!refs.length) return owner && typeof owner === "object" ? owner.name || text(owner) : text(owner);
  return refs.map((ref, i) => [i ? ", " : "", objectLink(ref.page, ref.id, ref.label)]);
}

function result(idx, source, destination, answer) {
  const stages = answer.stages || [];
  const decider = decidingStage(stages);
  const rows = stages.map((stage, i) => h("tr", {class: i === decider ? "deciding" : "", "data-stage": i},
    h("td", {}, String(i + 1)), h("td", {}, text(stage.dpid ?? stage.switch ?? "")),
    h("td", {class: "stage-table"}, text(stage.table)),
    h("td", {class: "stage-flow"}, stage.priority === undefined ? "" : `priority ${stage.priority} `,
      text(stage.flow ?? stage.match)),
    h("td", {class: "stage-owner"}, ownerLinks(idx, stage.owner)),
    h("td", {class: "stage-actions"}, Array.isArray(stage.actions) && !stage.actions.length ? "drop" : text(stage.actions)),
    h("td", {}, i === decider ? "decided here" : "")));
  const verdict = String(answer.verdict || "unknown");
  const last = stages[decider];
  // A table's own default (priority 0, the pipeline's) decided: no object's flow matched there.
  const byDefault = last && last.priority === 0 && !ownerRefs(idx, last.owner).length;
  const decidedBy = !last ? "" : byDefault
    ? `, decided by the default of table ${text(last.table)} (no object's flow matched there)`
    : [", decided by ", ownerLinks(idx, last.owner)];
  return h("div", {class: "trace-result", "data-verdict": verdict},
    h("p", {class: "verdict"}, "verdict: ", badge(verdict),
      (answer.output || []).length ? [" to ", answer.output.map((o, i) => [i ? ", " : "", reached(idx, o)])] : "",
      decidedBy),
    table(["#", "switch", "table", "matched flow", "owner", "actions", ""], rows, {class: "stages"}),
    h("h4", {}, "Security groups in play"),
    h("ul", {class: "groups-in-play"},
      h("li", {}, "source ", portLink(idx, source.id), ": ", groupsOf(idx, source)),
      destination ? h("li", {}, "destination ", portLink(idx, destination.id), ": ", groupsOf(idx, destination))
        : h("li", {}, "destination: no port holds that address")));
}

export const traceView = {
  title: "Why can't A reach B?",
  mount(root, _refresh, features) {
    const source = h("select", {name: "port_id", "aria-label": "source port"});
    const destination = h("input", {name: "ip_dst", size: 16, placeholder: "10.0.0.3", required: true});
    const protocol = h("select", {name: "protocol"}, ["tcp", "udp", "icmp", ""].map((p) =>
      h("option", {value: p}, p || "any")));
    const port = h("input", {name: "tp_dst", size: 6, placeholder: "22", inputmode: "numeric"});
    const submit = h("button", {type: "submit"}, "Trace");
    const note = h("p", {class: "muted", id: "trace-availability"});
    const outcome = h("div", {id: "trace-outcome"});
    const form = h("form", {class: "trace-form", id: "trace"},
      h("label", {}, "from port ", source), h("label", {}, "to address ", destination),
      h("label", {}, "protocol ", protocol), h("label", {}, "port ", port), submit);
    let idx = null;
    let ports = [];
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const from = ports.find((p) => p.id === source.value);
      if (!from) return;
      const body = {port_id: from.id, ip_dst: destination.value.trim()};
      if (protocol.value) body.protocol = protocol.value;
      if (port.value.trim() && protocol.value !== "icmp") {
        body.tp_dst = /^\d+$/.test(port.value.trim()) ? Number(port.value) : port.value;
      }
      submit.disabled = true;
      try {
        const answer = await api.post("/trace", body);
        const to = ports.find((p) => p.network_id === from.network_id && p.ip_address === body.ip_dst)
          || ports.find((p) => p.ip_address === body.ip_dst);
        put(outcome, result(idx, from, to, answer));
      } catch (exc) {
        const unserved = exc.error.code === 404 && exc.error.message.startsWith("Not Found: POST /v1/trace");
        put(outcome, unserved ? h("p", {class: "muted"}, NOT_AVAILABLE) : apiErrorNode(exc.error));
      } finally {
        submit.disabled = !features.trace;
      }
    });
    put(root, h("h2", {}, "Why can't A reach B?"), note, form, outcome);
    return {update(data, index) {
      idx = index;
      ports = [...(data.ports || [])].sort((a, b) => nameOf(a).localeCompare(nameOf(b)));
      put(note, features.trace ? "Traces a new connection from the port through the switches' tables."
        : NOT_AVAILABLE);
      submit.disabled = !features.trace;
      const want = ports.map((p) => [p.id, `${nameOf(p)} ${p.ip_address} (${nameOf(index.network.get(p.network_id))})`]);
      syncOptions(source, want);
    }};
  },
};

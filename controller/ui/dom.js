// Building the page from API data: elements are made with text nodes only, never from HTML strings,
// so a name a tenant chose ("<img onerror=...>") shows as the text it is.

const SVG_NS = "http://www.w3.org/2000/svg";

function fill(el, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** An HTML element: h("td", {class: "x"}, "text", otherNode). */
export function h(tag, attrs, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

/** An SVG element, the same way. */
export function svg(tag, attrs, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** Replace an element's children. */
export function put(el, ...children) {
  el.replaceChildren();
  return fill(el, {}, children);
}

export function shortId(id) {
  return id ? String(id).slice(0, 8) : "";
}

export function count(n) {
  return typeof n === "number" ? n.toLocaleString("en-US") : String(n);
}

/** A value of unknown shape (a trace's matched flow, actions, outputs) as one line of text. */
export function text(value) {
  if (value === undefined || value === null) return "";
  if (Array.isArray(value)) return value.map(text).join(", ");
  if (typeof value === "object") {
    return Object.entries(value).map(([k, v]) => `${k}=${typeof v === "object" && v !== null ? `{${text(v)}}` : v}`)
      .join(" ");
  }
  return String(value);
}

/** A table row of cells, each a node, a string, or [attrs, ...children]; `id` (an object's) goes in data-id. */
export function row(id, cells) {
  return h("tr", {"data-id": id}, cells.map((c) => (Array.isArray(c) ? h("td", c[0], ...c.slice(1)) : h("td", {}, c))));
}

/** A table: header names and rows (made by row(), or arrays of cells). */
export function table(headers, rows, attrs = {}) {
  return h("table", attrs,
    h("thead", {}, h("tr", {}, headers.map((name) => h("th", {}, name)))),
    h("tbody", {}, rows.length ? rows.map((r) => (r instanceof Node ? r : row(null, r)))
      : h("tr", {}, h("td", {colspan: headers.length, class: "empty"}, "none"))));
}

/** A status word as a coloured badge (ACTIVE, DOWN, ONLINE, OFFLINE, ...). */
export function badge(word) {
  return h("span", {class: `badge badge-${String(word).toLowerCase()}`}, word);
}

/** The API's error as it words it: message, then each detail (field: message). */
export function apiErrorNode(error) {
  const details = (error.details || []).map((d) =>
    h("li", {}, d && d.field ? `${d.field}: ${d.message ?? text(d)}` : text(d)));
  return h("div", {class: "api-error", role: "alert"},
    h("span", {class: "api-error-code"}, `${error.code}`), " ", h("span", {class: "api-error-message"}, error.message),
    details.length ? h("ul", {}, details) : null);
}

/** Give a <select> these [value, label] options, keeping the user's choice; untouched while they are the same. */
export function syncOptions(select, want) {
  const have = [...select.options].map((o) => [o.value, o.textContent]);
  if (JSON.stringify(want) === JSON.stringify(have)) return;
  const chosen = select.value;
  put(select, want.map(([value, label]) => h("option", {value}, label)));
  if (want.some(([value]) => value === chosen)) select.value = chosen;
}

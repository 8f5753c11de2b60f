// Small helpers shared by the studio's scripts: building elements, calling the API, formatting.

/** An element with attributes, event handlers (onclick: fn) and children (strings are text, never HTML). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value == null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export const $ = (selector, root = document) => root.querySelector(selector);

/** The connection to the server, as the event stream last found it (live.js keeps it). */
export const conn = { offline: false };

/** Call the studio's API; resolves to the JSON answer or throws an Error carrying the server's one-line reason
 * (and, for a refused form, `errors`: each mistake by the field it concerns). */
export async function api(path, { method = "GET", json, body, headers = {} } = {}) {
  const options = { method, headers: { ...headers }, credentials: "same-origin" };
  if (json !== undefined) {
    options.body = JSON.stringify(json);
    options.headers["Content-Type"] = "application/json";
  } else if (body !== undefined) {
    options.body = body;
  }
  let response;
  try {
    response = await fetch(path, options);
  } catch (err) {
    throw new Error("the studio is not answering (is `stylelab serve` still running?)");
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    let detail = data && data.detail;
    if (Array.isArray(detail)) detail = detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
    const error = new Error(detail || `${response.status} ${response.statusText}`);
    error.errors = (data && data.errors) || null;
    throw error;
  }
  return data;
}

/** A URL path segment for a run key, keeping its slashes. */
export const keyPath = (key) => key.split("/").map(encodeURIComponent).join("/");

export function fmtNum(value) {
  if (value == null || Number.isNaN(value)) return "–";
  if (value === 0) return "0";
  const abs = Math.abs(value);
  if (abs >= 1e4 || abs < 1e-3) return value.toExponential(2);
  return Number(value.toPrecision(3)).toString();
}

export function fmtSeconds(s) {
  if (s == null || !Number.isFinite(s)) return "–";
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(Math.round(s % 60)).padStart(2, "0")} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} min`;
}

export function fmtDate(epoch) {
  if (!epoch) return "";
  return new Date(epoch * 1000).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/** A label's two parts: what was painted, and what sets the run apart (labels.py joins them with " · "). */
export function labelParts(label) {
  const at = (label || "").indexOf(" · ");
  return at < 0 ? [label || "", ""] : [label.slice(0, at), label.slice(at + 3)];
}

/** A label as elements: what was painted, then what sets the run apart, set off. */
export function labelNodes(label) {
  const [what, differs] = labelParts(label);
  return differs ? [what, " · ", h("span", { class: "label-differs" }, differs)] : [what];
}

export const badge = (state) => h("span", { class: `badge state-${state}` }, state);

let toastTimer = null;
/** A short message at the bottom of the page, read out by screen readers. */
export function toast(message, kind = "info") {
  const box = $("#toast");
  box.textContent = message;
  box.className = `toast show ${kind}`;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (box.className = "toast"), kind === "error" ? 7000 : 3500);
}

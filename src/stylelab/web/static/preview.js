// The instant preview: the fast engine's picture of the form's images (POST /api/preview), shown as soon
// as a content and a style are there and painted again as weights, strength, colour or size change,
// before any optimisation. Only the latest picture counts: changes are gathered for a moment, a request
// still on its way when a newer one starts is aborted, and an older answer arriving late is dropped.
// Refine queues the form's job starting from the fast picture (settings.init = "fast").
import { $, conn } from "./dom.js";

const DEBOUNCE_MS = 200;
const state = {
  info: null,
  inputs: () => ({}),
  timer: null,
  asked: 0, // the number of the latest request
  controller: null,
  url: null, // the object URL of the picture shown
  client: `page-${Math.random().toString(36).slice(2, 10)}`, // the server paints only this page's latest
};

const status = (text, kind = "") => {
  const box = $("#preview-status");
  box.textContent = text;
  box.className = `preview-status ${kind}`.trim();
};

/** The request for the form's inputs, or the reason there is none yet. */
function request() {
  const f = state.inputs();
  if (!f.content || !f.styles.length) return { why: "Add a content and a style image: the preview shows here at once." };
  if (f.content.kind === "video") return { why: "The instant preview paints still images; a video's frames are painted by the run." };
  const settings = {};
  if (f.size != null && Number.isInteger(f.size)) settings.size = Math.min(f.size, state.info.preview.max);
  if (f.strength != null) settings.strength = f.strength;
  if (f.preserve_color) settings.preserve_color = f.preserve_color;
  const body = { content: f.content.id, styles: f.styles.map((s) => s.upload.id), settings, client: state.client };
  if (f.labels) body.labels = f.labels.id;
  else if (f.styles.some((s) => s.mask)) body.masks = f.styles.map((s) => (s.mask ? s.mask.id : null));
  else if (f.styles.length > 1) {
    if (f.weights.some((w) => w == null)) return { why: "Give every style a blend weight (a number) to see the blend." };
    body.weights = f.weights;
  }
  if (f.styles.some((s) => s.part)) body.image_masks = f.styles.map((s) => (s.part ? s.part.id : null));
  return { body };
}

/** Refine needs the fast model, a still content, and whole paintings (style-image masks are the optimiser's alone). */
export function refreshPreview() {
  const f = state.inputs();
  const button = $("#refine");
  let why = "";
  if (!state.info.fast_available) why = state.info.fast_reason;
  else if (!f.content || !f.styles.length) why = "add a content and a style image first";
  else if (f.content.kind === "video") why = "a video's frames start from the frame before";
  else if (f.styles.some((s) => s.part)) why = "the fast start reads each whole painting: remove the style-image masks to refine";
  button.disabled = conn.offline || !!why;
  button.title = why || "Start the optimiser from this picture (start from: fast), with the settings above";
}

async function paint() {
  let { body, why } = request();
  refreshPreview();
  const img = $("#preview-img");
  if (!state.info.fast_available) [body, why] = [null, state.info.fast_reason];
  if (!body) {
    state.controller?.abort();
    state.asked += 1; // whatever is on its way is stale now
    img.hidden = true;
    $("#preview-note").textContent = "";
    status(why, state.info.fast_available ? "" : "error");
    return;
  }
  const asked = ++state.asked;
  state.controller?.abort();
  state.controller = new AbortController();
  $("#preview-box").classList.add("painting");
  status(img.hidden ? "painting the preview…" : "");
  let response, picture;
  try {
    response = await fetch("/api/preview", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "same-origin",
      signal: state.controller.signal,
    });
    picture = response.ok ? await response.blob() : null;
  } catch (err) {
    if (err.name === "AbortError" || asked !== state.asked) return;
    status("the studio is not answering (is `stylelab serve` still running?)", "error");
    $("#preview-box").classList.remove("painting");
    return;
  }
  if (asked !== state.asked) return; // a newer request is on its way: this answer is stale
  $("#preview-box").classList.remove("painting");
  if (response.status === 409) return; // superseded on the server by a newer one of this page
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`;
    try {
      detail = (await response.json()).detail || detail;
    } catch {
      /* not JSON: keep the status line */
    }
    if (response.status === 503) Object.assign(state.info, { fast_available: false, fast_reason: detail });
    img.hidden = true;
    status(detail, "error");
    refreshPreview();
    return;
  }
  if (state.url) URL.revokeObjectURL(state.url);
  state.url = URL.createObjectURL(picture);
  img.src = state.url;
  img.hidden = false;
  img.dataset.asked = String(asked);
  img.dataset.strength = body.settings.strength == null ? "" : String(body.settings.strength);
  const seconds = Number(response.headers.get("X-Elapsed"));
  img.onload = () => status(`${img.naturalWidth}×${img.naturalHeight} in ${seconds < 1 ? `${Math.round(seconds * 1000)} ms` : `${seconds.toFixed(1)} s`}`);
  const regions = body.masks || body.labels ? "Regions: each style is painted over the whole photo and the pictures composited by the masks (the run matches each region's own statistics)." : "";
  $("#preview-note").textContent = [regions, response.headers.get("X-Preview-Note") || ""].filter(Boolean).join(" ");
}

/** The slider shows the strength setting (a preset or "run again" may have filled it). */
function syncStrength() {
  const slider = $("#preview-strength");
  const field = $("#f-strength");
  const v = field ? Number(field.value) : NaN;
  if (field && field.value.trim() !== "" && Number.isFinite(v) && v >= 0 && v <= 1) slider.value = String(v);
  $("#preview-strength-value").textContent = Number(slider.value).toFixed(2);
}

/** Paint the preview again shortly: a burst of changes (a slider dragged) makes one request. */
export function schedulePreview() {
  if (!state.info) return;
  syncStrength();
  clearTimeout(state.timer);
  state.timer = setTimeout(paint, DEBOUNCE_MS);
}

export function setupPreview(info, { inputs, onRefine }) {
  state.info = info;
  state.inputs = inputs;
  const slider = $("#preview-strength");
  const field = $("#f-strength");
  // The slider and the strength setting are one value: each moves the other.
  slider.addEventListener("input", () => {
    if (field) field.value = slider.value;
    schedulePreview();
  });
  for (const name of ["size", "preserve_color", "strength"]) {
    const control = $(`#f-${name}`);
    if (control) control.addEventListener(control.tagName === "SELECT" ? "change" : "input", schedulePreview);
  }
  $("#refine").addEventListener("click", () => {
    refreshPreview(); // coming back online enables every button that needs the server: this one has its own needs
    if (!$("#refine").disabled) onRefine();
  });
  schedulePreview();
}

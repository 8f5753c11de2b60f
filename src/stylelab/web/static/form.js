// The "New run" form: images (drop or pick; each style with a blend weight and an optional region mask),
// a recipe, its settings (generated from the Recipe's fields, which the server describes in /api/info),
// and the start button. The server checks a request whole: its mistakes come back all at once, each
// tied to the field it concerns, and are shown there. A video as the content makes a video job: the
// video fields (frame steps, temporal weight, the piece to paint) show, and go with the request.
import { $, api, conn, h, keyPath, toast } from "./dom.js";
import { clearError, clearErrors, showErrors } from "./form_errors.js";
import { drawMaskPreview, drawParts } from "./masks.js";
import { seriesColour } from "./plot.js";
import { refreshPreview, schedulePreview, setupPreview } from "./preview.js";
import { labelsControl, styleControls } from "./region_controls.js";

const form = {
  info: null,
  content: null, // {id, name, url, width, height, kind: "image" | "video" (frames, fps, duration)}
  styles: [], // [{upload: {...}, weight, mask: {...} | null, part: {...} | null (its style-image mask)}]
  labels: null, // a colour-label image: a flat colour per style (instead of a mask per style)
  start: null,
  onQueued: () => {},
};

const human = (name) => (name === "init" ? "start from" : name.replaceAll("_", " "));

function fieldControl(field) {
  const id = `f-${field.name}`;
  const hintId = `${id}-hint`;
  let control;
  if (field.choices) {
    const choices = field.name === "init" ? [...field.choices, "image"] : field.choices;
    control = h(
      "select",
      { id, name: field.name, "aria-describedby": hintId },
      choices.map((c) => h("option", { value: c }, c === "image" ? "an image (upload)" : c)),
    );
  } else if (field.type.startsWith("int") || field.type.startsWith("float")) {
    const isInt = field.type.startsWith("int");
    control = h("input", {
      id,
      name: field.name,
      type: "number",
      step: isInt ? "1" : "any",
      min: "0",
      max: field.max == null ? null : String(field.max), // the studio's bound; the server says why it refuses more
      inputmode: isInt ? "numeric" : "decimal",
      placeholder: field.type.includes("None") ? "default" : "",
      "aria-describedby": hintId,
    });
  } else {
    control = h("input", {
      id,
      name: field.name,
      type: "text",
      placeholder: field.type.includes("None") ? "default" : "",
      "aria-describedby": hintId,
      spellcheck: "false",
    });
  }
  return h(
    "div",
    { class: `field field-${field.name}` },
    h("label", { for: id }, human(field.name)),
    control,
    h("small", { id: hintId, class: "hint" }, field.help),
  );
}

function setValue(name, value) {
  const input = $(`#f-${name}`);
  if (!input) return;
  if (value == null) input.value = "";
  else if (Array.isArray(value)) input.value = value.join(" ");
  else input.value = String(value);
}

/** Fill the settings from a recipe's values. Presets without snapshots get some, so the run can be watched. */
export function fillSettings(values, { fromPreset = false } = {}) {
  for (const field of form.info.fields) setValue(field.name, values[field.name]);
  // No temporal term (a still's recipe): left empty, so that a video gets the measured default.
  if (!values.temporal_weight) setValue("temporal_weight", null);
  if (fromPreset && !values.save_every) setValue("save_every", Math.max(1, Math.round((values.steps || 100) / 20)));
  if (values.init && !form.info.fields.find((f) => f.name === "init").choices.includes(values.init)) setValue("init", "image");
  showStartZone();
  schedulePreview();
}

function showStartZone() {
  $("#start-zone").hidden = $("#f-init").value !== "image";
}

function selectRecipe(name, { fill = true } = {}) {
  const preset = form.info.recipes.find((r) => r.name === name) || form.info.recipes[0];
  $("#recipe").value = preset.name;
  $("#recipe-desc").textContent = preset.description ? `${preset.description} (${preset.settings})` : preset.settings;
  if (fill) fillSettings(preset.values, { fromPreset: true });
}

// ---------------------------------------------------------------- images

function thumb(upload, role, index) {
  const remove = () => {
    if (role === "content") form.content = null;
    else if (role === "start") form.start = null;
    else form.styles.splice(index, 1);
    renderImages();
  };
  const isVideo = upload.kind === "video";
  const dims = [upload.width ? `${upload.width}×${upload.height}` : "", isVideo ? clipText(upload) : ""].filter(Boolean).join(" · ");
  const picture = isVideo
    ? h("video", { src: upload.preview || upload.url, muted: true, playsInline: true, preload: "metadata", class: "thumb-video", "aria-label": `video ${upload.name}` })
    : h("img", { src: upload.preview || upload.url, alt: "", loading: "lazy" });
  const parts = [
    role === "style" ? h("span", { class: "swatch", style: `background:${seriesColour(index)}` }) : "",
    picture,
    h("span", { class: "thumb-name", title: upload.name }, upload.name, h("small", {}, dims)),
  ];
  if (role === "style") {
    const style = form.styles[index];
    const weightId = `style-weight-${index}`;
    parts.push(
      h(
        "span",
        { class: "weight" },
        h("label", { for: weightId }, "weight"),
        h("input", {
          id: weightId,
          type: "number",
          min: "0",
          step: "0.1",
          value: String(style.weight),
          "aria-describedby": `err-blend-${index}`,
          oninput: (e) => {
            style.weight = e.target.value;
            clearError(`blend.${index}`);
            schedulePreview();
          },
        }),
      ),
      h("span", { class: "extras" }, styleControls(style, index, { upload: uploadFile, rerender: renderImages, masks: !form.labels })),
    );
  }
  parts.push(h("button", { type: "button", class: "icon", onclick: remove, "aria-label": `Remove ${upload.name}` }, "✕"));
  const errors = role === "style" ? ["style", "blend", "mask", "part"].map((k) => h("p", { class: "field-error", id: `err-${k}-${index}` })) : [];
  return h("li", { class: "thumb", dataset: { index: String(index) } }, h("div", { class: "thumb-row" }, parts), errors);
}

const clipText = (clip) => `${clip.frames} frames at ${clip.fps} fps (${clip.duration} s)`;
const isVideo = (file) => (file.type || "").startsWith("video/") || /\.(mp4|mov|mkv|webm)$/i.test(file.name);

function renderImages() {
  $("#content-list").replaceChildren(...(form.content ? [thumb(form.content, "content", 0)] : []));
  $("#style-list").replaceChildren(...form.styles.map((s, i) => thumb(s.upload, "style", i)));
  $("#start-list").replaceChildren(...(form.start ? [thumb(form.start, "start", 0)] : []));
  $("#content-drop").classList.toggle("filled", !!form.content);
  $("#style-drop").classList.toggle("filled", form.styles.length > 0);
  const video = form.content && form.content.kind === "video";
  $("#video-box").hidden = !video;
  $("#video-about").textContent = video ? `${form.content.name}: ${clipText(form.content)}` : "";
  $("#f-max_frames").max = String(form.info.video.max_frames);
  labelsControl(form, { upload, rerender: renderImages });
  drawMaskPreview(video ? null : form.content, form.styles, form.labels);
  drawParts(form.styles);
  schedulePreview();
}

const uploadFile = (file) => upload(file); // for where ``upload`` names an upload's description (thumb)

async function upload(file) {
  const mb = isVideo(file) ? form.info.max_video_mb : form.info.max_upload_mb;
  if (file.size > mb * 1e6) throw new Error(`${file.name} is larger than ${mb} MB (the studio's limit for ${isVideo(file) ? "videos" : "images"})`);
  const meta = await api(`/api/uploads?name=${encodeURIComponent(file.name)}`, {
    method: "POST",
    body: file,
    headers: { "Content-Type": file.type || "application/octet-stream" },
  });
  return { ...meta, preview: URL.createObjectURL(file) };
}

async function addFiles(role, files) {
  const status = $(`#${role}-status`);
  status.textContent = "";
  for (const file of files) {
    status.textContent = `uploading ${file.name}…`;
    try {
      const meta = await upload(file);
      if (role === "content") form.content = meta;
      else if (role === "start") form.start = meta;
      else form.styles.push({ upload: meta, weight: 1, mask: null, part: null });
      status.textContent = "";
    } catch (err) {
      status.textContent = err.message;
      status.classList.add("error");
      return;
    }
    if (role !== "style") break;
  }
  status.classList.remove("error");
  renderImages();
}

function setupDrop(role) {
  const zone = $(`#${role}-drop`);
  const input = $(`#${role}-file`);
  input.addEventListener("change", () => {
    addFiles(role, [...input.files]).finally(() => (input.value = ""));
  });
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    addFiles(role, [...e.dataTransfer.files]);
  });
}

// ---------------------------------------------------------------- submit

/** What the instant preview paints (preview.js): the form's images and the settings the fast engine reads. */
function previewInputs() {
  const value = (name) => ($(`#f-${name}`) ? $(`#f-${name}`).value.trim() : "");
  const number = (w) => (String(w).trim() === "" || !Number.isFinite(Number(w)) ? null : Number(w));
  return {
    content: form.content,
    styles: form.styles,
    labels: form.labels,
    weights: form.styles.map((s) => number(s.weight)),
    size: number(value("size")),
    strength: number(value("strength")),
    preserve_color: value("preserve_color") || null,
  };
}

function collect() {
  const settings = {};
  for (const field of form.info.fields) {
    const value = $(`#f-${field.name}`).value.trim();
    if (value !== "") settings[field.name] = value;
  }
  const weight = (w) => (String(w).trim() === "" || !Number.isFinite(Number(w)) ? null : Number(w));
  const body = {
    recipe: $("#recipe").value,
    settings, // init "image": the start image below (the server says if there is none)
    content: form.content ? form.content.id : "",
    styles: form.styles.map((s) => ({
      upload: s.upload.id,
      weight: weight(s.weight),
      mask: s.mask ? s.mask.id : null,
      image_mask: s.part ? s.part.id : null,
    })),
    labels: form.labels ? form.labels.id : null,
    start: settings.init === "image" && form.start ? form.start.id : null,
  };
  if (form.content && form.content.kind === "video") {
    const number = (id) => weight($(`#f-${id}`).value);
    body.video = { frame_steps: number("frame_steps"), start: number("clip_start"), end: number("clip_end"), max_frames: number("max_frames") };
  }
  return body;
}

/** The video fields from a video run's recorded settings (video.json: frame steps, the selection). */
function fillVideo(settings) {
  const selection = settings.selection || {};
  for (const [id, value] of [["frame_steps", settings.frame_steps], ["clip_start", selection.start], ["clip_end", selection.end], ["max_frames", selection.max_frames]]) {
    $(`#f-${id}`).value = value == null ? "" : String(value);
  }
  setValue("temporal_weight", (settings.recipe || {}).temporal_weight);
}

/** Queue the form's job; ``refine``: started from the fast engine's picture (the preview's Refine). */
async function send({ refine = false } = {}) {
  clearErrors();
  const button = refine ? $("#refine") : $("#start");
  button.disabled = true;
  const body = collect();
  if (refine) {
    body.settings.init = "fast";
    body.start = null;
  }
  try {
    const job = await api("/api/jobs", { method: "POST", json: body });
    toast(refine ? `Refining: ${job.label}` : `Queued: ${job.label}`);
    form.onQueued(job);
  } catch (err) {
    showErrors(err.errors || { form: err.message });
  } finally {
    button.disabled = conn.offline;
    refreshPreview();
  }
}

function submit(event) {
  event.preventDefault();
  send();
}

/** Prefill the form from a finished run: its recipe and, where the run kept them, its inputs and masks. */
export async function runAgain(run) {
  const presets = form.info.recipes.map((r) => r.name);
  selectRecipe(presets.includes(run.recipe) ? run.recipe : "default", { fill: false });
  fillSettings(run.recipe_values);
  clearErrors();
  form.content = null;
  form.styles = [];
  form.start = null;
  form.labels = null;
  if (run.inputs.length) {
    const { inputs } = await api(`/api/reuse/${keyPath(run.key)}`, { method: "POST" });
    const task = (run.info && run.info.task) || {};
    const weights = (task.styles && task.styles.length === 1 && task.styles[0].weights) || run.recipe_values.style_weights || [];
    const numbered = [];
    for (const item of inputs) {
      if (item.role === "content") form.content = item;
      else if (item.role === "start") form.start = item;
      else if (item.role === "labels") form.labels = item;
      else if (item.role === "mask" || item.role === "style_mask") numbered.push(item);
      else form.styles.push({ upload: item, weight: weights[form.styles.length] ?? 1, mask: null, part: null });
    }
    for (const item of numbered) {
      const style = form.styles[item.number - 1];
      if (style) style[item.role === "mask" ? "mask" : "part"] = item;
    }
    if (form.start) setValue("init", "image");
    if (run.kind === "video") fillVideo((run.info && run.info.settings) || {});
  } else {
    toast("This run did not keep its input images: add them again", "info");
  }
  renderImages();
  showStartZone();
}

export function setupForm(info, { onQueued }) {
  form.info = info;
  form.onQueued = onQueued;
  $("#recipe").replaceChildren(...info.recipes.map((r) => h("option", { value: r.name }, r.name)));
  $("#recipe").addEventListener("change", (e) => selectRecipe(e.target.value));
  const main = info.fields.filter((f) => f.main);
  const more = info.fields.filter((f) => !f.main);
  $("#main-fields").replaceChildren(...main.map(fieldControl));
  $("#more-fields").replaceChildren(...more.map(fieldControl));
  const temporal = $(".field-temporal_weight"); // a video's setting: shown with the other video fields
  if (temporal) {
    $("#video-fields .field-frame_steps").after(temporal);
    $("#f-temporal_weight").placeholder = `${info.video.temporal_weight} (video)`;
  }
  $("#f-init").addEventListener("change", showStartZone);
  $("#job-form").addEventListener("input", (e) => e.target.id.startsWith("f-") && clearError(e.target.id.slice(2)));
  $("#upload-limit").textContent = `images up to ${info.max_upload_mb} MB each, videos up to ${info.max_video_mb} MB and ${info.video.max_frames} frames`;
  for (const role of ["content", "style", "start"]) setupDrop(role);
  $("#job-form").addEventListener("submit", submit);
  setupPreview(info, { inputs: previewInputs, onRefine: () => send({ refine: true }) });
  selectRecipe(info.recipes.some((r) => r.name === "default") ? "default" : info.recipes[0].name);
  renderImages();
}

// A video run's page: the video (an HTML <video> served from the runs folder), its strip of frames,
// the losses of each frame, its settings and downloads. A video still being painted shows its newest
// frame and is looked at every second until it ends, then shows the video.
import { $, api, badge, fmtDate, fmtNum, fmtSeconds, h, keyPath } from "./dom.js";
import { drawLosses, keepDrawn, metricRows, termSeries } from "./plot.js";

const FOLLOW_EVERY = 1000; // ms between looks at a video being painted
let timer = null;

/** A video run's line on its gallery card: frames, size, time. */
export function videoMeta(run) {
  const size = run.painted_size ? `${run.painted_size[0]}×${run.painted_size[1]}` : run.size && `${run.size}px`;
  const frames = run.frames_done === run.frames_total ? `${run.frames_total} frames` : `${run.frames_done} of ${run.frames_total} frames`;
  return [run.recipe, size, frames, run.elapsed && fmtSeconds(run.elapsed)].filter(Boolean).join(" · ");
}

function settingsTable(values) {
  const shown = (v) => (v == null ? "–" : Array.isArray(v) ? v.join(", ") : String(v));
  return h(
    "table",
    { class: "settings" },
    h("tbody", {}, Object.entries(values).map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, k.replaceAll("_", " ")), h("td", {}, shown(v))))),
  );
}

function picture(run) {
  if (run.video) {
    return h(
      "figure",
      {},
      h("video", { id: "run-video", class: "video-player", controls: true, preload: "metadata", playsInline: true, poster: run.poster || null, src: run.video }),
      h("figcaption", {}, `${run.frames_total} frames at ${+fpsOf(run.fps).toFixed(3)} fps`),
    );
  }
  const caption = run.running ? `frame ${run.frames_done} of ${run.frames_total}, painting…` : `frame ${run.frames_done} of ${run.frames_total} (no video yet)`;
  return h(
    "figure",
    {},
    run.result ? h("img", { id: "run-live", src: run.result, alt: `The newest frame of ${run.name}` }) : h("p", { class: "empty" }, "no frame yet"),
    h("figcaption", { id: "run-live-caption" }, caption),
  );
}

/** video.json writes the rate as a fraction ("24", "30000/1001"). */
function fpsOf(fps) {
  const [a, b] = String(fps || 0).split("/").map(Number);
  return b ? a / b : a;
}

function render(run, { onRunAgain }) {
  $("#run-title").replaceChildren(run.title, " ", h("span", { class: "badge kind-video" }, "video"), " ", badge(run.status), " ", h("small", { class: "subtle" }, run.key));
  const settings = (run.info && run.info.settings) || {};
  const selection = settings.selection || {};
  const names = Object.fromEntries(run.inputs.map((i) => [`${i.role}${i.number || ""}`, i.name]));
  const facts = [
    ["recipe", run.recipe],
    ["frames", run.frames_done === run.frames_total ? run.frames_total : `${run.frames_done} of ${run.frames_total}`],
    ["painted at", run.painted_size && `${run.painted_size[0]}×${run.painted_size[1]}`],
    ["frame rate", run.fps && `${+fpsOf(run.fps).toFixed(3)} fps`],
    ["frame steps", settings.frame_steps],
    ["temporal weight", run.recipe_values.temporal_weight],
    ["piece", selection.start != null || selection.end != null ? `${selection.start ?? 0} s – ${selection.end ?? "end"}` : ""],
    ["time", fmtSeconds(run.elapsed)],
    ["finished", fmtDate(run.finished)],
    ["video", names.content],
    ["styles", run.inputs.filter((i) => i.role === "style").map((i) => i.name).join(", ")],
  ].filter(([, v]) => v != null && v !== "");
  const chart = keepDrawn(h("canvas", { class: "chart", role: "img", "aria-label": "Losses of each frame", id: "run-chart" }));
  const strip = h(
    "ul",
    { class: "strip frames-strip", id: "frames-strip" },
    run.frames.map((f) => h("li", {}, h("a", { href: f.url, target: "_blank", rel: "noopener" }, h("img", { src: f.thumb, alt: `frame ${f.frame}`, loading: "lazy" })), h("small", {}, String(f.frame)))),
  );
  $("#run-body").replaceChildren(
    h(
      "div",
      { class: "run-grid" },
      h(
        "div",
        { class: "run-images" },
        picture(run),
        h("div", { class: "inputs-strip" }, h("h3", {}, `Frames (${run.frames.length === run.frames_done ? "all" : `${run.frames.length} of ${run.frames_done}`})`), strip),
      ),
      h(
        "div",
        { class: "run-side" },
        run.running
          ? h("p", { class: "message" }, "This video is being painted: this page follows it, and shows the video once every frame is done.")
          : h(
              "div",
              { class: "actions" },
              run.inputs.length ? h("button", { type: "button", class: "primary", id: "run-again", onclick: () => onRunAgain(run) }, "Run again with changes") : "",
            ),
        run.message ? h("p", { class: "message" }, run.message) : "",
        h("dl", { class: "facts" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, String(v))])),
        h("h3", {}, "Losses per frame"),
        chart,
        h("h3", {}, "Downloads"),
        h("ul", { class: "downloads" }, Object.entries(run.downloads).map(([name, url]) => h("li", {}, h("a", { href: url, download: "" }, name)))),
        h("details", {}, h("summary", {}, "Settings (recipe.toml)"), settingsTable(run.recipe_values)),
      ),
    ),
  );
  drawLosses(chart, termSeries(metricRows(run.metrics, run.terms), run.terms), { emptyText: "no frame yet" });
  const last = run.metrics[run.metrics.length - 1];
  chart.title = last ? `frame ${last.frame}: loss ${fmtNum(last.total)}` : "";
}

/** Show the video run `key` (its detail `first`), and follow it while it is being painted. */
export function showVideoRun(key, first, options) {
  clearTimeout(timer);
  render(first, options);
  if (!first.running) return;
  let shown = `${first.status} ${first.frames_done}`;
  const look = async () => {
    if (location.hash !== `#run/${encodeURIComponent(key)}`) return; // the page moved on
    try {
      const run = await api(`/api/runs/${keyPath(key)}`);
      const now = `${run.status} ${run.frames_done}`;
      if (now !== shown) {
        shown = now;
        render(run, options);
      }
      if (!run.running) return;
    } catch (err) {
      const caption = $("#run-live-caption");
      if (caption) caption.textContent = err.message; // the server is gone, or the folder: keep looking
    }
    timer = setTimeout(look, FOLLOW_EVERY);
  };
  timer = setTimeout(look, FOLLOW_EVERY);
}

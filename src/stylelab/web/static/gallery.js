// The gallery (every run in the runs folder, those still being written too), one run's page
// (followed live while its run is written), and the side-by-side comparison.
import { $, api, badge, fmtDate, fmtNum, fmtSeconds, h, keyPath, labelParts, toast } from "./dom.js";
import { drawLosses, keepDrawn, metricRows, seriesColour, termSeries } from "./plot.js";
import { showVideoRun, videoMeta } from "./video.js";

const STORE = "stylelab.compare";
const FOLLOW_EVERY = 1000; // ms between looks at a run being written
const selection = new Set(JSON.parse(localStorage.getItem(STORE) || "[]"));
let listing = { runs: [], experiments: [] };
let galleryTimer = null;
let runTimer = null;

function saveSelection() {
  localStorage.setItem(STORE, JSON.stringify([...selection]));
  const n = selection.size;
  $("#compare-count").textContent = n ? String(n) : "";
  $("#compare-selected").textContent = `Compare selected (${n})`;
  $("#compare-selected").disabled = n < 1;
  $("#clear-selected").hidden = n < 1;
}

const stepsText = (run) =>
  run.steps == null ? "" : run.total && run.steps !== run.total ? `${run.steps} of ${run.total} steps` : `${run.steps} steps`;

const metaLine = (run) =>
  [run.recipe, run.size && `${run.size}px`, run.optimizer, stepsText(run), run.elapsed && fmtSeconds(run.elapsed)]
    .filter(Boolean)
    .join(" · ");

function card(run) {
  const id = `pick-${run.key.replace(/[^\w-]/g, "_")}`;
  const [what, differs] = labelParts(run.title);
  const video = run.kind === "video";
  return h(
    "li",
    { class: "card", dataset: { key: run.key } },
    h(
      "a",
      { class: "card-image", href: `#run/${encodeURIComponent(run.key)}`, "aria-label": `Open run ${run.title} (${run.name})` },
      run.thumb ? h("img", { src: run.thumb, alt: "", loading: "lazy" }) : h("span", { class: "no-image" }, "no image"),
    ),
    h(
      "div",
      { class: "card-body" },
      h("div", { class: "card-title" }, h("span", { class: "card-name", title: run.title }, what), video ? h("span", { class: "badge kind-video" }, "video") : "", badge(run.status)),
      differs ? h("div", { class: "card-differs" }, h("mark", {}, differs)) : "",
      run.title !== run.name ? h("div", { class: "card-meta" }, run.name) : "",
      h("div", { class: "card-meta" }, video ? videoMeta(run) : metaLine(run)),
      h("div", { class: "card-meta" }, run.experiment ? `in ${run.experiment} · ` : "", run.running ? "being written now" : fmtDate(run.finished)),
      run.running || video ? "" : h(
        "div",
        { class: "card-pick" },
        h("input", {
          type: "checkbox",
          id,
          checked: selection.has(run.key),
          onchange: (e) => {
            if (e.target.checked) selection.add(run.key);
            else selection.delete(run.key);
            saveSelection();
          },
        }),
        h("label", { for: id }, "compare"),
      ),
    ),
  );
}

function renderGallery() {
  const filter = $("#gallery-filter").value.trim().toLowerCase();
  const runs = listing.runs.filter((r) =>
    !filter ? true : [r.key, r.title, r.recipe, r.status, r.optimizer, r.kind].join(" ").toLowerCase().includes(filter),
  );
  $("#gallery").replaceChildren(...runs.map(card));
  $("#gallery-empty").hidden = listing.runs.length > 0;
  $("#gallery-count").textContent = `${runs.length} of ${listing.runs.length} runs`;
  $("#experiments").replaceChildren(
    ...listing.experiments.map((exp) =>
      h(
        "li",
        {},
        h("strong", {}, exp.key),
        ` · ${exp.runs} runs `,
        exp.report ? h("a", { href: exp.report, target: "_blank", rel: "noopener" }, "open report") : "",
        " ",
        h("button", { type: "button", class: "small", onclick: () => ($("#gallery-filter").value = exp.key, renderGallery()) }, "show runs"),
      ),
    ),
  );
  $("#experiments-box").hidden = listing.experiments.length === 0;
}

export async function showGallery() {
  clearTimeout(galleryTimer);
  try {
    listing = await api("/api/runs");
  } catch (err) {
    toast(err.message, "error");
  }
  // Forget selected runs that no longer exist.
  const keys = new Set(listing.runs.map((r) => r.key));
  for (const key of [...selection]) if (!keys.has(key)) selection.delete(key);
  saveSelection();
  renderGallery();
  // While runs are being written (a CLI run, a sweep), look again: they grow, and end.
  if (listing.runs.some((r) => r.running)) {
    galleryTimer = setTimeout(() => !$("#view-gallery").hidden && showGallery(), 2 * FOLLOW_EVERY);
  }
}

// ---------------------------------------------------------------- one run

/** A kept input's role in words: "style 2", "mask 1", "label image", "style mask 1". */
const roleName = (input) =>
  ({ labels: "label image", style_mask: `style mask ${input.number}`, mask: `mask ${input.number}`, style: `style ${input.number}` })[input.role] ||
  input.role;

function settingsTable(values, highlight = new Set()) {
  return h(
    "table",
    { class: "settings" },
    h("tbody", {}, Object.entries(values).map(([k, v]) =>
      h("tr", { class: highlight.has(k) ? "differs" : "" }, h("th", { scope: "row" }, k.replaceAll("_", " ")), h("td", {}, fmtValue(v))),
    )),
  );
}

const fmtValue = (v) => (v == null ? "–" : Array.isArray(v) ? v.join(", ") : typeof v === "number" ? String(v) : v);

/** The page of a run still being written: its newest snapshot, progress and loss curves, looked at
 * every second until it ends; then the page of the finished run. */
function followRun(key, first) {
  const view = $("#run-body");
  const chart = keepDrawn(h("canvas", { class: "chart", role: "img", "aria-label": "Loss curves of this run so far", id: "run-chart" }));
  const img = h("img", { id: "run-live", alt: `The newest snapshot of ${first.name}` });
  const progress = h("progress", { max: "1", value: "0", "aria-label": "Progress" });
  const stats = h("p", { class: "stats", "aria-live": "polite" });
  view.replaceChildren(
    h(
      "div",
      { class: "run-grid" },
      h("div", { class: "run-images" }, h("figure", {}, img, h("figcaption", { id: "run-live-caption" }, "newest snapshot"))),
      h(
        "div",
        { class: "run-side" },
        first.studio
          ? h("p", { class: "message" }, "A job of this studio's queue, running now (the Studio shows it too): this page follows it and shows the finished run once it ends.")
          : h("p", { class: "message" }, "This run is being written by another program (", h("code", {}, "stylelab run"), ", a sweep): this page follows it and shows the finished run once it ends."),
        progress,
        stats,
        h("h3", {}, "Loss curves"),
        chart,
        h("details", {}, h("summary", {}, "Settings (recipe.toml)"), settingsTable(first.recipe_values)),
      ),
    ),
  );
  const update = (run) => {
    $("#run-title").replaceChildren(run.title, " ", badge(run.status), " ", h("small", { class: "subtle" }, run.key));
    if (run.result && img.getAttribute("src") !== run.result) img.src = run.result;
    img.hidden = !run.result;
    $("#run-live-caption").textContent = run.result ? `step ${new URL(run.result, location.href).searchParams.get("step")}` : "no snapshot yet";
    progress.max = run.total || 1;
    progress.value = run.steps || 0;
    const parts = [`step ${run.steps} / ${run.total}`, run.elapsed && `${fmtSeconds(run.elapsed)} elapsed`, run.losses.total != null && `loss ${fmtNum(run.losses.total)}`, run.message];
    stats.textContent = parts.filter(Boolean).join(" · ");
    drawLosses(chart, termSeries(metricRows(run.metrics, run.terms), run.terms));
  };
  update(first);
  const look = async () => {
    if (location.hash !== `#run/${encodeURIComponent(key)}`) return; // the page moved on
    let run;
    try {
      run = await api(`/api/runs/${keyPath(key)}`);
    } catch (err) {
      $("#run-body .stats").textContent = err.message; // removed, or the server is gone: keep looking
      runTimer = setTimeout(look, 3 * FOLLOW_EVERY);
      return;
    }
    if (run.finished_as) {
      location.replace(`#run/${encodeURIComponent(run.finished_as)}`); // renamed to its finished folder
      return;
    }
    update(run);
    runTimer = setTimeout(look, FOLLOW_EVERY);
  };
  runTimer = setTimeout(look, FOLLOW_EVERY);
}

export async function showRun(key, { onRunAgain }) {
  clearTimeout(runTimer);
  const view = $("#run-body");
  view.replaceChildren(h("p", { class: "empty" }, "loading…"));
  let run;
  try {
    run = await api(`/api/runs/${keyPath(key)}`);
  } catch (err) {
    view.replaceChildren(h("p", { class: "error" }, err.message));
    return;
  }
  if (run.finished_as) {
    location.replace(`#run/${encodeURIComponent(run.finished_as)}`);
    return;
  }
  if (run.kind === "video") {
    showVideoRun(key, run, { onRunAgain });
    return;
  }
  if (run.running) {
    followRun(key, run);
    return;
  }
  $("#run-title").replaceChildren(run.title, " ", badge(run.status), " ", h("small", { class: "subtle" }, run.key));
  const chart = keepDrawn(h("canvas", { class: "chart", role: "img", "aria-label": "Loss curves of this run", id: "run-chart" }));
  const info = run.info || {};
  const names = (info.studio && info.studio.names) || {};
  const facts = [
    ["recipe", run.recipe],
    ["steps", stepsText(run).replace(/ steps$/, "")],
    ["time", fmtSeconds(run.elapsed)],
    ["device", info.device],
    ["finished", fmtDate(run.finished)],
    ["content", names.content || info.content],
    ["styles", (names.styles || info.styles || []).join(", ")],
    ["masks", (names.masks || []).filter(Boolean).join(", ")],
    ["label image", names.labels],
    ["style masks", (names.image_masks || []).map((m) => m || "–").join(", ").replace(/^[–, ]+$/, "")],
    ...Object.entries(run.losses || {}).map(([k, v]) => [`${k} loss`, fmtNum(v)]),
  ].filter(([, v]) => v != null && v !== "");
  view.replaceChildren(
    h(
      "div",
      { class: "run-grid" },
      h(
        "div",
        { class: "run-images" },
        run.result ? h("figure", {}, h("img", { src: run.result, alt: `Result of ${run.name}`, id: "run-result" }), h("figcaption", {}, "result")) : h("p", { class: "empty" }, "no result image"),
        run.process ? h("figure", {}, h("img", { src: run.process, alt: `Process picture of ${run.name}: snapshots and loss curves` }), h("figcaption", {}, "process")) : "",
        run.inputs.length
          ? h("div", { class: "inputs-strip" }, h("h3", {}, "Inputs"), h("ul", { class: "strip" }, run.inputs.map((i) => h("li", {}, h("img", { src: i.url, alt: `${i.role} input ${i.name}`, loading: "lazy" }), h("small", {}, roleName(i))))))
          : "",
      ),
      h(
        "div",
        { class: "run-side" },
        h(
          "div",
          { class: "actions" },
          h("button", { type: "button", class: "primary", id: "run-again", onclick: () => onRunAgain(run) }, "Run again with changes"),
          h("button", {
            type: "button",
            onclick: () => {
              selection.add(run.key);
              saveSelection();
              toast("Added to the comparison");
            },
          }, "Add to compare"),
        ),
        run.message ? h("p", { class: "message" }, run.message) : "",
        h("dl", { class: "facts" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, String(v))])),
        run.distances && run.distances.length
          ? [
              h("h3", {}, "Distances ", h("small", { class: "subtle" }, "measured by the sweep: lower is nearer")),
              h("dl", { class: "facts", id: "run-distances" }, run.distances.map((d) => [h("dt", {}, d.name), h("dd", {}, fmtNum(d.value))])),
            ]
          : "",
        h("h3", {}, "Loss curves"),
        chart,
        h("h3", {}, "Downloads"),
        h("ul", { class: "downloads" }, Object.entries(run.downloads).map(([name, url]) => h("li", {}, h("a", { href: url, download: "" }, name)))),
        h("details", {}, h("summary", {}, "Settings (recipe.toml)"), settingsTable(run.recipe_values)),
      ),
    ),
  );
  drawLosses(chart, termSeries(metricRows(run.metrics, run.terms), run.terms));
}

// ---------------------------------------------------------------- compare

export async function showCompare() {
  const body = $("#compare-body");
  const keys = [...selection];
  if (!keys.length) {
    body.replaceChildren(h("p", { class: "empty" }, "Tick “compare” on runs in the gallery, then come back here."));
    return;
  }
  let data;
  try {
    data = await api(`/api/compare?${keys.map((k) => `run=${encodeURIComponent(k)}`).join("&")}`);
  } catch (err) {
    body.replaceChildren(h("p", { class: "error" }, err.message));
    return;
  }
  const differs = data.fields.filter((f) => f.differs);
  const columns = data.runs.map((run, i) =>
    h(
      "figure",
      { class: "effect" },
      h("a", { href: `#run/${encodeURIComponent(run.key)}` }, run.result ? h("img", { src: run.result, alt: `Result of ${run.name}` }) : h("span", { class: "no-image" }, "no image")),
      h(
        "figcaption",
        {},
        h("span", { class: "swatch", style: `background:${seriesColour(i)}` }),
        h("strong", {}, run.title),
        " ",
        badge(run.status),
        run.title !== run.name ? h("small", { class: "subtle block" }, run.name) : "",
        h("ul", { class: "changed" }, differs.map((f) => h("li", {}, h("span", {}, f.name.replaceAll("_", " ")), " ", h("mark", {}, f.shown[i])))),
        run.distances && run.distances.length
          ? h("p", { class: "subtle distances-line" }, run.distances.map((d) => `${d.key} ${fmtNum(d.value)}`).join(" · "))
          : "",
      ),
    ),
  );
  const onlyDiff = $("#only-differences").checked;
  const shown = data.fields.filter((f) => f.differs || !onlyDiff);
  const table = h(
    "table",
    { class: "settings compare-table" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "setting"), data.runs.map((r) => h("th", { scope: "col" }, r.name)))),
    h("tbody", {}, shown.map((f) =>
      h("tr", { class: [f.differs ? "differs" : "", f.input ? "input" : ""].join(" ").trim() }, h("th", { scope: "row", title: f.help }, f.name.replaceAll("_", " ")), f.shown.map((v) => h("td", {}, v))),
    )),
  );
  const chart = keepDrawn(h("canvas", { class: "chart", role: "img", "aria-label": "Total loss of each compared run" }));
  body.replaceChildren(
    h("p", { class: "hint-line", id: "compare-summary" }, differsLine(differs, data.runs.length)),
    h("div", { class: "effect-grid", id: "effect-grid" }, columns),
    ...distanceTable(data),
    h("h3", {}, "Total loss"),
    chart,
    h("h3", {}, "Settings"),
    h("div", { class: "table-scroll" }, table),
  );
  $("#compare-png").href = `/api/compare.png?${keys.map((k) => `run=${encodeURIComponent(k)}`).join("&")}`;
  const series = data.runs.map((run, i) => ({
    label: run.name,
    colour: seriesColour(i),
    points: run.metrics.map((m) => [m.step, m.total]).filter(([, y]) => y > 0),
  }));
  drawLosses(chart, series);
}

/** The distances the runs' sweeps measured, one row each, the lowest of each row marked. */
function distanceTable(data) {
  if (!data.distances || !data.distances.length) return [];
  return [
    h("h3", {}, "Distances ", h("small", { class: "subtle" }, "measured by the sweeps: lower is nearer; the lowest marked")),
    h(
      "div",
      { class: "table-scroll" },
      h(
        "table",
        { class: "settings compare-table", id: "compare-distances" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "distance"), data.runs.map((r) => h("th", { scope: "col" }, r.name)))),
        h("tbody", {}, data.distances.map((d) =>
          h("tr", {}, h("th", { scope: "row" }, d.name), d.values.map((v, i) => h("td", {}, i === d.best ? h("mark", {}, fmtNum(v)) : v == null ? "–" : fmtNum(v)))),
        )),
      ),
    ),
  ];
}

function differsLine(differs, n) {
  if (n < 2) return "One run: tick more in the gallery to compare.";
  if (!differs.length) return "These runs share every input and setting.";
  const inputs = differs.filter((f) => f.input).map((f) => f.name);
  const settings = differs.filter((f) => !f.input).map((f) => f.name.replaceAll("_", " "));
  const parts = [];
  if (inputs.length) parts.push(`${inputs.length === 1 ? "1 input differs" : `${inputs.length} inputs differ`}: ${inputs.join(", ")}`);
  if (settings.length) parts.push(`${settings.length === 1 ? "1 setting differs" : `${settings.length} settings differ`}: ${settings.join(", ")}`);
  return parts.join("; ") + ".";
}

export function setupGallery() {
  $("#gallery-filter").addEventListener("input", renderGallery);
  $("#gallery-refresh").addEventListener("click", showGallery);
  $("#compare-selected").addEventListener("click", () => (location.hash = "#compare"));
  $("#clear-selected").addEventListener("click", () => {
    selection.clear();
    saveSelection();
    renderGallery();
  });
  $("#only-differences").addEventListener("change", showCompare);
  saveSelection();
}

// The gallery (every run in the runs folder), one run's page, and the side-by-side comparison.
import { $, api, badge, fmtDate, fmtNum, fmtSeconds, h, keyPath, toast } from "./dom.js";
import { drawLosses, seriesColour, termSeries } from "./plot.js";

const STORE = "stylelab.compare";
const selection = new Set(JSON.parse(localStorage.getItem(STORE) || "[]"));
let listing = { runs: [], experiments: [] };

function saveSelection() {
  localStorage.setItem(STORE, JSON.stringify([...selection]));
  const n = selection.size;
  $("#compare-count").textContent = n ? String(n) : "";
  $("#compare-selected").textContent = `Compare selected (${n})`;
  $("#compare-selected").disabled = n < 1;
  $("#clear-selected").hidden = n < 1;
}

const metaLine = (run) =>
  [run.recipe, run.size && `${run.size}px`, run.optimizer, run.steps != null && `${run.steps} steps`, run.elapsed && fmtSeconds(run.elapsed)]
    .filter(Boolean)
    .join(" · ");

function card(run) {
  const id = `pick-${run.key.replace(/[^\w-]/g, "_")}`;
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
      h("div", { class: "card-title" }, h("span", { class: "card-name", title: run.key }, run.title), badge(run.status)),
      run.title !== run.name ? h("div", { class: "card-meta" }, run.name) : "",
      h("div", { class: "card-meta" }, metaLine(run)),
      h("div", { class: "card-meta" }, run.experiment ? `in ${run.experiment} · ` : "", fmtDate(run.finished)),
      h(
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
    !filter ? true : [r.key, r.title, r.recipe, r.status, r.optimizer].join(" ").toLowerCase().includes(filter),
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
}

// ---------------------------------------------------------------- one run

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

export async function showRun(key, { onRunAgain }) {
  const view = $("#run-body");
  view.replaceChildren(h("p", { class: "empty" }, "loading…"));
  let run;
  try {
    run = await api(`/api/runs/${keyPath(key)}`);
  } catch (err) {
    view.replaceChildren(h("p", { class: "error" }, err.message));
    return;
  }
  $("#run-title").replaceChildren(run.title, " ", badge(run.status), " ", h("small", { class: "subtle" }, run.key));
  const chart = h("canvas", { class: "chart", role: "img", "aria-label": "Loss curves of this run" });
  const info = run.info || {};
  const facts = [
    ["recipe", run.recipe],
    ["steps", run.steps],
    ["time", fmtSeconds(run.elapsed)],
    ["device", info.device],
    ["finished", fmtDate(run.finished)],
    ["content", (info.studio && info.studio.names && info.studio.names.content) || info.content],
    ["styles", (info.studio && info.studio.names && info.studio.names.styles || info.styles || []).join(", ")],
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
          ? h("div", { class: "inputs-strip" }, h("h3", {}, "Inputs"), h("ul", { class: "strip" }, run.inputs.map((i) => h("li", {}, h("img", { src: i.url, alt: `${i.role} input ${i.name}`, loading: "lazy" }), h("small", {}, i.role)))))
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
        h("h3", {}, "Loss curves"),
        chart,
        h("h3", {}, "Downloads"),
        h("ul", { class: "downloads" }, Object.entries(run.downloads).map(([name, url]) => h("li", {}, h("a", { href: url, download: "" }, name)))),
        h("details", {}, h("summary", {}, "Settings (recipe.toml)"), settingsTable(run.recipe_values)),
      ),
    ),
  );
  const rows = run.metrics.map((m) => [m.step, m.content, m.style, m.tv, m.total]);
  requestAnimationFrame(() => drawLosses(chart, termSeries(rows)));
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
        h("ul", { class: "changed" }, differs.map((f) => h("li", {}, h("span", {}, f.name.replaceAll("_", " ")), " ", h("mark", {}, fmtValue(f.values[i]))))),
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
      h("tr", { class: f.differs ? "differs" : "" }, h("th", { scope: "row", title: f.help }, f.name.replaceAll("_", " ")), f.values.map((v) => h("td", {}, fmtValue(v)))),
    )),
  );
  const chart = h("canvas", { class: "chart", role: "img", "aria-label": "Total loss of each compared run" });
  body.replaceChildren(
    h("p", { class: "hint-line" }, differs.length ? `${differs.length === 1 ? "1 setting differs" : `${differs.length} settings differ`}: ${differs.map((f) => f.name.replaceAll("_", " ")).join(", ")}` : "These runs share every setting."),
    h("div", { class: "effect-grid", id: "effect-grid" }, columns),
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
  requestAnimationFrame(() => drawLosses(chart, series));
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

// Loss curves on a canvas: log-scale y, one line per series, redrawn whole on every update
// (a few thousand points draw in well under a millisecond).

export const TERM_COLOURS = { content: "#2f80ed", style: "#e0457b", tv: "#f2a93b", total: "#27ae60" };
const PALETTE = ["#6c5ce7", "#e0457b", "#2f80ed", "#27ae60", "#f2a93b", "#00a8a8", "#b85c38", "#8e44ad"];
const EXTRA = ["#00a8a8", "#8e44ad", "#b85c38", "#6c5ce7"]; // terms without a colour of their own (temporal...)

export const seriesColour = (i) => PALETTE[i % PALETTE.length];

/** The colour of each term: its own where it has one, else the next of EXTRA. */
function termColours(terms) {
  let extra = 0;
  return terms.map((t) => TERM_COLOURS[t] || EXTRA[extra++ % EXTRA.length]);
}

/** Series for each loss term from rows [step, ...values], in the order of `terms` (the run's own terms,
 * from its Started event or its metrics.csv header: nothing here knows which terms there are). */
export function termSeries(rows, terms) {
  const colours = termColours(terms);
  return terms
    .map((term, i) => ({
      label: term,
      colour: colours[i],
      points: rows.map((r) => [r[0], r[i + 1]]).filter(([, y]) => y > 0 && Number.isFinite(y)),
    }))
    .filter((s) => s.points.length);
}

/** Rows [step, ...values] from metrics rows ({step, elapsed, term: value...}) in the order of `terms`. */
export const metricRows = (metrics, terms) => metrics.map((m) => [m.step, ...terms.map((t) => m[t])]);

function niceLogTicks(lo, hi) {
  const ticks = [];
  for (let e = Math.floor(lo); e <= Math.ceil(hi); e++) ticks.push(e);
  return ticks.length > 7 ? ticks.filter((_, i) => i % 2 === 0) : ticks;
}

/** Draw `series` ([{label, colour, points: [[x, y], ...]}]) into `canvas`, sized to its CSS box.
 * A canvas that is not shown (its view hidden) is not drawn at its default 300×150, which would
 * look blurry once shown: it is drawn when it gets a size (see `keepDrawn`). */
export function drawLosses(canvas, series, { emptyText = "no losses yet" } = {}) {
  canvas.lastSeries = { series, emptyText };
  canvas.dataset.series = series.map((s) => s.label).join(" ");
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  if (!width || !height) return;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  const style = getComputedStyle(canvas);
  const ink = style.getPropertyValue("--ink-soft").trim() || "#667";
  const grid = style.getPropertyValue("--line").trim() || "#dde";
  ctx.font = "11px system-ui, sans-serif";
  const all = series.flatMap((s) => s.points);
  if (!all.length) {
    ctx.fillStyle = ink;
    ctx.textAlign = "center";
    ctx.fillText(emptyText, width / 2, height / 2);
    return;
  }
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => Math.log10(p[1]));
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (x1 === x0) x1 = x0 + 1;
  if (y1 - y0 < 0.5) [y0, y1] = [y0 - 0.25, y1 + 0.25];
  const pad = { left: 46, right: 10, top: 26, bottom: 22 };
  const px = (x) => pad.left + ((x - x0) / (x1 - x0)) * (width - pad.left - pad.right);
  const py = (y) => pad.top + (1 - (y - y0) / (y1 - y0)) * (height - pad.top - pad.bottom);

  ctx.strokeStyle = grid;
  ctx.fillStyle = ink;
  ctx.lineWidth = 1;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (const e of niceLogTicks(y0, y1)) {
    if (e < y0 || e > y1) continue;
    ctx.beginPath();
    ctx.moveTo(pad.left, py(e));
    ctx.lineTo(width - pad.right, py(e));
    ctx.stroke();
    ctx.fillText(`1e${e}`, pad.left - 6, py(e));
  }
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  const xTicks = new Set(Array.from({ length: 5 }, (_, i) => Math.round(x0 + ((x1 - x0) * i) / 4)));
  for (const x of xTicks) ctx.fillText(String(x), px(x), height - pad.bottom + 6);

  ctx.lineWidth = 1.8;
  ctx.lineJoin = "round";
  for (const s of series) {
    ctx.strokeStyle = s.colour;
    ctx.beginPath();
    s.points.forEach(([x, y], i) => (i ? ctx.lineTo(px(x), py(Math.log10(y))) : ctx.moveTo(px(x), py(Math.log10(y)))));
    ctx.stroke();
  }
  // Legend in a row along the top, clear of the curves.
  ctx.textAlign = "left";
  ctx.textBaseline = "middle";
  let lx = pad.left;
  for (const s of series) {
    const label = s.label.length > 28 ? `${s.label.slice(0, 27)}…` : s.label;
    ctx.fillStyle = s.colour;
    ctx.fillRect(lx, 5, 10, 10);
    ctx.fillStyle = ink;
    ctx.fillText(label, lx + 14, 10);
    lx += 14 + ctx.measureText(label).width + 14;
  }
}

const watched = new ResizeObserver((entries) => {
  for (const { target } of entries) {
    if (target.lastSeries) drawLosses(target, target.lastSeries.series, { emptyText: target.lastSeries.emptyText });
  }
});

/** Redraw `canvas` whenever its size changes: shown after being hidden, a window resized, a phone turned. */
export function keepDrawn(canvas) {
  watched.observe(canvas);
  return canvas;
}

// The live panel and the queue, kept current by the server's event stream (/api/events). A video job
// shows its newest frame as each is saved ("frame" events), frame k of n with the clip's ETA, and the
// step losses of the frame being painted.
import { $, api, badge, conn, fmtNum, fmtSeconds, h, keyPath, labelNodes, toast } from "./dom.js";
import { drawLosses, keepDrawn, termSeries } from "./plot.js";

const FINISHED = new Set(["done", "cancelled", "diverged", "failed", "interrupted"]);
const live = {
  jobs: new Map(), // id -> job, newest first
  selected: null,
  rows: [], // [step, ...losses in the order of the selected job's terms]
  pinned: false, // the user picked a job: do not follow the running one
  drawPending: false,
  onFinished: () => {},
};

const runningJob = () => [...live.jobs.values()].find((j) => j.state === "running");

function jobImage(job) {
  if (job.live) return job.live;
  if (job.kind === "video") return job.frame ? `/api/jobs/${job.id}/live.png?frame=${job.frame}` : null;
  if (job.run) return `/files/${keyPath(job.run)}/result.png`;
  return null;
}

const isVideo = (job) => job.kind === "video";
const progressText = (job) => (isVideo(job) ? (job.frames ? `frame ${job.frame}/${job.frames}` : "video") : job.total ? `${job.step}/${job.total}` : "");

function renderQueue() {
  const items = [...live.jobs.values()].slice(0, 30).map((job) => {
    const progress = progressText(job);
    const open = h(
      "button",
      {
        type: "button",
        class: "queue-item",
        "aria-pressed": String(job.id === live.selected),
        onclick: () => {
          live.pinned = true;
          select(job.id);
        },
      },
      h("span", { class: "queue-label", title: job.label }, labelNodes(job.label)),
      h("span", { class: "queue-meta" }, badge(job.state), " ", progress),
    );
    const actions = [];
    const common = { type: "button", class: "small needs-server", disabled: conn.offline };
    if (job.state === "queued" || job.state === "running") {
      actions.push(h("button", { ...common, onclick: () => cancel(job.id), "aria-label": `Cancel ${job.label}` }, "Cancel"));
    } else {
      actions.push(h("button", { ...common, onclick: () => again(job.id), "aria-label": `Run ${job.label} again` }, "Run again"));
    }
    return h("li", { class: job.id === live.selected ? "selected" : "", dataset: { job: job.id } }, open, actions);
  });
  $("#queue").replaceChildren(...items);
  $("#queue-empty").hidden = items.length > 0;
  const waiting = [...live.jobs.values()].filter((j) => j.state === "queued").length;
  $("#queue-count").textContent = waiting ? `${waiting} waiting` : "";
}

function scheduleDraw() {
  if (live.drawPending) return;
  live.drawPending = true;
  requestAnimationFrame(() => {
    live.drawPending = false;
    const job = live.jobs.get(live.selected);
    drawLosses($("#live-chart"), termSeries(live.rows, (job && job.terms) || []));
  });
}

function renderLive() {
  const job = live.jobs.get(live.selected);
  $("#live-empty").hidden = !!job;
  $("#live").hidden = !job;
  if (!job) return;
  $("#live-label").replaceChildren(...labelNodes(job.label));
  $("#live-label").title = job.label;
  $("#live-state").replaceChildren(badge(job.state), conn.offline ? h("span", { class: "badge state-failed" }, "no connection") : "");
  const img = jobImage(job);
  const picture = $("#live-img");
  if (img && picture.getAttribute("src") !== img) picture.src = img;
  picture.hidden = !img;
  $("#live-waiting").hidden = !!img;
  $("#live-waiting").textContent = job.state === "queued" ? "waiting in the queue…" : isVideo(job) ? "painting the first frame…" : "starting…";
  const progress = $("#live-progress");
  let parts;
  if (isVideo(job)) {
    // The clip's progress: frames done, and the share of the frame being painted.
    const painting = job.state === "running" && job.total && job.frame < job.frames ? (job.step || 0) / job.total : 0;
    progress.max = job.frames || 1;
    progress.value = (job.frame || 0) + painting;
    parts = [job.frames ? `frame ${job.frame} / ${job.frames}` : "", job.state === "running" && job.total ? `painting frame ${job.frame + 1}: step ${job.step} / ${job.total}` : ""];
  } else {
    progress.max = job.total || 1;
    progress.value = job.step || 0;
    parts = [job.total ? `step ${job.step} / ${job.total}` : "", job.elapsed ? `${fmtSeconds(job.elapsed)} elapsed` : ""];
  }
  if (job.state === "running" && job.eta != null) parts.push(`ETA ${fmtSeconds(job.eta)}`);
  if (job.losses && job.losses.total != null) parts.push(`loss ${fmtNum(job.losses.total)}`);
  $("#live-stats").textContent = parts.filter(Boolean).join(" · ");
  $("#live-cancel").hidden = !(job.state === "running" || job.state === "queued");
  $("#live-cancel").disabled = conn.offline;
  $("#live-message").textContent = job.message || "";
  const link = $("#live-open");
  link.hidden = !job.run;
  if (job.run) link.href = `#run/${encodeURIComponent(job.run)}`;
  scheduleDraw();
}

export async function select(id) {
  live.selected = id;
  live.rows = [];
  renderQueue();
  renderLive();
  try {
    const job = await api(`/api/jobs/${id}`);
    if (live.selected !== id) return;
    live.rows = job.history || [];
    delete job.history;
    live.jobs.set(id, { ...live.jobs.get(id), ...job });
    renderLive();
  } catch (err) {
    toast(err.message, "error");
  }
}

async function cancel(id) {
  try {
    const job = await api(`/api/jobs/${id}/cancel`, { method: "POST" });
    upsert(job);
    toast(job.state === "cancelled" ? "Cancelled" : "Stopping… the last image is kept");
  } catch (err) {
    toast(err.message, "error");
  }
}

async function again(id) {
  try {
    const job = await api(`/api/jobs/${id}/again`, { method: "POST" });
    toast(`Queued again: ${job.label}`);
    follow(job);
  } catch (err) {
    toast(err.message, "error");
  }
}

function upsert(job) {
  const before = live.jobs.get(job.id);
  const merged = { ...(before || {}), ...job };
  if (!before) live.jobs = new Map([[job.id, merged], ...live.jobs]);
  else live.jobs.set(job.id, merged);
  if (FINISHED.has(job.state) && before && !FINISHED.has(before.state)) live.onFinished(merged);
  const running = runningJob();
  if (!live.pinned && running && running.id !== live.selected) {
    select(running.id);
    return;
  }
  if (!live.selected) live.selected = job.id;
  renderQueue();
  if (job.id === live.selected) renderLive();
}

function onStep(data) {
  const job = live.jobs.get(data.id);
  if (!job) return;
  Object.assign(job, { step: data.step, total: data.total, elapsed: data.elapsed, eta: data.eta, losses: data.losses });
  if (data.id === live.selected) {
    const last = live.rows.length ? live.rows[live.rows.length - 1][0] : 0;
    live.rows.push(...data.rows.filter((r) => r[0] > last));
    renderLive();
  }
  if (data.frames) Object.assign(job, { frames: data.frames });
  const meta = document.querySelector(`#queue li[data-job="${data.id}"] .queue-meta`);
  if (meta) meta.replaceChildren(badge(job.state), " ", progressText(job));
}

/** A video job saved a frame: show it; the chart starts again with the next frame's steps. */
function onFrame(data) {
  const job = live.jobs.get(data.id);
  if (!job) return;
  Object.assign(job, { frame: data.frame, frames: data.total, eta: data.eta, live: data.url, losses: data.losses, step: 0 });
  if (data.id === live.selected) {
    live.rows = [];
    renderLive();
  }
  const meta = document.querySelector(`#queue li[data-job="${data.id}"] .queue-meta`);
  if (meta) meta.replaceChildren(badge(job.state), " ", progressText(job));
}

function onSnapshot(data) {
  const job = live.jobs.get(data.id);
  if (!job) return;
  job.live = data.url;
  job.snapshot_step = data.step;
  if (data.id === live.selected) renderLive();
}

async function refreshJobs() {
  const { jobs } = await api("/api/jobs");
  live.jobs = new Map(jobs.map((j) => [j.id, j]));
  const running = runningJob();
  const target = (!live.pinned && running && running.id) || live.selected || (jobs[0] && jobs[0].id);
  if (target) await select(target);
  else renderQueue();
}

let lostAt = 0;
let lostTimer = null;

/** Show (or clear) that the server is gone: a banner, and every control that needs it disabled. */
function setOffline(offline) {
  conn.offline = offline;
  document.body.classList.toggle("offline", offline);
  $("#offline").hidden = !offline;
  for (const button of document.querySelectorAll(".needs-server")) button.disabled = offline;
  clearInterval(lostTimer);
  if (offline) {
    lostAt = lostAt || Date.now();
    const tick = () => ($("#offline-since").textContent = fmtSeconds((Date.now() - lostAt) / 1000));
    tick();
    lostTimer = setInterval(tick, 1000);
  } else {
    lostAt = 0;
  }
  renderLive();
}

/** Open the event stream; it reconnects by itself, and each (re)connection refetches the state. */
export function connect() {
  const status = $("#conn");
  const source = new EventSource("/api/events");
  source.addEventListener("open", () => {
    status.textContent = "live";
    status.className = "conn ok";
    if (conn.offline) toast("The studio is answering again", "ok");
    setOffline(false);
    refreshJobs().catch((err) => toast(err.message, "error"));
  });
  source.addEventListener("error", () => {
    status.textContent = "not connected";
    status.className = "conn bad";
    setOffline(true);
  });
  source.addEventListener("labels", (e) => {
    for (const [id, label] of Object.entries(JSON.parse(e.data))) {
      const job = live.jobs.get(id);
      if (job) job.label = label;
    }
    renderQueue();
    renderLive();
  });
  source.addEventListener("job", (e) => upsert(JSON.parse(e.data)));
  source.addEventListener("step", (e) => onStep(JSON.parse(e.data)));
  source.addEventListener("snapshot", (e) => onSnapshot(JSON.parse(e.data)));
  source.addEventListener("frame", (e) => onFrame(JSON.parse(e.data)));
  source.addEventListener("resync", () => refreshJobs());
  return source;
}

export function follow(job) {
  live.pinned = false;
  upsert(job);
  if (!runningJob()) select(job.id);
}

export function setupLive({ onFinished }) {
  live.onFinished = onFinished;
  $("#live-cancel").addEventListener("click", () => live.selected && cancel(live.selected));
  keepDrawn($("#live-chart")); // drawn again once shown: a chart drawn while its view was hidden is not blurry
}

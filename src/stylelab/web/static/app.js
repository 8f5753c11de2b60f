// The studio page: a small hash router over four views (studio, gallery, one run, compare).
import { $, api, toast } from "./dom.js";
import { runAgain, setupForm } from "./form.js";
import { showCompare, showGallery, showRun, setupGallery } from "./gallery.js";
import { connect, follow, setupLive } from "./live.js";

const VIEWS = ["studio", "gallery", "run", "compare"];

function route() {
  const hash = location.hash.replace(/^#/, "") || "studio";
  const [name, ...rest] = hash.split("/");
  const view = VIEWS.includes(name) ? name : "studio";
  for (const v of VIEWS) $(`#view-${v}`).hidden = v !== view;
  for (const link of document.querySelectorAll("nav a")) {
    const current = link.dataset.view === view || (view === "run" && link.dataset.view === "gallery");
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (view === "gallery") showGallery();
  else if (view === "compare") showCompare();
  else if (view === "run") showRun(decodeURIComponent(rest.join("/")), { onRunAgain });
  const heading = $(`#view-${view} h2`);
  if (heading && document.activeElement && document.activeElement.closest("nav")) heading.focus({ preventScroll: true });
}

async function onRunAgain(run) {
  location.hash = "#studio";
  try {
    await runAgain(run);
    toast(`Settings of ${run.name} loaded: change what you like and press Start`);
    $("#start").focus();
  } catch (err) {
    toast(err.message, "error");
  }
}

async function main() {
  // A ?token= in the address has set the cookie by now; keep it out of the address bar and history.
  if (new URLSearchParams(location.search).has("token")) history.replaceState(null, "", location.pathname + location.hash);
  let info;
  try {
    info = await api("/api/info");
  } catch (err) {
    $("#main").prepend(Object.assign(document.createElement("p"), { className: "error", textContent: err.message }));
    return;
  }
  $("#version").textContent = `v${info.version}`;
  $("#runs-folder").textContent = info.runs;
  setupForm(info, {
    onQueued: (job) => {
      follow(job);
      if (matchMedia("(max-width: 900px)").matches) $("#live-panel").scrollIntoView({ behavior: "smooth" });
    },
  });
  setupLive({
    onFinished: (job) => {
      toast(`${job.label}: ${job.state}`, job.state === "done" ? "ok" : "info");
      if (!$("#view-gallery").hidden) showGallery();
    },
  });
  setupGallery();
  window.addEventListener("hashchange", route);
  route();
  connect();
  document.body.dataset.ready = "1";
}

main();

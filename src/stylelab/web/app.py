"""The studio's HTTP interface: a FastAPI app over the job queue, the uploads and the gallery.

Handlers stay light: the engine runs in the queue's worker thread, file and
image work runs in FastAPI's thread pool (plain ``def`` handlers), and the
async handlers only touch in-memory state. ``create_app`` is what both
``stylelab serve`` and the tests use. Every file a request reads goes through
``security.inside`` (directly, or through the gallery and the upload store):
the studio serves nothing outside its runs folder, symlinks included.
"""

from __future__ import annotations

import asyncio
import io
import zipfile
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles

from .. import __version__
from ..errors import StylelabError
from ..features import STANDIN
from ..recipes import FIELDS, INITS, preset_names, preset_summary, recipe_from_dict, type_name
from . import compare as comparing
from .gallery import Gallery, RunNotFound, thin
from .job import FINISHED
from .job_form import FormErrors, JobIn, check_job
from .jobs import Hub, JobQueue
from .limits import DEFAULT_MAX_QUEUE, DEFAULT_MAX_SIZE, DEFAULT_MAX_STEPS, Limits, QueueFull
from .preview import PREVIEW_MAX, PREVIEW_SIZE, FastUnavailable, PreviewBusy, Previewer, Superseded, preview_routes
from .regions import label_colours
from .security import BodyLimit, SecurityHeaders, TokenGate, UnsafePath, check_state_folders, confined
from .uploads import UploadError, UploadStore, UploadTooLarge
from .video_form import video_defaults
from .video_gallery import inputs as video_inputs
from .video_jobs import latest_frame
from .video_uploads import DEFAULT_MAX_VIDEO_FRAMES, check_video_limits

STATIC = Path(__file__).parent / "static"
JSON_LIMIT = 1_000_000
MULTIPART_OVERHEAD = 64 * 1024
# Settings a request may not set freely: these name files, and no path from a
# request reaches the filesystem. A start image is an upload instead.
WEIGHT_SOURCES = ("caffe", "torchvision")
# The settings the studio's form shows first; the rest sit under "more settings".
# The HTTP status of each refusal that is not a plain 400: first match wins.
ERROR_STATUS = (
    (UnsafePath, 404), (RunNotFound, 404), (UploadTooLarge, 413), (QueueFull, 429), (PreviewBusy, 429),
    (Superseded, 409), (FastUnavailable, 503),
)  # fmt: skip
MAIN_FIELDS = (
    "size steps optimizer lr content_weight style_weight tv_weight init preserve_color scales save_every seed"
).split()


def field_schema(limits: Limits | None = None, weight_sources: tuple[str, ...] = WEIGHT_SOURCES) -> list[dict]:
    """The Recipe's fields as the form needs them (type, default, help, choices, the studio's maximum)."""
    limits = limits or Limits()
    maxima = {"size": limits.max_size, "steps": limits.max_steps}
    out = []
    for name, f in FIELDS.items():
        if not f.metadata.get("cli", True):
            continue
        choices = f.metadata.get("choices")
        if name == "init":
            choices = INITS
        elif name == "weights":
            choices = weight_sources
        default = f.default
        out.append(
            {
                "name": name,
                "type": type_name(f),
                "default": list(default) if isinstance(default, tuple) else default,
                "help": f.metadata["help"],
                "choices": list(choices) if choices else None,
                "main": name in MAIN_FIELDS,
                "max": maxima.get(name),
            }
        )
    return sorted(out, key=lambda d: MAIN_FIELDS.index(d["name"]) if d["main"] else len(MAIN_FIELDS))


def create_app(
    runs: str | Path = "runs",
    *,
    token: str | None = None,
    max_upload_mb: float = 25.0,
    worker: bool = True,
    max_size: int = DEFAULT_MAX_SIZE,
    max_steps: int = DEFAULT_MAX_STEPS,
    max_queue: int = DEFAULT_MAX_QUEUE,
    standin: bool = False,
    max_video_mb: float | None = None,
    max_video_frames: int = DEFAULT_MAX_VIDEO_FRAMES,
) -> FastAPI:
    """The studio app serving ``runs``. ``worker=False`` queues jobs without running them (tests).

    ``max_size``, ``max_steps`` and ``max_queue`` bound what one job may ask for
    and how many may wait (``limits.Limits``); values out of range raise StylelabError.
    ``max_upload_mb`` bounds an image upload, ``max_video_mb`` (default: the same) and ``max_video_frames``
    a video.
    ``standin`` offers the stand-in network (``weights = "standin"``, features.py) for
    tests: no VGG, milliseconds a step; ``stylelab serve`` never sets it.
    Instant previews (``POST /api/preview``, preview.py) are painted by one fast engine for the
    app, outside the job queue, at most ``PREVIEW_MAX`` px (or ``max_size``, where smaller).
    """
    weight_sources = (*WEIGHT_SOURCES, STANDIN) if standin else WEIGHT_SOURCES
    limits = Limits(max_size, max_steps, max_queue)
    max_video_mb = max_upload_mb if max_video_mb is None else max_video_mb
    check_video_limits(max_video_mb, max_video_frames)
    root = Path(runs).resolve()
    root.mkdir(parents=True, exist_ok=True)
    check_state_folders(root)
    max_upload = int(max_upload_mb * 1_000_000)
    hub = Hub()
    uploads = UploadStore(
        root / ".studio" / "uploads",
        max_bytes=max_upload,
        root=root,
        max_video_bytes=int(max_video_mb * 1_000_000),
        max_video_frames=max_video_frames,
    )
    gallery = Gallery(root, live_titles=lambda: queue.running_labels(), name_of=uploads.name_of)
    queue = JobQueue(
        root, uploads, hub, on_finished=lambda job: gallery.invalidate(), max_queue=max_queue, check=limits.check
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if worker:
            queue.start()
        yield
        hub.close()
        await asyncio.to_thread(queue.close)

    app = FastAPI(title="stylelab studio", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.queue, app.state.gallery, app.state.hub, app.state.uploads = queue, gallery, hub, uploads
    app.state.runs, app.state.limits = root, limits
    previewer = app.state.previewer = Previewer()
    preview_most = min(PREVIEW_MAX, limits.max_size)

    def body_limit(path: str) -> tuple[int, str]:
        if path == "/api/uploads":
            return uploads.most_bytes + MULTIPART_OVERHEAD, uploads.too_large_message()
        return JSON_LIMIT, f"the request is larger than {JSON_LIMIT / 1e6:g} MB"

    app.add_middleware(BodyLimit, limit_for=body_limit)
    app.add_middleware(TokenGate, token=token)
    app.add_middleware(SecurityHeaders)

    @app.exception_handler(StylelabError)
    async def _stylelab_error(request: Request, exc: StylelabError):
        status = next((code for kind, code in ERROR_STATUS if isinstance(exc, kind)), 400)
        extra = {"errors": exc.errors} if isinstance(exc, FormErrors) else {}
        return JSONResponse({"detail": str(exc)} | extra, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError):
        # One line, as the page shows it, and without the inputs FastAPI's own answer echoes
        # (it cannot even encode one that arrived as Infinity, and answers 500).
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors())
        return JSONResponse({"detail": detail}, status_code=422)

    # ------------------------------------------------------------ the page

    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/info")
    def info():
        return {
            "version": __version__,
            "runs": str(root),
            "max_upload_mb": max_upload_mb,
            "max_video_mb": max_video_mb,
            "video": video_defaults(max_video_frames),
            "limits": limits.public(),
            "fields": field_schema(limits, weight_sources),
            "recipes": [preset_summary(n) for n in preset_names()],
            "engine": {"builds": queue.engines.builds},
            "fast_available": (reason := previewer.reason()) is None,
            "fast_reason": reason,
            "preview": {"size": min(PREVIEW_SIZE, preview_most), "max": preview_most},
        }

    # ------------------------------------------------------------ uploads

    @app.post("/api/uploads")
    async def upload(request: Request, name: str | None = None):
        """An image or a video, as the raw request body (``?name=``) or as the ``file`` field of a form."""
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            form = await request.form(max_files=1, max_fields=2)
            part = form.get("file")
            if part is None or isinstance(part, str):
                raise UploadError("send the image as the form field 'file'")
            data, name = await part.read(), part.filename
        else:
            data = await request.body()  # BodyLimit bounds it; uploads.add checks the exact limit
        return await asyncio.to_thread(uploads.add, data, name)

    @app.get("/api/uploads/{upload_id}")
    def uploaded(upload_id: str):
        return FileResponse(uploads.path(upload_id))

    @app.get("/api/uploads/{upload_id}/labels")
    def upload_labels(upload_id: str):
        """The colours of a colour-label image, in the order they go to the styles (regions.py)."""
        return {"colours": label_colours(uploads.path(upload_id))}

    app.include_router(preview_routes(previewer, uploads, preview_most))  # POST /api/preview, outside the queue

    # ------------------------------------------------------------ jobs

    @app.post("/api/jobs", status_code=201)
    def submit(body: JobIn):
        checked = check_job(body, limits, uploads, weight_sources)  # every mistake at once, or none
        job = queue.submit(
            checked.recipe,
            body.content,
            [s.upload for s in body.styles],
            checked.names,
            body.start,
            checked.weights,
            checked.masks,
            kind=checked.kind,
            video=checked.video,
            labels=checked.labels,
            image_masks=checked.image_masks,
        )
        return queue.public(job)

    @app.get("/api/jobs")
    async def jobs():
        return {"jobs": queue.listing()}

    def _job(job_id: str):
        job = queue.get(job_id)
        if job is None:
            raise RunNotFound(f"no job {job_id!r}")
        return job

    @app.get("/api/jobs/{job_id}")
    def job_detail(job_id: str):
        job = _job(job_id)
        out = queue.public(job, history=True)
        if not out["history"] and job.state in FINISHED:
            # After a restart the job's own history is gone: its run folder (or what the
            # interrupted run left in .partial) has the losses.
            terms, rows = gallery.history(job.run or f"{job.id}.partial")
            if rows:
                out["history"], out["terms"] = thin(rows, 1000), terms
        return out

    @app.post("/api/jobs/{job_id}/cancel")
    async def cancel(job_id: str):
        return queue.public(queue.cancel(_job(job_id)))

    @app.post("/api/jobs/{job_id}/again", status_code=201)
    def again(job_id: str):
        """Queue a finished job once more, with the same settings and uploads."""
        old = _job(job_id)
        kept = [*(old.masks or []), *(old.image_masks or []), old.labels, old.start]
        for upload_id in [old.content, *old.styles, *kept]:
            if upload_id is not None:
                uploads.meta(upload_id)  # still there?
        recipe = recipe_from_dict(old.recipe, f"job {old.id}")
        limits.check(recipe)  # it may come from a server with other bounds
        # A video job that stopped goes on in its run folder, from the first frame not saved.
        folder = (old.folder or old.id) if old.kind == "video" and old.state != "done" else None
        job = queue.submit(
            recipe, old.content, old.styles, old.names, old.start, old.weights, old.masks,
            kind=old.kind, video=old.video, folder=folder, labels=old.labels, image_masks=old.image_masks,
        )  # fmt: skip
        return queue.public(job)

    @app.get("/api/jobs/{job_id}/live.png")
    def live(job_id: str):
        """The job's latest snapshot; once it has finished, its result (a page may still ask)."""
        job = _job(job_id)
        picture = job.snapshot
        if picture is not None:
            return Response(picture, media_type="image/png", headers={"Cache-Control": "no-store"})
        if job.kind == "video":  # its newest frame saved (confined, as every read of the runs folder)
            if (frame := latest_frame(root, job)) is not None:
                return FileResponse(frame, headers={"Cache-Control": "no-store"})
        elif job.run is not None:
            try:
                result = confined(root, f"{job.run}/result.png")  # a link in the run folder may lead anywhere
            except UnsafePath:
                result = None
            if result is not None and result.is_file():
                return FileResponse(result, headers={"Cache-Control": "no-store"})
        elif job.state in FINISHED:
            # The server died mid-run: the last snapshot the run left is its picture.
            return FileResponse(gallery.running_image(f"{job.id}.partial"), headers={"Cache-Control": "no-store"})
        raise RunNotFound("no image yet")

    @app.get("/api/events")
    async def events(request: Request):
        """Server-sent events: job (state changed), step, snapshot, frame (a video job saved one), resync."""
        q = hub.subscribe()

        async def stream():
            try:
                yield "retry: 2000\n\n"
                while not hub.closed:
                    try:
                        kind, data = await asyncio.wait_for(q.get(), 15)
                    except TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    if kind == "bye":
                        return
                    yield f"event: {kind}\ndata: {data}\n\n"
            finally:
                hub.unsubscribe(q)

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

    # ------------------------------------------------------------ gallery

    @app.get("/api/runs")
    def runs_listing():
        return gallery.listing()

    @app.get("/api/runs/{key:path}")
    def run_detail(key: str):
        return gallery.detail(key)

    @app.post("/api/reuse/{key:path}")
    def reuse_inputs(key: str):
        """The inputs kept in a run folder, stored as uploads again for "run again with changes"."""
        if (video := gallery.video(key)) is not None:  # its clip and styles are uploads still
            kept = video_inputs(video, uploads.name_of)
            return {"inputs": [{"role": i["role"], "number": i["number"]} | uploads.public(uploads.meta(i["upload"]))
                               for i in kept]}  # fmt: skip
        run = gallery.run(key)
        kept = gallery.inputs(run)
        return {"inputs": [{"role": role, "number": n} | uploads.add_file(path, name) for role, n, path, name in kept]}

    @app.get("/api/latest/{key:path}")
    def latest(key: str):
        """The newest snapshot of a run still being written (``key`` names its .partial folder)."""
        return FileResponse(gallery.running_image(key), headers={"Cache-Control": "no-store"})

    @app.get("/api/thumb/{key:path}")
    def thumb(key: str, frame: int | None = Query(None, ge=1, le=10_000_000)):
        """A run's result, small; of a video run, frame ``frame`` (default: its first, the poster)."""
        picture = gallery.thumbnail(key, frame)
        return Response(picture, media_type="image/jpeg", headers={"Cache-Control": "max-age=60"})

    @app.get("/api/zip/{key:path}")
    def zip_run(key: str):
        run = gallery.video(key) or gallery.run(key)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, path in gallery.files(run):
                zf.write(path, f"{run.name}/{name}")
        disposition = f'attachment; filename="{run.name}.zip"'.encode("ascii", "replace").decode()
        return Response(buf.getvalue(), media_type="application/zip", headers={"Content-Disposition": disposition})

    @app.get("/api/compare")
    def compare(run: list[str] = Query(default_factory=list)):
        return comparing.compare(gallery, run)

    @app.get("/api/compare.png")
    def compare_png(run: list[str] = Query(default_factory=list)):
        from ..images import png_bytes

        return Response(png_bytes(comparing.compare_picture(gallery, run)), media_type="image/png")

    @app.get("/files/{rel:path}")
    def files(rel: str, download: bool = False):
        """Any file inside the runs folder (results, snapshots, settings, experiment reports)."""
        path = confined(root, rel)
        if not path.is_file():
            raise RunNotFound(f"no file {rel!r} in the runs folder")
        # A page from the runs folder (a sweep's report) is shown, but sandboxed: it
        # cannot script the studio or call its API.
        headers = {"Content-Security-Policy": "sandbox allow-popups; default-src 'self' 'unsafe-inline' data:"}
        if download:
            return FileResponse(path, filename=path.name, headers=headers)
        return FileResponse(path, headers=headers)

    return app

"""The studio in a real browser: Playwright driving Debian's Chromium against a real server.

Jobs run on the stand-in network (``weights = "standin"``, offered by ``create_app(standin=True)``):
milliseconds a step, so every test here takes seconds. Screenshots land in test-artifacts/studio/
(git-ignored) for a human to look at.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from .conftest import GrowingRun, ServerThread

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "studio"
TIMEOUT_MS = 90_000
# How many of a canvas's pixels are drawn, and whether it is drawn at its displayed size
# (a chart drawn while its view was hidden keeps the default 300 × 150 and looks blurry).
CHART = """(id) => { const c = document.querySelector(id);
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++;
    return {drawn: n, sharp: c.width === Math.round(c.clientWidth * devicePixelRatio) && c.clientWidth > 0,
            series: c.dataset.series || ''}; }"""
STEP_AT_LEAST = "(n) => +(/step (\\d+)/.exec(document.querySelector('#live-stats').innerText) || [0, 0])[1] >= n"
# Whether a chart shows its latest data as a fresh drawing at its present size would.
CURRENT = """async (id) => { const { drawLosses } = await import('/static/plot.js');
    const c = document.querySelector(id), before = c.toDataURL(), width = c.width;
    if (!c.lastSeries || !c.clientWidth) return false;
    drawLosses(c, c.lastSeries.series, { emptyText: c.lastSeries.emptyText });
    return before === c.toDataURL() && width === c.width; }"""


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    assert executable, "Debian's chromium is needed for the browser tests: `make browser` installs it"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.errors = errors
    yield page
    context.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def open_studio(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']")
    page.wait_for_selector("#conn.ok")  # the event stream is open


def set_settings(page, **values) -> None:
    for name, value in values.items():
        page.fill(f"#f-{name}", str(value))


def use_standin(page) -> None:
    page.click(".more summary")
    page.select_option("#f-weights", "standin")
    page.click(".more summary")


def add_images(page, content: Path, *styles: Path) -> None:
    page.set_input_files("#content-file", str(content))
    page.set_input_files("#style-file", [str(s) for s in styles])
    page.wait_for_function(f"document.querySelectorAll('#style-list .thumb').length === {len(styles)}")
    page.wait_for_selector("#content-list .thumb img")


def wait_state(page, state: str) -> None:
    page.wait_for_selector(f"#live-state .badge.state-{state}")


def card_titles(page) -> list[str]:
    """Each card's label as it reads: what was painted, then (set off below it) what sets it apart."""
    return page.evaluate(
        """[...document.querySelectorAll('#gallery .card-body')].map((b) => [b.querySelector('.card-name'),
            b.querySelector('.card-differs')].filter(Boolean).map((e) => e.innerText).join(' · '))"""
    )


def test_runs_are_labelled_by_what_they_painted_and_compared_inputs_included(live_server, page, input_images):
    open_studio(page, live_server.url)
    page.set_input_files("#content-file", str(input_images["content"]))
    page.set_input_files("#style-file", str(input_images["style"]))
    page.wait_for_selector("#style-list .thumb img")
    assert page.inner_text("#content-list").startswith("coffee.jpg")
    # Record every image the live view shows, to see it change while the job runs.
    page.evaluate(
        """() => {
        window.liveSources = [];
        const img = document.querySelector('#live-img');
        new MutationObserver(() => window.liveSources.push(img.getAttribute('src')))
            .observe(img, {attributes: true, attributeFilter: ['src']});
    }"""
    )
    set_settings(page, size=64, steps=4, save_every=2)
    use_standin(page)
    page.click("#start")
    wait_state(page, "done")
    snapshots = {s for s in page.evaluate("window.liveSources") if s and "live.png?step=" in s}
    assert len(snapshots) >= 2, "the live image updates while the job runs"
    assert page.inner_text("#live-stats").startswith("step 4 / 4")
    chart = page.evaluate(CHART, "#live-chart")
    assert chart["drawn"] > 500 and chart["sharp"] and chart["series"].split()[-1] == "total"

    # The same content with another style (dropped onto the zone, as a drag from the desktop delivers it)...
    page.click("#style-list button[aria-label^='Remove']")
    page.evaluate(
        """([b64, name]) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const data = new DataTransfer();
        data.items.add(new File([bytes], name, { type: "image/png" }));
        const zone = document.querySelector("#style-drop");
        zone.dispatchEvent(new DragEvent("drop", { dataTransfer: data, bubbles: true, cancelable: true }));
    }""",
        [base64.b64encode(input_images["style2"].read_bytes()).decode(), "waves.png"],
    )
    page.wait_for_function("document.querySelector('#style-list').innerText.includes('waves.png')")
    page.click("#start")
    page.wait_for_function("document.querySelectorAll('#queue .state-done').length === 2")
    # ...and with a stronger style, which is still running when we leave for the gallery.
    set_settings(page, style_weight=20, steps=60)
    page.click("#start")
    wait_state(page, "running")
    shot(page, "studio-done")
    page.click("nav a[data-view='gallery']")
    page.wait_for_function("document.querySelectorAll('#gallery .card .state-done').length === 3")
    assert card_titles(page) == [
        "waves on coffee · steps 60, style weight 20",
        "waves on coffee · steps 4, style weight 5",
        "mosaic on coffee",
    ]
    queue = [t.replace("\n", " ") for t in page.locator("#queue .queue-label").all_inner_texts()]
    # The second job's label gained what sets it apart when the third was queued (a "labels" event).
    assert queue == [
        "waves on coffee · steps 60, style weight 20",
        "waves on coffee · steps 4, style weight 5",
        "mosaic on coffee",
    ]
    page.wait_for_function(
        "[...document.querySelectorAll('#gallery .card img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    shot(page, "gallery")

    # Two runs that differ only in their style image: compare says so.
    boxes = page.locator("#gallery .card-pick input")
    boxes.nth(1).check()
    boxes.nth(2).check()
    page.click("#compare-selected")
    page.wait_for_selector("#effect-grid figure")
    summary = page.inner_text("#compare-summary")
    assert "1 input differs: style images" in summary and "share every" not in summary
    assert "style images" in page.inner_text(".compare-table tr.differs.input")
    page.click("nav a[data-view='gallery']")
    page.locator("#gallery .card-pick input").nth(0).check()
    page.click("#compare-selected")
    page.wait_for_function("document.querySelectorAll('#effect-grid figure').length === 3")
    assert "style weight" in page.inner_text("#compare-summary")
    assert "20" in page.inner_text(".compare-table tr.differs:has-text('style weight')")
    page.wait_for_function(
        "[...document.querySelectorAll('#effect-grid img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    shot(page, "compare")

    # One run's page, then "run again with changes": the form is filled, and the live chart (drawn
    # while the studio was hidden) is drawn again at its size, not stretched.
    page.click("#effect-grid figure:has-text('style weight 20') a")
    page.wait_for_function(
        "document.querySelector('#run-result') && document.querySelector('#run-result').naturalWidth > 0"
    )
    assert page.evaluate(CHART, "#run-chart")["sharp"]
    shot(page, "run")
    page.click("#run-again")
    page.wait_for_selector("#toast.show:has-text('loaded')")
    assert page.input_value("#f-style_weight") == "20" and page.input_value("#f-steps") == "60"
    assert [t.split("\n")[0] for t in page.locator("#style-list .thumb-name").all_inner_texts()] == ["waves.png"]
    page.wait_for_function(f"({CHART})('#live-chart').sharp", timeout=5000)
    page.wait_for_timeout(300)  # a frame or two for a redraw, if one is coming
    assert page.evaluate(CURRENT, "#live-chart"), "the chart shows what it was given last, at its size"
    assert page.evaluate(CHART, "#live-chart")["drawn"] > 500
    assert not page.errors, page.errors


def test_form_mistakes_show_at_once_by_their_fields_and_masks_over_the_content(
    live_server, page, input_images, tmp_path
):
    mask = Image.new("L", (96, 64), 0)
    mask.paste(255, (0, 0, 48, 64))  # white on the left: the first style paints there
    mask.save(tmp_path / "left.png")
    open_studio(page, live_server.url)
    add_images(page, input_images["content"], input_images["style"], input_images["style2"])
    page.set_input_files("#mask-file-0", str(tmp_path / "left.png"))
    page.wait_for_function("document.querySelector('#mask-canvas').dataset.masks === '1'")
    tint = page.evaluate(
        """() => { const c = document.querySelector('#mask-canvas'), ctx = c.getContext('2d');
        const at = (x) => [...ctx.getImageData(Math.round(x * c.width), c.height >> 1, 1, 1).data];
        return [at(0.25), at(0.75)]; }"""
    )
    left, right = tint
    assert left[2] > right[2] + 40, f"the mask's half is tinted in the style's colour: {tint}"
    assert "mosaic.png" in page.inner_text("#mask-legend") and "waves.png: the rest" in page.inner_text("#mask-legend")

    set_settings(page, size=0, steps=-5)
    page.fill("#style-weight-1", "3")
    page.click("#start")
    page.wait_for_selector("#form-error li")
    assert page.inner_text("#form-error strong") == "3 things to fix before this can start:"
    assert "size must be between 16 and" in page.inner_text(".field-size .field-error")
    assert "not -5" in page.inner_text(".field-steps .field-error")
    assert "blend weights and masks do not go together" in page.inner_text("#err-blend-1")
    for control in ("#f-size", "#f-steps", "#style-weight-1"):
        assert page.get_attribute(control, "aria-invalid") == "true", control
    assert page.locator("#queue li").count() == 0
    shot(page, "form-errors")
    page.click("#form-error li:nth-child(2) a")
    assert page.evaluate("document.activeElement.id") == "f-steps"
    page.fill("#f-steps", "4")  # a corrected field drops its mistake
    assert page.inner_text(".field-steps .field-error") == ""

    set_settings(page, size=64, save_every=2)
    page.fill("#style-weight-1", "1")
    use_standin(page)
    page.click("#start")
    wait_state(page, "done")
    assert "(regions)" in page.inner_text("#live-label")
    shot(page, "masks")
    page.click("#live-open")
    page.wait_for_selector("#run-again")
    page.click("#run-again")
    page.wait_for_selector("#toast.show:has-text('loaded')")
    page.wait_for_selector("#mask-0 img")  # the mask came back with its style
    assert page.locator("#mask-1 img").count() == 0
    assert not [e for e in page.errors if "400" not in e], page.errors  # the refused submit answered 400


def test_a_cancelled_run_keeps_its_last_image_and_compare_shows_the_steps_it_did(live_server, page, input_images):
    open_studio(page, live_server.url)
    add_images(page, input_images["content"], input_images["style2"])
    set_settings(page, size=64, steps=5000, save_every=5)
    use_standin(page)
    page.click("#start")
    page.wait_for_function("(document.querySelector('#live-img').getAttribute('src') || '').includes('step=')")
    page.click("#live-cancel")
    wait_state(page, "cancelled")
    page.wait_for_function("document.querySelector('#live-img').naturalWidth > 0")
    assert page.is_visible("#live-open"), "the cancelled run is in the gallery"
    page.click("nav a[data-view='gallery']")
    page.wait_for_selector("#gallery .card .state-cancelled")
    assert " of 5000 steps" in page.inner_text("#gallery .card-meta >> nth=1")
    page.check("#gallery .card-pick input")
    page.click("#compare-selected")
    page.wait_for_selector(".compare-table")
    page.uncheck("#only-differences")  # one run differs from nothing: show every setting
    page.wait_for_selector(".compare-table tr:has(th:text-is('steps'))")
    steps = page.inner_text(".compare-table tr:has(th:text-is('steps')) td")
    assert steps.endswith(" of 5000") and int(steps.split()[0]) < 5000, steps
    assert not page.errors, page.errors


def test_a_run_written_by_the_cli_is_followed_live_with_every_term_it_has(live_server, page, runs_dir):
    terms = ("content", "style", "tv", "temporal", "total")  # a video frame's run has a fifth term
    run = GrowingRun(runs_dir / "from-cli", terms=terms, total=40).start().step(5).snapshot((200, 40, 40))
    open_studio(page, live_server.url + "/#gallery")
    page.wait_for_selector("#gallery .card .state-running")
    assert card_titles(page) == ["from-cli"]
    page.click("#gallery .card-image")
    page.wait_for_function(
        "document.querySelector('#run-live') && document.querySelector('#run-live').naturalWidth > 0"
    )
    assert page.inner_text("#run-body .stats").startswith("step 5 / 40")
    assert page.evaluate(CHART, "#run-chart")["series"] == " ".join(terms)
    run.step(10).snapshot((40, 200, 40))
    page.wait_for_function("document.querySelector('#run-body .stats').innerText.startsWith('step 15 / 40')")
    page.wait_for_function("document.querySelector('#run-live').src.endsWith('step=15')")
    shot(page, "cli-live")
    run.step(25).finish()
    page.wait_for_function("location.hash === '#run/from-cli'")
    page.wait_for_function(
        "document.querySelector('#run-result') && document.querySelector('#run-result').naturalWidth > 0"
    )
    chart = page.evaluate(CHART, "#run-chart")
    assert chart["series"] == " ".join(terms) and chart["drawn"] > 500
    assert not page.errors, page.errors


def test_a_gone_server_is_obvious_and_after_a_restart_the_interrupted_run_shows_its_losses(
    runs_dir, page, input_images
):
    from stylelab.web.app import create_app

    first = ServerThread(create_app(runs_dir, standin=True)).__enter__()
    try:
        open_studio(page, first.url)
        add_images(page, input_images["content"], input_images["style"])
        set_settings(page, size=64, steps=8000, save_every=20)
        use_standin(page)
        page.click("#start")
        page.wait_for_function(STEP_AT_LEAST, arg=10)
    finally:
        first.__exit__(None, None, None)  # the server stops mid-run
    page.wait_for_selector("#offline:not([hidden])")
    assert "not answering" in page.inner_text("#offline")
    assert page.is_disabled("#start") and page.is_disabled("#live-cancel")
    shot(page, "offline")
    with ServerThread(create_app(runs_dir, standin=True), port=first.port):
        page.wait_for_selector("#offline", state="hidden")
        page.wait_for_selector("#conn.ok")
        wait_state(page, "interrupted")
        page.wait_for_function(f"({CHART})('#live-chart').drawn > 500")
        assert page.evaluate(CHART, "#live-chart")["series"].split()[-1] == "total"
        assert page.is_enabled("#start")
        shot(page, "restarted")
    page.errors[:] = [e for e in page.errors if "ERR_CONNECTION_REFUSED" not in e and "Failed to load" not in e]
    assert not page.errors, page.errors


def test_phone_width_queue_and_keyboard(runs_dir, browser):
    from stylelab.web.app import create_app

    # A studio restarted with finished jobs whose labels are long: their buttons must stay on screen.
    jobs = [
        {
            "id": f"20240101-00000{i}-abcdef",
            "recipe": {"name": "default", "size": 64, "style_weight": 5.0 * (i + 1)},
            "content": "0" * 20,
            "styles": ["1" * 20],
            "names": {"content": "tubingen_neckarfront_at_night.jpg", "styles": ["starry_night_over_the_rhone.jpg"]},
            "state": ["interrupted", "cancelled", "done"][i],
            "step": 3741,
            "total": 10000,
        }
        for i in range(3)
    ]
    (runs_dir / ".studio").mkdir(parents=True)
    (runs_dir / ".studio" / "jobs.json").write_text(json.dumps(jobs))
    with ServerThread(create_app(runs_dir)) as server:
        context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        try:
            page.goto(server.url)
            page.wait_for_selector("body[data-ready='1']")
            page.wait_for_function("document.querySelectorAll('#queue li').length === 3")
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"the page is {overflow}px wider than a phone"
            # Each job's button and its "Run again".
            edges = page.evaluate(
                "[...document.querySelectorAll('#queue li > button')].map(b => b.getBoundingClientRect().right)"
            )
            assert len(edges) == 6 and max(edges) <= 390, f"a queue button runs off the screen: {edges}"
            page.locator("#queue").scroll_into_view_if_needed()
            shot(page, "studio-phone")
            # Keyboard: Tab reaches the file pickers and the start button, and focus is visible.
            page.evaluate("window.scrollTo(0, 0)")
            reached = set()
            for _ in range(80):
                page.keyboard.press("Tab")
                reached.add(page.evaluate("document.activeElement.id"))
                if "start" in reached:
                    break
            assert {"content-file", "style-file", "recipe", "f-size", "start"} <= reached
            outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
            assert outline not in ("", "none"), "the focused button shows a focus ring"
        finally:
            context.close()


def test_a_token_url_opens_the_studio_and_leaves_the_address_clean(runs_dir, browser):
    from stylelab.web.app import create_app

    with ServerThread(create_app(runs_dir, token="s3cret-token")) as server:
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        try:
            assert page.goto(server.url + "/").status == 401
            page.goto(server.url + "/?token=s3cret-token#gallery")
            page.wait_for_selector("body[data-ready='1']")
            page.wait_for_selector("#conn.ok")  # the event stream is authorised by the cookie
            assert "token" not in page.url and page.url.endswith("#gallery")
            assert page.is_visible("#view-gallery")
        finally:
            context.close()

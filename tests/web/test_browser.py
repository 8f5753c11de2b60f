"""The studio in a real browser: Playwright driving Debian's Chromium against a real server.

Screenshots land in test-artifacts/studio/ (git-ignored) for a human to look at.
"""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import pytest

from .conftest import ServerThread

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "studio"
TIMEOUT_MS = 90_000


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


def set_settings(page, **values) -> None:
    for name, value in values.items():
        page.fill(f"#f-{name}", str(value))


def wait_state(page, state: str) -> None:
    page.wait_for_selector(f"#live-state .badge.state-{state}")


def test_upload_run_watch_gallery_and_compare(live_server, page, input_images):
    page.goto(live_server.url)
    page.wait_for_selector("body[data-ready='1']")
    page.wait_for_selector("#conn.ok")  # the event stream is open

    # Two small images through the file pickers (the same inputs a drop fills).
    page.set_input_files("#content-file", str(input_images["content"]))
    page.set_input_files("#style-file", str(input_images["style"]))
    page.wait_for_selector("#content-list .thumb img")
    page.wait_for_selector("#style-list .thumb img")
    assert page.inner_text("#content-list").startswith("coffee.jpg")
    # A second style dropped onto the style zone, as a drag from the desktop delivers it.
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
    page.wait_for_function("document.querySelectorAll('#style-list .thumb').length === 2")
    assert "waves.png" in page.inner_text("#style-list")

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
    page.click("#start")
    wait_state(page, "running")
    wait_state(page, "done")
    sources = page.evaluate("window.liveSources")
    snapshots = {s for s in sources if s and "live.png?step=" in s}
    assert len(snapshots) >= 2, f"the live image should update while the job runs: {sources}"
    assert page.inner_text("#live-stats").startswith("step 4 / 4")
    chart_pixels = page.evaluate(
        """() => { const c = document.querySelector('#live-chart');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }"""
    )
    assert chart_pixels > 500, "the loss curves were drawn"
    shot(page, "studio-done")

    # A second run that differs in one setting.
    set_settings(page, style_weight=20)
    page.click("#start")
    page.wait_for_function("document.querySelectorAll('#queue .state-done').length === 2")

    # Empty the form, so that "run again" below has to fill it.
    page.click("#content-list button[aria-label^='Remove']")
    page.click("#style-list button[aria-label^='Remove']")
    assert page.inner_text("#content-list") == ""

    # Both appear in the gallery, with their pictures.
    page.click("nav a[data-view='gallery']")
    page.wait_for_function("document.querySelectorAll('#gallery .card').length === 2")
    page.wait_for_function(
        "[...document.querySelectorAll('#gallery .card img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    shot(page, "gallery")

    # Compare the two: side by side, the differing setting highlighted.
    for box in page.query_selector_all("#gallery .card-pick input"):
        box.check()
    page.click("#compare-selected")
    page.wait_for_selector("#effect-grid figure")
    assert len(page.query_selector_all("#effect-grid figure")) == 2
    highlighted = page.inner_text(".compare-table tr.differs")
    assert "style weight" in highlighted and "20" in highlighted
    page.wait_for_function(
        "[...document.querySelectorAll('#effect-grid img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    shot(page, "compare")

    # One run's page, then "run again with changes" fills the form with its settings and inputs.
    page.click("#effect-grid figure:first-child a")
    page.wait_for_selector("#run-result")
    page.wait_for_function("document.querySelector('#run-result').naturalWidth > 0")
    shot(page, "run")
    page.click("#run-again")
    page.wait_for_selector("#toast.show:has-text('loaded')")
    assert page.is_visible("#view-studio")
    assert page.input_value("#f-steps") == "4" and page.input_value("#f-size") == "64"
    assert page.inner_text("#content-list").startswith("coffee.jpg")
    assert [t.split("\n")[0] for t in page.locator("#style-list .thumb-name").all_inner_texts()] == [
        "mosaic.png",
        "waves.png",
    ]
    assert not page.errors, page.errors


def test_cancel_keeps_the_last_image(live_server, page, input_images):
    page.goto(live_server.url)
    page.wait_for_selector("#conn.ok")
    page.set_input_files("#content-file", str(input_images["content"]))
    page.set_input_files("#style-file", str(input_images["style2"]))
    page.wait_for_selector("#style-list .thumb img")
    set_settings(page, size=64, steps=400, save_every=1)
    page.click("#start")
    page.wait_for_function("(document.querySelector('#live-img').getAttribute('src') || '').includes('step=')")
    page.click("#live-cancel")
    wait_state(page, "cancelled")
    page.wait_for_function("document.querySelector('#live-img').naturalWidth > 0")
    assert page.is_visible("#live-open"), "the cancelled run is in the gallery"
    assert not page.errors, page.errors


def test_phone_width_and_keyboard(live_server, browser, input_images):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        page.goto(live_server.url)
        page.wait_for_selector("body[data-ready='1']")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the page is {overflow}px wider than a phone"
        shot(page, "studio-phone")
        # Keyboard: Tab reaches the file pickers and the start button, and focus is visible.
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

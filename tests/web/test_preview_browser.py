"""The instant preview in a real browser: it appears once a content and a style are uploaded, follows the
strength slider, and Refine queues a job starting from it. Jobs on the stand-in network, the preview on
the real fast model; screenshots in test-artifacts/studio/."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from . import test_browser
from .test_browser import add_images, open_studio, set_settings, shot, use_standin, wait_state

browser, page = test_browser.browser, test_browser.page  # the same Chromium and page fixtures

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# The preview's mean colour, and how many of its pixels a second picture changes (by more than 24 levels).
MEAN = """() => { const img = document.querySelector('#preview-img'), c = document.createElement('canvas');
    c.width = img.naturalWidth; c.height = img.naturalHeight; const ctx = c.getContext('2d');
    ctx.drawImage(img, 0, 0); const d = ctx.getImageData(0, 0, c.width, c.height).data;
    window.previewPixels = d; let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i] + d[i + 1] + d[i + 2];
    return s / (d.length / 4) / 3; }"""
CHANGED = """() => { const before = window.previewPixels, img = document.querySelector('#preview-img');
    const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
    const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0); const d = ctx.getImageData(0, 0, c.width, c.height).data;
    if (d.length !== before.length) return 1; let n = 0;
    for (let i = 0; i < d.length; i += 4) if (Math.abs(d[i] - before[i]) + Math.abs(d[i + 1] - before[i + 1])
        + Math.abs(d[i + 2] - before[i + 2]) > 24) n++;
    return n / (d.length / 4); }"""


def slide(page, value: float) -> None:
    """Drag the strength slider to ``value``, as the browser reports a drag: input events on the way."""
    page.evaluate(
        """(v) => { const s = document.querySelector('#preview-strength');
        for (const x of [0.9, 0.7, 0.5, v]) {
            s.value = String(x); s.dispatchEvent(new Event('input', {bubbles: true})); } }""",
        value,
    )


def test_the_preview_appears_follows_the_strength_and_refine_starts_from_it(live_server, page, input_images):
    open_studio(page, live_server.url)
    page.wait_for_selector("#preview-status:has-text('Add a content and a style image')")
    assert page.is_disabled("#refine")
    set_settings(page, size=96, steps=4, save_every=2)
    use_standin(page)
    add_images(page, input_images["content"], input_images["style"])
    page.wait_for_function("document.querySelector('#preview-img').naturalWidth > 0")
    size = "(({naturalWidth: w, naturalHeight: h}) => [w, h])(document.querySelector('#preview-img'))"
    assert page.evaluate(size) == [96, 64]
    page.wait_for_function("/^96×64 in /.test(document.querySelector('#preview-status').innerText)")
    assert page.is_enabled("#refine")
    page.evaluate(MEAN)
    asked = int(page.get_attribute("#preview-img", "data-asked"))

    slide(page, 0.3)  # one burst of changes: one request, the last value's
    page.wait_for_function("document.querySelector('#preview-img').dataset.strength === '0.3'")
    assert int(page.get_attribute("#preview-img", "data-asked")) == asked + 1
    assert page.input_value("#f-strength") == "0.3" and page.inner_text("#preview-strength-value") == "0.30"
    assert page.evaluate(CHANGED) > 0.2, "less strength repaints the picture nearer the photo"
    shot(page, "studio-preview")

    page.click("#refine")
    page.wait_for_selector("#toast.show:has-text('Refining')")
    wait_state(page, "done")
    jobs = json.loads(page.evaluate("fetch('/api/jobs').then((r) => r.text())"))["jobs"]
    assert len(jobs) == 1 and jobs[0]["recipe"]["init"] == "fast" and jobs[0]["recipe"]["strength"] == 0.3
    assert page.evaluate("document.querySelector('#live-img').naturalWidth") > 0
    assert not page.errors, page.errors


def test_a_label_image_and_style_image_masks_show_over_the_previews_and_go_with_the_job(
    live_server, page, input_images, tmp_path
):
    labels = Image.new("RGB", (96, 64), (0, 0, 255))
    labels.paste((255, 0, 0), (0, 32, 96, 64))  # blue on top (the first colour: style 1), red below (style 2)
    labels.save(tmp_path / "labels.png")
    top = Image.new("L", (96, 96), 0)
    top.paste(255, (0, 0, 96, 48))
    top.save(tmp_path / "top.png")
    open_studio(page, live_server.url)
    set_settings(page, size=64, steps=2, save_every=1)
    use_standin(page)
    add_images(page, input_images["content"], input_images["style"], input_images["style2"])
    page.set_input_files("#labels-file", str(tmp_path / "labels.png"))
    page.wait_for_function("document.querySelector('#mask-canvas').dataset.labels === '2'")
    assert page.locator("#mask-0").count() == 0, "with a label image, no mask per style"
    legend = page.inner_text("#mask-legend")
    assert legend.index("mosaic.png") < legend.index("waves.png")
    tint = page.evaluate(
        """() => { const c = document.querySelector('#mask-canvas'), ctx = c.getContext('2d');
        const at = (y) => [...ctx.getImageData(c.width >> 1, Math.round(y * c.height), 1, 1).data];
        return [at(0.25), at(0.75)]; }"""
    )
    assert tint[0][2] > tint[1][2] + 40 and tint[1][0] > tint[0][0] + 40, f"the label colours over the content: {tint}"
    page.set_input_files("#part-file-1", str(tmp_path / "top.png"))
    page.wait_for_selector("#part-list canvas", state="attached")
    bright = page.evaluate(
        """() => { const c = document.querySelector('#part-list canvas'), ctx = c.getContext('2d');
        const mean = (y0, y1) => { const d = ctx.getImageData(0, Math.round(y0 * c.height), c.width,
            Math.max(1, Math.round((y1 - y0) * c.height))).data; let s = 0;
            for (let i = 0; i < d.length; i += 4) s += d[i] + d[i + 1] + d[i + 2]; return s / d.length; };
        return [mean(0, 0.45), mean(0.55, 1)]; }"""
    )
    assert bright[0] > 1.5 * bright[1], f"the part of the painting not used is dimmed: {bright}"
    page.wait_for_selector("#preview-note:has-text('style-image masks')")
    assert page.is_disabled("#refine")  # the fast start reads whole paintings
    page.click("#start")
    wait_state(page, "done")
    jobs = json.loads(page.evaluate("fetch('/api/jobs').then((r) => r.text())"))["jobs"]
    assert jobs[0]["names"]["labels"] == "labels.png" and jobs[0]["names"]["image_masks"] == [None, "top.png"]
    page.click("#live-open")
    page.wait_for_selector("#run-again")
    strip = page.inner_text(".inputs-strip")
    assert "label image" in strip and "style mask 2" in strip
    shot(page, "regions-run")
    page.click("#run-again")
    page.wait_for_selector("#toast.show:has-text('loaded')")
    page.wait_for_selector("#labels img")
    page.wait_for_selector("#part-1 img")  # the style-image mask came back with its style
    assert not page.errors, page.errors

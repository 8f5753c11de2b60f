"""A video in the studio, in a real browser (Playwright + Debian's Chromium): upload it, watch its frames
arrive, and play it in the gallery. On the stand-in network: seconds. Screenshots in test-artifacts/studio/."""

from __future__ import annotations

import pytest

from . import test_browser
from .test_browser import open_studio, set_settings, shot, use_standin, wait_state

browser, page = test_browser.browser, test_browser.page  # the same Chromium and page fixtures

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FRAME_SHOWN = "(n) => +(/frame (\\d+) \\//.exec(document.querySelector('#live-stats').innerText) || [0, 0])[1] >= n"


def test_a_video_is_uploaded_watched_frame_by_frame_and_played_in_the_gallery(
    live_server,
    page,
    video_clips,
    input_images,
):
    open_studio(page, live_server.url)
    page.set_input_files("#content-file", str(video_clips["long"]))
    page.wait_for_selector("#content-list .thumb video")
    page.wait_for_selector("#video-box:not([hidden])")
    assert "6 frames at 24 fps" in page.inner_text("#video-about")
    assert page.locator("#video-fields #f-temporal_weight").count() == 1  # the video's own setting, shown there
    page.set_input_files("#style-file", str(input_images["style"]))
    page.wait_for_selector("#style-list .thumb img")
    # Every picture the live view shows, to see frames arrive while the clip is painted.
    page.evaluate(
        """() => {
        window.liveSources = [];
        const img = document.querySelector('#live-img');
        new MutationObserver(() => window.liveSources.push(img.getAttribute('src')))
            .observe(img, {attributes: true, attributeFilter: ['src']});
    }"""
    )
    set_settings(page, size=48, steps=25, save_every="", frame_steps=25)
    use_standin(page)
    page.click("#start")
    page.wait_for_function(FRAME_SHOWN, arg=2)
    assert "ETA" in page.inner_text("#live-stats")
    shot(page, "video-live")
    wait_state(page, "done")
    frames = {s for s in page.evaluate("window.liveSources") if s and "live.png?frame=" in s}
    assert len(frames) >= 3, f"the live view showed frames as they finished: {frames}"
    assert page.inner_text("#live-stats").startswith("frame 6 / 6")
    page.wait_for_function("document.querySelector('#live-img').naturalWidth === 48")

    page.click("nav a[data-view='gallery']")
    page.wait_for_selector("#gallery .card:has(.kind-video) .state-done")
    assert page.locator("#gallery .card:has(.kind-video) .card-pick").count() == 0  # compare is for stills
    page.wait_for_function("[...document.querySelectorAll('#gallery .card img')].every(i => i.naturalWidth > 0)")
    shot(page, "video-gallery")
    page.click("#gallery .card:has(.kind-video) .card-image")
    page.wait_for_selector("#run-video")
    # The browser loads the video from the runs folder: its length and size, then a frame to show.
    page.wait_for_function("document.querySelector('#run-video').readyState >= 2")
    played = page.evaluate(
        "() => { const v = document.querySelector('#run-video');"
        " return {w: v.videoWidth, h: v.videoHeight, d: v.duration, poster: v.poster}; }"
    )
    assert (played["w"], played["h"]) == (48, 32) and played["d"] == pytest.approx(6 / 24, abs=0.05)
    assert played["poster"].endswith("frames/frame_000001.png")
    page.wait_for_function(
        "document.querySelectorAll('#frames-strip img').length === 6"
        " && [...document.querySelectorAll('#frames-strip img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    assert "Losses per frame" in page.inner_text("#run-body")
    shot(page, "video-run")
    # "Run again with changes": the same clip and style, and the video's settings, back in the form.
    page.click("#run-again")
    page.wait_for_selector("#toast.show:has-text('loaded')")
    page.wait_for_selector("#video-box:not([hidden])")
    assert page.input_value("#f-frame_steps") == "25" and page.input_value("#f-temporal_weight") == "5"
    assert page.inner_text("#content-list .thumb-name").startswith("long.mp4")
    assert not page.errors, page.errors

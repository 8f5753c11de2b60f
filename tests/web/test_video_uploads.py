"""Video uploads (recognised by probing, bounded in bytes and frames) and a video job's form checks."""

from __future__ import annotations

import pytest

from .conftest import upload, video_body


def test_a_video_upload_is_probed_described_and_served_back_as_a_video(make_client, video_clips):
    client = make_client(worker=False)
    meta = upload(client, video_clips["clip"])
    assert meta["kind"] == "video" and meta["format"] == "MP4" and meta["name"] == "clip.mp4"
    assert (meta["width"], meta["height"], meta["frames"], meta["fps"]) == (48, 32, 4, 24.0)
    assert meta["duration"] == pytest.approx(4 / 24, abs=1e-3)
    served = client.get(meta["url"])
    assert served.status_code == 200 and served.headers["content-type"] == "video/mp4"
    assert served.content == video_clips["clip"].read_bytes()
    mkv = upload(client, video_clips["mkv"])
    assert (mkv["kind"], mkv["format"], mkv["frames"]) == ("video", "MKV", 3)
    assert client.get(mkv["url"]).headers["content-type"] == "video/x-matroska"
    # Nothing examined is left lying in the store under a temporary name.
    store = client.app.state.runs / ".studio" / "uploads"
    assert sorted(p.suffix for p in store.iterdir()) == [".json", ".json", ".mkv", ".mp4"]


def test_what_is_not_a_video_is_refused_by_its_content_not_its_name(make_client, video_clips):
    client = make_client(worker=False)
    for path, words in ((video_clips["text"], "not an image or a video"), (video_clips["audio"], "no video")):
        response = client.post(f"/api/uploads?name={path.name}", content=path.read_bytes())
        assert response.status_code == 400, response.text
        detail = response.json()["detail"]
        assert words in detail and "\n" not in detail and path.name in detail
    # A real video under an image's name is still a video (and stored as one).
    renamed = client.post("/api/uploads?name=holiday.png", content=video_clips["clip"].read_bytes()).json()
    assert renamed["kind"] == "video" and renamed["format"] == "MP4"
    assert [p.name for p in (client.app.state.runs / ".studio" / "uploads").glob("*.incoming*")] == []


def test_videos_over_the_byte_or_frame_caps_are_refused_with_one_line(make_client, runs_dir, video_clips, input_images):
    data = video_clips["clip"].read_bytes()
    client = make_client(worker=False, max_video_frames=3)
    response = client.post("/api/uploads?name=clip.mp4", content=data)
    assert response.status_code == 400
    assert response.json()["detail"].startswith("clip.mp4 has 4 frames") and "--max-video-frames" in response.text
    small = make_client(worker=False, runs=runs_dir / "small", max_video_mb=len(data) / 2e6, max_upload_mb=1)
    response = small.post("/api/uploads?name=clip.mp4", content=data)
    assert response.status_code == 413 and "--max-video-mb" in response.json()["detail"]
    assert upload(small, input_images["content"])["kind"] == "image"  # images keep their own bound
    # Images and videos each have their own bound: a video may be larger than an image may.
    roomy = make_client(worker=False, runs=runs_dir / "roomy", max_upload_mb=len(data) / 2e6, max_video_mb=1)
    assert upload(roomy, video_clips["clip"])["kind"] == "video"
    picture = input_images["content"].read_bytes()
    response = roomy.post("/api/uploads?name=big.jpg", content=picture + b"\0" * len(data))
    assert response.status_code == 413 and "--max-upload-mb" in response.json()["detail"]


def test_the_studio_refuses_video_bounds_out_of_range(runs_dir):
    from stylelab.errors import StylelabError
    from stylelab.web.app import create_app

    with pytest.raises(StylelabError, match="--max-video-frames"):
        create_app(runs_dir, worker=False, max_video_frames=0)
    with pytest.raises(StylelabError, match="--max-video-mb"):
        create_app(runs_dir, worker=False, max_video_mb=0)


@pytest.fixture
def video_uploads(make_client, video_clips, input_images):
    client = make_client(worker=False, standin=True, max_video_frames=10)
    clip = upload(client, video_clips["clip"])["id"]
    style = upload(client, input_images["style"])["id"]
    return client, clip, style


def test_a_video_job_is_queued_with_its_clip_settings_and_the_video_temporal_weight(video_uploads):
    client, clip, style = video_uploads
    body = video_body(clip, [style], {"max_frames": 3, "start": 0.0})
    job = client.post("/api/jobs", json=body).json()
    assert job["kind"] == "video" and job["state"] == "queued"
    assert job["video"] == {"frame_steps": 2, "start": 0.0, "end": None, "max_frames": 3}
    assert job["recipe"]["temporal_weight"] == 5.0  # the preset has none: a video gets the measured default
    set_to_zero = client.post("/api/jobs", json=video_body(clip, [style], temporal_weight=0)).json()
    assert set_to_zero["recipe"]["temporal_weight"] == 0  # what the form sets wins: every frame on its own
    image_job = client.post("/api/jobs", json=video_body(style, [style])).json()
    assert image_job["kind"] == "image" and image_job["video"] is None  # an image content: a still


@pytest.mark.parametrize(
    "video, settings, field, message",
    [
        ({"max_frames": 11}, {}, "max_frames", "max frames must be between 1 and 10"),
        ({"start": 5.0}, {}, "clip_start", "past the end of the video"),
        ({"start": 0.1, "end": 0.05}, {}, "clip_end", "to must be a time after from"),
        ({"frame_steps": 0}, {}, "frame_steps", "frame steps must be between 1"),
        ({}, {"init": "image"}, "start", "no start image"),
        ({}, {"engine": "fast"}, "engine", "painted by the optimiser"),
    ],
)
def test_a_bad_video_job_is_refused_tied_to_its_field(video_uploads, video, settings, field, message):
    client, clip, style = video_uploads
    response = client.post("/api/jobs", json=video_body(clip, [style], video, **settings))
    assert response.status_code == 400, response.text
    assert message in response.json()["errors"][field]
    assert client.get("/api/jobs").json()["jobs"] == []


def test_a_video_is_no_style_mask_or_start_image(video_uploads):
    client, clip, style = video_uploads
    body = video_body(style, [clip]) | {"start": clip}
    body["styles"][0]["mask"] = clip
    errors = client.post("/api/jobs", json=body).json()["errors"]
    assert errors["style.0"] == "clip.mp4 is a video; a style is an image"
    assert errors["start"] == "clip.mp4 is a video; a start image is an image"
    assert errors["mask.0"] == "clip.mp4 is a video; a mask is an image"

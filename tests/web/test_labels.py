"""How runs are named (what was painted, then what sets a run apart) and what compare counts as a difference."""

from __future__ import annotations

from stylelab.recipes import load_recipe
from stylelab.web.labels import Painted, labels

from .conftest import GrowingRun


def painted(style="starry_night.jpg", content="tubingen.jpg", **settings) -> Painted:
    styles = (style,) if isinstance(style, str) else tuple(style)
    return Painted(content, styles, load_recipe("default", **settings).to_dict())


def test_a_label_names_the_styles_and_what_sets_a_run_apart_from_its_neighbours():
    runs = [
        painted(),
        painted("the_scream.png"),
        painted(style_weight=20),
        painted(["a.png", "b.png"]),
        painted(content="coffee.jpg", size=64),
    ]
    assert labels(runs) == [
        "starry_night on tubingen · style weight 5",
        "the_scream on tubingen",  # alone with these images: nothing more to say
        "starry_night on tubingen · style weight 20",
        "a + b on tubingen",
        "starry_night on coffee",
    ]
    many = [painted(), painted(size=64, steps=7, seed=3, lr=0.5)]
    assert labels(many)[1] == "starry_night on tubingen · steps 7, lr 0.5, size 64, +1"
    blended = [Painted("c.jpg", ("a.png", "b.png"), {}), Painted("c.jpg", ("a.png", "b.png"), {}, (1.0, 3.0))]
    assert labels(blended) == ["a + b on c · blend equal", "a + b on c · blend 1 : 3"]
    masked = Painted("c.jpg", ("a.png", "b.png"), {}, masks=("left.png", None))
    assert labels([masked]) == ["a + b (regions) on c"]
    presets = [painted(), Painted("tubingen.jpg", ("starry_night.jpg",), load_recipe("gatys").to_dict())]
    assert labels(presets)[1].startswith("starry_night on tubingen · gatys, ")


def studio_run(folder, styles, sha, recipe, status="done", steps=None):
    """A finished run recording its inputs as the studio does (upload names and content hashes)."""
    run = GrowingRun(folder, recipe, total=recipe.steps).start()
    run.task = {
        "content": {"name": "/x/inputs/content.jpg", "sha256": "c0", "upload": "coffee.jpg"},
        "styles": [
            {
                "images": [
                    {"name": f"/x/inputs/style_{i}.png", "sha256": h, "upload": n}
                    for i, (n, h) in enumerate(zip(styles, sha), 1)
                ]
            }
        ],
    }
    run.writer.task = run.task
    run.writer.extra = {"studio": {"names": {"content": "coffee.jpg", "styles": list(styles)}}}
    return run.step(steps if steps is not None else recipe.steps).finish(status)


def test_compare_counts_inputs_as_differences_and_shows_the_steps_a_cancelled_run_did(make_client, runs_dir):
    base = load_recipe("default", size=48, steps=6)
    studio_run(runs_dir / "a", ["mosaic.png"], ["m1"], base)
    studio_run(runs_dir / "b", ["waves.png"], ["w1"], base)
    studio_run(runs_dir / "c", ["mosaic copy.png"], ["m1"], base)  # the same image under another name
    studio_run(runs_dir / "d", ["mosaic.png"], ["m1"], base, "cancelled", steps=2)
    client = make_client(worker=False)
    titles = {r["key"]: r["title"] for r in client.get("/api/runs").json()["runs"]}
    assert titles["a"] == titles["d"] == "mosaic on coffee" and titles["b"] == "waves on coffee"

    data = client.get("/api/compare?run=a&run=b").json()
    assert data["differs"] == ["style images"]  # not "these runs share every setting"
    rows = {f["name"]: f for f in data["fields"]}
    assert rows["style images"]["shown"] == ["mosaic.png", "waves.png"] and rows["style images"]["input"]
    assert not rows["content image"]["differs"]
    assert client.get("/api/compare?run=a&run=c").json()["differs"] == []  # same pixels, other name

    data = client.get("/api/compare?run=a&run=d").json()
    assert data["differs"] == ["steps"]
    assert {f["name"]: f for f in data["fields"]}["steps"]["shown"] == ["6", "2 of 6"]
    assert [r["status"] for r in data["runs"]] == ["done", "cancelled"]
    listed = {r["key"]: r for r in client.get("/api/runs").json()["runs"]}
    assert (listed["d"]["steps"], listed["d"]["total"]) == (2, 6)

"""``stylelab.stylize``: paths, PIL images and arrays in; a Result out; callbacks and run folders."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import stylelab
from stylelab import stylize
from stylelab.errors import ImageError, RecipeError, StylelabError
from stylelab.events import Done, Started, Step

pytestmark = pytest.mark.slow

TINY = dict(size=32, steps=3, device="cpu")


def test_paths_pil_and_arrays_give_the_same_result(tiny_paths):
    content_path, style_path = tiny_paths
    from_paths = stylelab.stylize(content_path, style_path, **TINY)
    content_img, style_img = Image.open(content_path), Image.open(style_path)
    from_pil = stylelab.stylize(content_img, [style_img], **TINY)
    from_arrays = stylelab.stylize(np.asarray(content_img), np.asarray(style_img), **TINY)
    from_floats = stylelab.stylize(np.asarray(content_img) / 255.0, [np.asarray(style_img)], **TINY)
    reference = np.asarray(from_paths.image)
    for other in (from_pil, from_arrays, from_floats):
        assert np.array_equal(np.asarray(other.image), reference)


def test_result_carries_image_history_and_resolved_recipe(tiny_content, tiny_style):
    result = stylelab.stylize(tiny_content, tiny_style, style_weight=12, **TINY)
    assert isinstance(result, stylelab.Result)
    assert isinstance(result.image, Image.Image) and result.image.size == (32, 24)
    assert [row["step"] for row in result.history] == [1, 2, 3]
    assert result.recipe.style_weight == 12.0 and result.recipe.steps == 3
    assert result.recipe.name == "default" and result.recipe.optimizer == "lbfgs"  # the rest from the preset


def test_callback_sees_events_and_can_stop(tiny_content, tiny_style):
    seen = []

    def callback(event):
        seen.append(type(event))
        return isinstance(event, Step) and event.step == 2

    result = stylelab.stylize(tiny_content, tiny_style, callback=callback, **{**TINY, "steps": 10})
    assert seen[0] is Started and seen.count(Step) == 2
    assert result.status == "cancelled" and result.steps == 2


def test_several_callbacks_and_blended_styles(tiny_content, tiny_style):
    a, b = [], []
    result = stylelab.stylize(
        tiny_content, [tiny_style, tiny_content], style_blend_weights=[0.7, 0.3], callback=[a.append, b.append], **TINY
    )
    assert result.ok and a == b and isinstance(a[-1], Done)
    assert result.task.styles[0].weights == (0.7, 0.3)


def test_run_dir(tmp_path, tiny_content, tiny_style):
    result = stylelab.stylize(tiny_content, tiny_style, run_dir=tmp_path / "run", save_every=1, **TINY)
    run = tmp_path / "run"
    assert (run / "result.png").is_file() and (run / "process.png").is_file()
    assert len(list((run / "snapshots").iterdir())) == 4
    assert result.ok


def test_recipe_object_and_file(tmp_path, tiny_content, tiny_style):
    recipe = stylelab.load_recipe("default", optimizer="adam")
    assert stylelab.stylize(tiny_content, tiny_style, recipe, **TINY).recipe.optimizer == "adam"
    path = tmp_path / "mine.toml"
    path.write_text('base = "default"\noptimizer = "sgd"\n')
    result = stylelab.stylize(tiny_content, tiny_style, path, **TINY)
    assert result.recipe.optimizer == "sgd" and result.recipe.name == "mine"


def test_bad_inputs_raise_stylelab_errors(tmp_path, tiny_content, tiny_style):
    with pytest.raises(ImageError, match="no such file"):
        stylelab.stylize(tmp_path / "missing.jpg", tiny_style, **TINY)
    with pytest.raises(RecipeError, match="unknown setting 'stpes'"):
        stylelab.stylize(tiny_content, tiny_style, stpes=3)
    with pytest.raises(RecipeError, match="style_weight must be"):
        stylelab.stylize(tiny_content, tiny_style, style_weight=-1)
    assert issubclass(ImageError, stylelab.StylelabError)


# ------------------------------------------------------------------ inputs that are no image


NOT_IMAGES = {
    "None": None,
    "a list of ints": [1, 2, 3],
    "a dict": {"a": 1},
    "a number": 42,
    "a string array": np.array(["a", "b"]),
    "an object array": np.array([object(), object()]),
    "a complex array": np.zeros((8, 8), dtype=complex),
}


@pytest.mark.parametrize("case", NOT_IMAGES)
def test_non_images_are_a_stylelab_error_naming_the_argument(case, tiny_style):
    bad = NOT_IMAGES[case]
    with pytest.raises(StylelabError, match=r"^content\b") as info:
        stylize(bad, tiny_style, steps=1, size=32)
    assert len(str(info.value).splitlines()) == 1
    with pytest.raises(StylelabError, match=r"^style\b"):
        stylize(tiny_style, bad, steps=1, size=32)


def test_non_images_are_type_errors_too(tiny_style):
    with pytest.raises(TypeError):
        stylize(None, tiny_style, steps=1, size=32)


def test_bad_callbacks_and_run_dirs_are_refused_before_the_run(tiny_content, tiny_style, tmp_path):
    with pytest.raises(StylelabError, match="callback must be a function"):
        stylize(tiny_content, tiny_style, steps=1, size=32, callback=5)
    with pytest.raises(StylelabError, match="run_dir must be a folder path"):
        stylize(tiny_content, tiny_style, steps=1, size=32, run_dir=5)
    with pytest.raises(StylelabError, match="stop must be a threading.Event"):
        stylize(tiny_content, tiny_style, steps=1, size=32, stop="yes")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.txt").write_text("work")
    with pytest.raises(StylelabError, match="did not write"):
        stylize(tiny_content, tiny_style, steps=1, size=32, run_dir=tmp_path / "mine")
    assert (tmp_path / "mine" / "thesis.txt").read_text() == "work"

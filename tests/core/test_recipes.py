"""Recipes: validation with one-line messages, TOML round trip, presets, inheritance, overrides."""

from __future__ import annotations

import dataclasses

import pytest

from stylelab.errors import RecipeError
from stylelab.recipes import FIELDS, Recipe, load_recipe, preset_names, recipe_from_toml


def test_default_preset_loads_and_matches_the_dataclass_defaults():
    r = load_recipe("default")
    assert r.name == "default"
    assert r.optimizer == "lbfgs" and r.size == 512 and r.steps == Recipe().steps == 200
    assert "default" in preset_names()


@pytest.mark.parametrize(
    "changes, pattern",
    [
        ({"style_weight": -1.0}, "style_weight must be a finite number >= 0"),
        ({"content_weight": -0.1}, "content_weight must be a finite number >= 0"),
        ({"tv_weight": float("nan")}, "tv_weight must be a finite number >= 0"),
        ({"style_weight": float("inf")}, "style_weight must be a finite number >= 0"),
        ({"optimizer": "lbgfs"}, r"unknown optimizer 'lbgfs' \(did you mean 'lbfgs'\?\); choose from lbfgs, adam, sgd"),
        ({"optimizer": "adamw"}, r"did you mean 'adam'"),
        ({"pooling": "mean"}, "unknown pooling 'mean'"),
        ({"preserve_color": "yes"}, "unknown preserve_color 'yes'"),
        ({"normalization": "family-c"}, r"did you mean 'family-[ab]'"),
        ({"style_layers": ("relu3_1", "relu9_1")}, r"unknown layer 'relu9_1'; nearest: "),
        ({"content_layers": ("conv_99",)}, r"unknown layer 'conv_99'"),
        ({"style_layer_weights": (1.0, 2.0)}, "style_layer_weights has 2 values for 5 style layers"),
        ({"content_layer_weights": (1.0, 1.0)}, "content_layer_weights has 2 values for 1 content layers"),
        ({"style_layer_weights": (1, 1, 1, 1, -1)}, "style_layer_weights must be >= 0"),
        ({"style_layer_weights": (0, 0, 0, 0, 0)}, "with a positive sum"),
        ({"lr": 0.0}, "lr must be > 0"),
        ({"lr": -1.0}, "lr must be > 0"),
        ({"steps": -5}, "steps must be >= 0"),
        ({"steps": 2.5}, r"steps = 2.5 is not a valid int"),
        ({"steps": "many"}, r"steps = 'many' is not a valid int"),
        ({"steps": True}, r"is not a valid int"),
        ({"style_weight": "strong"}, r"style_weight = 'strong' is not a valid float"),
        ({"optimizer": 3}, r"optimizer = 3 is not a valid str"),
        ({"size": 8}, "size must be between 16 and 8192"),
        ({"size": 100_000}, "size must be between 16 and 8192"),
        ({"scales": 0}, "scales must be between 1 and 8"),
        ({"style_scale": 0.0}, "style_scale must be > 0"),
        ({"save_every": -1}, "save_every must be >= 0"),
        ({"style_layers": (), "content_layers": ()}, "at least one content or style layer"),
        ({"steps": None}, "steps needs a value"),
    ],
)
def test_invalid_values_are_one_line_errors(changes, pattern):
    with pytest.raises(RecipeError, match=pattern) as info:
        Recipe(**changes)
    assert "\n" not in str(info.value)


def test_replace_rejects_unknown_settings_with_a_suggestion():
    with pytest.raises(RecipeError, match=r"unknown setting 'style_wieght' \(did you mean 'style_weight'\?\)"):
        Recipe().replace(style_wieght=3)


def test_values_are_coerced_from_toml_cli_and_json_shapes():
    r = Recipe(
        steps="40",
        style_weight=3,
        style_layers="relu1_1, relu2_1 relu_5",
        style_layer_weights="1 0.5 0.25",
        content_layer_weights=0.7,
        lr="0.5",
    )
    assert r.steps == 40 and isinstance(r.steps, int)
    assert r.style_weight == 3.0 and isinstance(r.style_weight, float)
    assert r.style_layers == ("relu1_1", "relu2_1", "relu_5")
    assert r.resolved_style_layers == ("relu1_1", "relu2_1", "relu3_1")
    assert r.style_layer_weights == (1.0, 0.5, 0.25)
    assert r.content_layer_weights == (0.7,)
    assert r.lr == 0.5
    assert Recipe(steps=40.0).steps == 40


def test_layers_are_kept_as_written_and_resolved_on_demand():
    r = Recipe(content_layers=["relu_10"], style_layers=["block1_conv1", "features.6", "pool_4"])
    assert r.content_layers == ("relu_10",)  # the user's own words survive a round trip
    assert r.resolved_content_layers == ("relu4_2",)
    assert r.resolved_style_layers == ("conv1_1", "relu2_1", "pool2")


def test_toml_round_trip_keeps_every_field():
    r = Recipe(
        name="mine",
        description="a test",
        steps=42,
        optimizer="adam",
        lr=0.03,
        style_weight=12.5,
        tv_weight=0.001,
        content_layers=("relu_10",),
        style_layers=("relu1_1", "relu3_1"),
        style_layer_weights=(1.0, 0.25),
        style_loss="swd",
        swd_directions=16,
        temporal_weight=3.0,
        init="noise",
        seed=7,
        preserve_color="luminance",
        scales=2,
        normalization="family-b",
    )
    back = recipe_from_toml(r.to_toml())
    assert back == r
    assert back.diff(r) == {}
    # None values are left out of TOML (it has no null) and come back as None.
    assert recipe_from_toml(Recipe().to_toml()) == Recipe()


def test_diff_lists_changed_settings_only():
    a, b = Recipe(), Recipe(style_weight=10, steps=5, name="other")
    assert a.diff(b) == {"style_weight": (5.0, 10.0), "steps": (200, 5)}


def test_recipe_file_with_base_inherits_and_overrides(tmp_path):
    parent = tmp_path / "parent.toml"
    parent.write_text('base = "default"\noptimizer = "adam"\nsteps = 77\ndescription = "parent"\n')
    child = tmp_path / "child.toml"
    child.write_text(f'base = "{parent}"\nsteps = 12\nstyle_weight = 20\n')
    r = load_recipe(child)
    assert r.name == "child"
    assert r.optimizer == "adam"  # from parent
    assert r.steps == 12  # child wins
    assert r.style_weight == 20.0
    assert r.size == 512  # from default
    assert r.description == "parent"


def test_overrides_win_and_none_is_ignored(tmp_path):
    r = load_recipe("default", steps=10, optimizer=None, style_layers=["relu_1"])
    assert r.steps == 10 and r.optimizer == "lbfgs" and r.style_layers == ("relu_1",)
    assert load_recipe(r, size=64).size == 64
    assert load_recipe(r) is r


def test_unknown_key_in_a_file_names_the_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("stpes = 10\n")
    with pytest.raises(RecipeError, match=r"bad.toml: unknown setting 'stpes' \(did you mean 'steps'\?\)"):
        load_recipe(path)


def test_invalid_toml_is_one_line(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("steps = = 3\n")
    with pytest.raises(RecipeError, match="is not valid TOML") as info:
        load_recipe(path)
    assert "\n" not in str(info.value)


def test_unknown_preset_and_missing_file():
    with pytest.raises(RecipeError, match=r"unknown recipe 'defualt' \(did you mean 'default'\?\)"):
        load_recipe("defualt")
    with pytest.raises(RecipeError, match="recipe file not found"):
        load_recipe("/no/such/recipe.toml")


def test_every_preset_is_valid_and_documented():
    for name in preset_names():
        r = load_recipe(name)
        assert r.description, f"preset {name} needs a description"


def test_every_field_has_help_text():
    for f in dataclasses.fields(Recipe):
        assert f.metadata.get("help"), f.name
    assert set(FIELDS) == {f.name for f in dataclasses.fields(Recipe)}


def test_recipes_are_frozen_and_hashable():
    r = Recipe()
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.steps = 3  # type: ignore[misc]
    assert hash(r) == hash(Recipe())


def test_the_default_preset_states_the_dataclass_defaults():
    """default.toml and Recipe() must not drift apart: the CLI's help shows Recipe()'s values."""
    preset, plain = load_recipe("default"), Recipe()
    assert preset.diff(plain) == {}


def test_lr_help_names_each_optimisers_default():
    from stylelab.optimizers import DEFAULT_LR

    for name, lr in DEFAULT_LR.items():
        assert f"{name} {lr:g}" in FIELDS["lr"].metadata["help"]


def test_a_base_that_leads_back_to_itself_is_one_line(tmp_path):
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text(f'base = "{b}"\nsteps = 3\n')
    b.write_text(f'base = "{a}"\n')
    (tmp_path / "self.toml").write_text(f'base = "{tmp_path / "self.toml"}"\n')
    for path in (a, tmp_path / "self.toml"):
        with pytest.raises(RecipeError, match="leads back to itself"):
            load_recipe(path)


def test_recipe_files_that_are_not_text_or_not_toml_files(tmp_path):
    binary = tmp_path / "x.toml"
    binary.write_bytes(b"\xff\xfe\x00steps = 3")
    with pytest.raises(RecipeError, match="not UTF-8"):
        load_recipe(binary)
    other = tmp_path / "passwd"
    other.write_text("steps = 3\n")
    with pytest.raises(RecipeError, match="unknown recipe"):  # only .toml files are read as recipes
        load_recipe(other)


@pytest.mark.parametrize(
    ("changes", "pattern"),
    [
        ({"seed": 2**64}, "seed must be between"),
        ({"seed": -1}, "seed must be between"),
        ({"device": "meta"}, "unknown device"),
        ({"device": "xpu"}, "unknown device"),
        ({"style_scale": 100}, "style_scale must be at most"),
        ({"size": 4096, "style_scale": 4}, "over the limit of 8192"),
        ({"steps": float("inf")}, "not a valid int"),
        ({"style_layers": ("relu1_1",) * 70}, "at most 64"),
    ],
)
def test_settings_that_could_not_run_are_refused(changes, pattern):
    with pytest.raises(RecipeError, match=pattern):
        Recipe(**changes)


def test_stored_recipes_are_checked(tmp_path):
    from stylelab.recipes import recipe_from_dict

    with pytest.raises(RecipeError, match="unknown setting 'stepz'"):
        recipe_from_dict({"stepz": 3}, "run.json")
    with pytest.raises(RecipeError, match="not a table"):
        recipe_from_dict(["steps"], "run.json")
    # A run folder's recipe.toml is read as it is: a base there is not followed to other files.
    (tmp_path / "secret.toml").write_text("steps = 7\n")
    with pytest.raises(RecipeError, match="unknown setting 'base'"):
        recipe_from_toml(f'base = "{tmp_path / "secret.toml"}"\n')

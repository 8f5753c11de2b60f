"""Planning a sweep: expansion, names, experiment files, --set (no network, no runs)."""

from __future__ import annotations

import pytest

from stylelab.errors import ImageError, StylelabError
from stylelab.experiments import build, format_value, load, parse_set, run_name, slug


def _exp(inputs, **kw):
    args = dict(name="t", contents=[str(inputs / "content.png")], styles=[str(inputs / "styles")], recipes=["default"])
    args.update(kw)
    return build(**args)


def test_expansion_is_the_full_product_in_batchable_order(inputs):
    exp = _exp(inputs, recipes=["default", "gatys"], grid={"optimizer": ["adam", "lbfgs"], "style_weight": [1, 10]})
    specs = exp.plan()
    assert len(specs) == 1 * 3 * 2 * 2 * 2
    assert len({s.name for s in specs}) == len(specs)
    # Styles vary fastest, so runs differing only in style are neighbours (one batch).
    assert [s.point["style"] for s in specs[:3]] == ["hubble", "mosaic", "waves"]
    assert len({s.recipe for s in specs[:3]}) == 1
    first = specs[0]
    assert first.name == "content__hubble__default__optimizer-adam__style_weight-1"
    assert first.recipe.optimizer == "adam" and first.recipe.style_weight == 1.0
    assert exp.varying == ["style", "recipe", "optimizer", "style_weight"]


def test_names_are_stable_and_safe(inputs):
    a = [s.name for s in _exp(inputs, grid={"style_weight": ["1e4", 100000.0]}).plan()]
    b = [s.name for s in _exp(inputs, grid={"style_weight": [1e4, "1e5"]}).plan()]
    assert a == b  # the same value however it was written
    assert "content__mosaic__default__style_weight-10000" in a
    assert "content__mosaic__default__style_weight-100000" in a
    assert slug("Starry Night (1889)/v2") == "Starry-Night-1889-v2"
    assert slug("///") == "x"
    assert format_value(1e6) == "1e6" and format_value(1e-5) == "1e-5" and format_value(0.001) == "0.001"
    assert format_value(("relu1_1", "relu2_1")) == "relu1_1+relu2_1"


def test_long_names_get_a_hash_and_stay_distinct():
    long = {"content": "c" * 80, "style": "s" * 80, "recipe": "r"}
    a = run_name(long, [])
    b = run_name({**long, "style": "s" * 79 + "t"}, [])
    assert len(a) <= 120 and len(b) <= 120
    assert a != b


def test_same_stem_in_two_folders_is_disambiguated(tmp_path, inputs):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "x.png").write_bytes((inputs / "styles" / "waves.png").read_bytes())
    exp = _exp(inputs, styles=[str(tmp_path / "a" / "x.png"), str(tmp_path / "b" / "x.png")])
    names = [s.name for s in exp.plan()]
    assert len(set(names)) == 2 and all("__x-" in n for n in names)


def test_parse_set():
    grid = parse_set(["optimizer=adam,lbfgs", "style-weight=1e4", "style_layers=relu1_1+relu2_1,relu3_1"])
    assert grid == {
        "optimizer": ["adam", "lbfgs"],
        "style_weight": ["1e4"],
        "style_layers": ["relu1_1 relu2_1", "relu3_1"],
    }
    with pytest.raises(StylelabError, match="KEY=VALUE"):
        parse_set(["optimizer"])
    with pytest.raises(StylelabError, match="did you mean 'style_weight'"):
        parse_set(["stlye_weight=1"])


def test_bad_values_are_refused_before_any_run(inputs):
    with pytest.raises(StylelabError, match="optimizer"):
        _exp(inputs, grid={"optimizer": ["adam", "adamw"]})
    with pytest.raises(StylelabError, match="both set and varied"):
        _exp(inputs, settings={"steps": 3}, grid={"steps": [1, 2]})
    with pytest.raises(ImageError, match="no such style"):
        _exp(inputs, styles=[str(inputs / "missing.png")])
    with pytest.raises(StylelabError, match="unknown recipe"):
        _exp(inputs, recipes=["gatyss"])


def test_experiment_file_with_relative_paths_inline_recipes_and_overrides(tmp_path, inputs):
    (tmp_path / "mine.toml").write_text('base = "default"\nname = "mine"\nstyle_weight = 7.0\n')
    (tmp_path / "exp.toml").write_text(
        f"""
content = "{inputs / "content.png"}"
styles = ["{inputs / "styles" / "waves.png"}"]
recipes = [
    "mine.toml",
    {{ base = "seed-nst-v3", name = "v3-lbfgs", optimizer = "lbfgs" }},
    {{ base = "default", steps = 2 }},
]
[set]
size = 32
[grid]
seed = [1, 2]
"""
    )
    exp = load(tmp_path / "exp.toml", settings={"steps": 4}, grid={"size": ["48"]})
    assert exp.name == "exp"
    labels = [label for label, _ in exp.recipes]
    assert labels == ["mine", "v3-lbfgs", "default+steps-2"]
    specs = exp.plan()
    assert len(specs) == 3 * 2
    assert all(s.recipe.steps == 4 and s.recipe.size == 48 for s in specs)  # command line wins over the file
    mine = next(s for s in specs if s.point["recipe"] == "mine")
    assert mine.recipe.style_weight == 7.0
    v3 = next(s for s in specs if s.point["recipe"] == "v3-lbfgs")
    assert v3.recipe.optimizer == "lbfgs" and v3.recipe.style_layer_weights == (1.0, 0.75, 0.2, 0.2, 0.2)
    # The folder's copy reloads to the same plan.
    (tmp_path / "copy.toml").write_text(exp.to_toml())
    assert [s.name for s in load(tmp_path / "copy.toml").plan()] == [s.name for s in specs]


def test_unknown_keys_in_experiment_file(tmp_path):
    (tmp_path / "e.toml").write_text('contents = ["x.png"]\n')
    with pytest.raises(StylelabError, match="unknown key 'contents'"):
        load(tmp_path / "e.toml")


def test_a_changed_optimizer_gets_its_own_default_lr(inputs):
    exp = _exp(inputs, recipes=["seed-nst-v3"], grid={"optimizer": ["adam", "lbfgs", "sgd"]})
    by_opt = {s.recipe.optimizer: s.recipe.lr for s in exp.plan()}
    assert by_opt == {"adam": 0.0226, "lbfgs": None, "sgd": None}
    exp = _exp(inputs, recipes=["seed-nst-v3"], settings={"lr": 0.5}, grid={"optimizer": ["lbfgs"]})
    assert exp.plan()[0].recipe.lr == 0.5
    inline = _exp(inputs, recipes=[{"base": "seed-nst-v3", "name": "x", "optimizer": "lbfgs", "lr": ""}])
    assert inline.plan()[0].recipe.lr is None


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("content = 5\nstyles = ['x.png']", "content must be"),
        ("content = ['c.png']\nstyles = 5", "styles must be"),
        ("content = ['c.png']\nstyles = ['s.png']\nset = 'x'", "set must be a table"),
        ("content = ['c.png']\nstyles = ['s.png']\nout = 5", "out must be a text"),
        ("content = ['c.png']\nstyles = ['s.png']\nname = []", "name must be a text"),
        ("content = ['c.png']\nstyles = ['s.png']\nrecipes = 5", "recipes must be"),
        ("content = ['c.png']\nstyles = ['s.png']\ngrid = 3", "grid must be a table"),
        ("content = ['c.png']\nstyles = ['s.png']\n[grid.steps]\na = 1", "grid steps must be a list"),
    ],
)
def test_experiment_files_with_wrong_types_are_one_line(tmp_path, text, words):
    path = tmp_path / "exp.toml"
    path.write_text(text + "\n")
    with pytest.raises(StylelabError, match=words) as info:
        load(path)
    assert len(str(info.value).splitlines()) == 1


# ------------------------------------------------------------------ --budget


def test_a_budget_scales_each_recipes_own_steps_and_snapshots(inputs):
    exp = _exp(inputs, recipes=["gatys", "seed-nst-v1", "seed-pts-v2"], budget=0.1)
    by_recipe = {s.point["recipe"]: (s.recipe.steps, s.recipe.save_every) for s in exp.plan()}
    assert by_recipe == {"gatys": (100, 0), "seed-nst-v1": (500, 100), "seed-pts-v2": (300, 30)}
    # Their order is kept, where one --steps would make them all equal.
    tiny = _exp(inputs, recipes=["gatys", "seed-nst-v1"], budget=0.0001)
    assert {s.recipe.steps for s in tiny.plan()} == {1} and {s.recipe.save_every for s in tiny.plan()} <= {0, 1}
    # Names stay the recipes' (the folder tells budgets apart, not the run names).
    full = _exp(inputs, recipes=["gatys", "seed-nst-v1", "seed-pts-v2"])
    assert [s.name for s in exp.plan()] == [s.name for s in full.plan()]


def test_a_budget_with_a_steps_setting_or_out_of_range_is_refused(inputs):
    with pytest.raises(StylelabError, match="--budget scales each recipe's own steps"):
        _exp(inputs, settings={"steps": 50}, budget=0.5)
    with pytest.raises(StylelabError, match="--budget scales each recipe's own steps"):
        _exp(inputs, grid={"steps": [10, 20]}, budget=0.5)
    for bad in (0, -1, 1000, float("nan"), True):
        with pytest.raises(StylelabError, match="--budget must be a number above 0"):
            _exp(inputs, budget=bad)


def test_a_budget_in_an_experiment_file_and_in_the_folders_copy(tmp_path, inputs):
    path = tmp_path / "exp.toml"
    path.write_text(
        f'content = "{inputs / "content.png"}"\nstyles = ["{inputs / "styles" / "waves.png"}"]\n'
        'recipes = ["gatys"]\nbudget = 0.25\n'
    )
    exp = load(path)
    assert exp.budget == 0.25 and exp.plan()[0].recipe.steps == 250
    assert load(path, budget=0.5).plan()[0].recipe.steps == 500  # the command line wins
    (tmp_path / "copy.toml").write_text(exp.to_toml())
    assert load(tmp_path / "copy.toml").plan()[0].recipe == exp.plan()[0].recipe
    path.write_text(path.read_text().replace("0.25", '"quarter"'))
    with pytest.raises(StylelabError, match="budget must be a number"):
        load(path)


# ------------------------------------------------------------------ values far from a recipe's own


def test_values_far_from_a_recipes_own_are_named_with_their_runs(inputs):
    from stylelab.unusual import unusual_values

    exp = _exp(inputs, recipes=["default", "gatys"], grid={"style_weight": [2, 10]})
    found = unusual_values(exp)
    assert [(u.recipe, u.key, u.value, u.own, u.normalization) for u in found] == [
        ("gatys", "style_weight", 2.0, 100.0, "jcjohnson")  # default's own is 5: 2 and 10 are near it
    ]
    assert len(found[0].runs) == 3 and all("__gatys__style_weight-2" in name for name in found[0].runs)
    assert str(found[0]) == "style_weight 2 for gatys (its own: 100, jcjohnson units; 3 runs)"
    # A setting for every run counts too; values near each recipe's own, or settings not
    # given, say nothing.
    assert [u.value for u in unusual_values(_exp(inputs, recipes=["gatys"], settings={"style_weight": 1e4}))] == [1e4]
    assert unusual_values(_exp(inputs, recipes=["default", "gatys"], grid={"optimizer": ["adam", "lbfgs"]})) == []
    assert unusual_values(_exp(inputs, recipes=["gatys"], grid={"style_weight": [50, 200]})) == []


def test_a_step_size_is_compared_with_the_optimisers_own(inputs):
    from stylelab.unusual import unusual_values

    # seed-nst-v3's own lr is 0.0226 (Adam); 1 is far above it, 0.01 is near.
    found = unusual_values(_exp(inputs, recipes=["seed-nst-v3"], grid={"lr": [0.01, 1]}))
    assert [(u.value, u.own) for u in found] == [(1.0, 0.0226)]
    # Unset, the lr is the optimiser's own (default: L-BFGS at 1).
    assert unusual_values(_exp(inputs, recipes=["default"], grid={"lr": [0.5, 2]})) == []

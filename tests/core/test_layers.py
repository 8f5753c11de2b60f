"""Layer names in every convention, receptive fields, and ``stylelab layers``."""

from __future__ import annotations

import json

import pytest

from stylelab import layers
from stylelab.cli import main
from stylelab.errors import RecipeError


@pytest.mark.parametrize(
    "names, canonical",
    [
        (("conv4_2", "conv_10", "block4_conv2", "features.21", "21", "CONV4_2"), "conv4_2"),
        (("relu4_2", "relu_10", "block4_relu2", "features.22"), "relu4_2"),
        (("relu3_1", "relu_5", "block3_relu1", "features.11"), "relu3_1"),
        (("relu4_1", "relu_9", "block4_relu1", "features.20"), "relu4_1"),
        (("relu5_1", "relu_13", "block5_relu1", "features.29"), "relu5_1"),
        (("relu1_1", "relu_1", "block1_relu1", "features.1"), "relu1_1"),
        (("conv1_1", "conv_1", "block1_conv1", "features.0", "0"), "conv1_1"),
        (("conv_7", "conv3_3", "block3_conv3", "features.14"), "conv3_3"),
        (("pool1", "pool_2", "block1_pool", "features.4"), "pool1"),
        (("pool2", "pool_4", "block2_pool", "features.9"), "pool2"),
        (("pool4", "pool_12", "block4_pool", "features.27"), "pool4"),
        (("pool5", "pool_16", "block5_pool", "features.36"), "pool5"),
    ],
)
def test_every_convention_resolves_to_the_same_layer(names, canonical):
    assert {layers.resolve(n) for n in names} == {canonical}


def test_the_network_has_vggs_37_stages_in_torchvisions_order():
    assert len(layers.LAYERS) == 37
    assert [layer.index for layer in layers.LAYERS] == list(range(37))
    assert layers.CONV_NAMES[0] == "conv1_1" and layers.CONV_NAMES[-1] == "conv5_4"
    assert len(layers.CONV_NAMES) == 16
    # torchvision's vgg19().features: the convolutions sit at these indices.
    assert [layer.index for layer in layers.LAYERS if layer.kind == "conv"] == [
        0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34,
    ]  # fmt: skip


def test_every_alias_is_unique():
    seen = {}
    for layer in layers.LAYERS:
        for alias in (layer.name, *layer.aliases):
            assert alias not in seen, f"{alias} names both {seen[alias]} and {layer.name}"
            seen[alias] = layer.name


@pytest.mark.parametrize(
    "name, nearest",
    [("relu3_5", "relu3_4"), ("conv_17", "conv_1"), ("block4_conv9", "block4_conv"), ("relu4-2", "relu4_2")],
)
def test_unknown_name_is_one_line_naming_the_nearest(name, nearest):
    with pytest.raises(RecipeError) as info:
        layers.resolve(name)
    message = str(info.value)
    assert "\n" not in message
    assert repr(name) in message
    assert "nearest" in message and nearest in message


def test_unknown_pool_number_explains_the_tutorial_numbering():
    with pytest.raises(RecipeError, match="pool_2, pool_4, pool_8, pool_12, pool_16"):
        layers.resolve("pool_3")


@pytest.mark.parametrize(
    "name, rf",
    [
        # Receptive fields of VGG: 3x3 convs add 2*stride, 2x2 pools add stride and double it.
        ("conv1_1", 3),
        ("conv1_2", 5),
        ("pool1", 6),
        ("conv2_1", 10),
        ("pool2", 16),
        ("conv3_1", 24),
        ("conv3_4", 48),
        ("pool3", 52),
        ("conv4_1", 68),
        ("conv4_2", 84),
        ("relu4_2", 84),
        ("pool4", 124),
        ("conv5_1", 156),
        ("pool5", 268),  # the well-known 268 px of VGG19
    ],
)
def test_receptive_fields(name, rf):
    assert layers.BY_NAME[name].receptive_field == rf


def test_feature_shapes():
    assert layers.feature_shape("relu1_1", 100, 60) == (64, 100, 60)
    assert layers.feature_shape("pool1", 100, 60) == (64, 50, 30)
    assert layers.feature_shape("relu_10", 512, 384) == (512, 64, 48)
    assert layers.feature_shape("pool5", 512, 512) == (512, 16, 16)


def test_depth_of_a_layer_set():
    assert layers.depth(["relu1_1", "relu4_2", "conv2_1"]) == 22
    assert layers.depth([]) == -1


def test_layers_command_prints_the_table(capsys):
    assert main(["layers", "--size", "256"]) == 0
    text = capsys.readouterr().out
    for expected in ("relu4_2", "relu_10", "block4_conv2", "features.21", "512x32x32", "268"):
        assert expected in text


def test_layers_command_json(capsys):
    assert main(["layers", "--json", "--size", "64"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 37
    row = next(r for r in rows if r["name"] == "relu3_1")
    assert row == {
        "name": "relu3_1",
        "tutorial": "relu_5",
        "keras": "block3_relu1",
        "torchvision": "features.11",
        "shape": "256x16x16",
        "receptive_field": 24,
    }


def test_stages_through_walks_the_network_to_the_deepest_layer_named():
    stages = list(layers.stages_through(["relu1_1", "block3_conv1"], 64, 48))  # any naming
    assert [layer.name for layer, *_ in stages][-1] == "conv3_1"
    assert [layer.name for layer, *_ in stages][:3] == ["conv1_1", "relu1_1", "conv1_2"]
    assert all((c, h, w) == layers.feature_shape(layer.name, 64, 48) for layer, c, h, w in stages)
    assert stages[-1][1:] == (256, 16, 12)

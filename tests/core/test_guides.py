"""Region masks: loading, colour labels, carrying them down to each layer, the uncovered background."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from stylelab import guides, layers, vgg
from stylelab import style_losses as sl
from stylelab.errors import ImageError, RecipeError

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
RED, GREEN, BLUE = (220, 30, 30), (20, 200, 40), (30, 40, 210)


def save(tmp_path, name, array, mode=None):
    path = tmp_path / name
    Image.fromarray(np.asarray(array, dtype=np.uint8), mode).save(path)
    return path


def labels(h=30, w=40):
    """Blue everywhere, a red block top left, a green band at the bottom: first seen red, blue, green."""
    a = np.zeros((h, w, 3), np.uint8)
    a[:] = BLUE
    a[: h // 2, : w // 2] = RED
    a[2 * h // 3 :] = GREEN
    return a


# ------------------------------------------------------------------ greyscale masks


def test_masks_are_resized_to_the_content_and_keep_soft_edges(tmp_path):
    a = np.zeros((60, 80), np.uint8)
    a[:, 40:] = 255
    a[:, 30:40] = 128  # a soft edge
    paths = [save(tmp_path, "right.png", a), save(tmp_path, "left.png", 255 - a)]
    masks = guides.load_masks(paths, (30, 40), count=2)
    assert masks.shape == (2, 1, 30, 40) and masks.dtype == torch.float32
    assert masks.min() >= 0 and masks.max() <= 1
    right = masks[0, 0]
    assert torch.equal(right, right[:1].expand(30, -1))  # every row alike, as drawn
    assert torch.equal(right[0, :14], torch.zeros(14)) and torch.equal(right[0, 21:], torch.ones(19))
    assert torch.allclose(right[0, 16:19], torch.full((3,), 128 / 255), atol=1e-6)  # the grey band, halved
    assert torch.allclose(masks[0] + masks[1], torch.ones(1, 30, 40), atol=1e-6)


def test_colour_and_sixteen_bit_masks_read_as_their_brightness(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[:, 4:] = 255
    deep = (np.arange(64).reshape(8, 8) * 1000).astype(np.uint16)
    deep_path = tmp_path / "deep.png"
    Image.fromarray(deep).save(deep_path)
    masks = guides.load_masks([save(tmp_path, "rgb.png", rgb), deep_path], (8, 8))
    assert torch.equal(masks[0, 0, :, :4], torch.zeros(8, 4)) and torch.equal(masks[0, 0, :, 4:], torch.ones(8, 4))
    assert masks[1, 0, 0, 0] == 0 and masks[1, 0, -1, -1] == pytest.approx(63000 / 65535, abs=1 / 255)


def test_transparent_pixels_are_not_covered(tmp_path):
    a = np.zeros((10, 10, 4), np.uint8)
    a[..., :3] = 255  # white strokes everywhere, but opaque only on the left
    a[:, :5, 3] = 255
    masks = guides.load_masks(save(tmp_path, "strokes.png", a, "RGBA"), (10, 10))
    assert torch.equal(masks[0, 0, :, :5], torch.ones(10, 5)) and torch.equal(masks[0, 0, :, 5:], torch.zeros(10, 5))


def test_tensor_masks_keep_their_values():
    m = torch.rand(12, 10, generator=torch.Generator().manual_seed(0))
    assert torch.equal(guides.load_masks([m, m[None]], (12, 10))[1, 0], m)
    assert guides.load_masks(torch.stack([m, m])[:, None], (6, 5)).shape == (2, 1, 6, 5)


def test_mask_errors(tmp_path):
    white = save(tmp_path, "white.png", np.full((8, 8), 255))
    with pytest.raises(RecipeError, match="3 style-masks for 2 styles; give one style-mask per style"):
        guides.load_masks([white] * 3, (8, 8), count=2, what="style-mask")
    with pytest.raises(ImageError, match=r"mask 2 \(.*black.png\) is black everywhere"):
        guides.load_masks([white, save(tmp_path, "black.png", np.zeros((8, 8)))], (8, 8))
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    with pytest.raises(ImageError, match="not an image"):
        guides.load_masks([text], (8, 8))
    with pytest.raises(ImageError, match="no such file"):
        guides.load_masks([tmp_path / "missing.png"], (8, 8))
    with pytest.raises(ImageError, match="HxW"):
        guides.load_masks([torch.rand(3, 8, 8)], (8, 8))
    with pytest.raises(ImageError, match="in 0..1"):
        guides.load_masks([torch.full((8, 8), 2.0)], (8, 8))
    with pytest.raises(RecipeError, match="no masks given"):
        guides.load_masks([], (8, 8))


# ------------------------------------------------------------------ colour labels


def test_label_colours_in_order_of_first_appearance(tmp_path):
    masks = guides.masks_from_labels(save(tmp_path, "labels.png", labels()), count=3)
    assert masks.shape == (3, 1, 30, 40)
    red, blue, green = masks[:, 0]
    assert red[0, 0] == 1 and blue[0, -1] == 1 and green[-1, 0] == 1
    assert float(red.sum()) == 15 * 20 and float(green.sum()) == 10 * 40
    assert torch.equal(masks.sum(0), torch.ones(1, 30, 40))


def test_given_colours_choose_and_order_the_styles(tmp_path):
    path = save(tmp_path, "labels.png", labels())
    auto = guides.masks_from_labels(path)
    given = guides.masks_from_labels(path, ["#1ec828", (220, 30, 30)], count=2)  # green (nearly), red; not blue
    assert torch.equal(given[0], auto[2]) and torch.equal(given[1], auto[0])
    assert torch.equal(guides.background(given), auto[1:2])  # the unlisted colour keeps the content
    with pytest.raises(RecipeError, match="'#ffff00' does not appear"):
        guides.masks_from_labels(path, ["#ffff00", RED])
    with pytest.raises(RecipeError, match="write it as #rrggbb"):
        guides.masks_from_labels(path, ["reddish"])
    with pytest.raises(RecipeError, match="3 colours in .* for 2 styles"):
        guides.masks_from_labels(path, count=2)


def test_jpeg_labels_and_resizing(tmp_path):
    path = tmp_path / "labels.jpg"
    Image.fromarray(labels(60, 80)).save(path, quality=70)
    clean = guides.masks_from_labels(save(tmp_path, "labels.png", labels(60, 80)))
    noisy = guides.masks_from_labels(path, count=3)
    assert (noisy == clean).float().mean() > 0.97
    small = guides.masks_from_labels(path, hw=(15, 20))
    assert small.shape == (3, 1, 15, 20) and torch.allclose(small.sum(0), torch.ones(1, 15, 20), atol=1e-5)
    assert ((small > 0.01) & (small < 0.99)).any()  # soft edges where regions meet


def test_a_photo_is_not_a_label_image(tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, (40, 40, 3))
    with pytest.raises(ImageError, match="not a label image"):
        guides.masks_from_labels(save(tmp_path, "photo.png", noise))


# ------------------------------------------------------------------ layer resolution, background


@pytest.mark.parametrize("layer", [*STYLE_LAYERS, "conv4_2", "pool1", "pool5", "relu_10", "block3_conv1"])
def test_masks_at_a_layers_resolution_have_its_shape(layer):
    mask = torch.rand(2, 1, 37, 53, generator=torch.Generator().manual_seed(0))
    assert guides.to_layer(mask, layer).shape[-2:] == layers.feature_shape(layer, 37, 53)[1:]
    assert guides.layer_hw(layer, (37, 53)) == layers.feature_shape(layer, 37, 53)[1:]


def test_masks_match_the_networks_own_feature_maps():
    net = vgg.build(STYLE_LAYERS)
    with torch.no_grad():
        feats = net(torch.rand(1, 3, 37, 53), STYLE_LAYERS)
    carried = guides.to_layers(torch.ones(3, 1, 37, 53), STYLE_LAYERS)
    for name in STYLE_LAYERS:
        assert carried[name].shape[-2:] == feats[name].shape[-2:]


def test_each_value_is_the_share_of_its_window():
    mask = torch.rand(1, 1, 37, 53, generator=torch.Generator().manual_seed(1))
    for layer, window in (("relu1_1", 1), ("relu2_1", 2), ("relu3_1", 4), ("relu4_1", 8), ("relu5_1", 16)):
        h, w = 37 // window, 53 // window  # floored at each pool: the same as flooring once here
        blocks = mask[..., : h * window, : w * window].reshape(1, 1, h, window, w, window).mean(dim=(3, 5))
        assert torch.allclose(guides.to_layer(mask, layer), blocks, atol=1e-6)
    assert torch.allclose(guides.to_layer(mask, "pool1"), F.avg_pool2d(mask, 2))


def test_a_mask_for_another_input_size_is_resized_first():
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., :32] = 1
    small = guides.to_layer(mask, "relu2_1", hw=(32, 32))
    assert small.shape == (1, 1, 16, 16) and torch.equal(small[..., :7], torch.ones(1, 1, 16, 7))
    assert torch.equal(small[..., 9:], torch.zeros(1, 1, 16, 7))
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        guides.to_layer(torch.ones(3, 8, 8), "relu1_1")


def test_background_is_what_no_mask_covers():
    masks = torch.zeros(2, 1, 4, 6)
    masks[0, :, :, :3] = 1
    masks[1, :, :, 2:4] = 0.5  # overlaps the first at column 2
    bg = guides.background(masks)
    assert bg.shape == (1, 1, 4, 6)
    assert torch.equal(bg[0, 0, 0], torch.tensor([0, 0, 0, 0.5, 1, 1]))


def test_masks_carried_down_work_with_every_style_loss():
    """End to end on random features: the region's own style, from a label image's masks at relu3_1."""
    masks = guides.masks_from_labels(labels(32, 48))
    small = guides.to_layer(masks, "relu3_1")  # (3, 1, 8, 12)
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(1, 6, 8, 12, generator=gen)
    for kind in sl.STYLE_LOSSES:
        d = sl.random_directions(6, 8, torch.Generator().manual_seed(1))
        own = [sl.stats(kind, features, small[k : k + 1]) for k in range(3)]
        for k in range(3):
            assert float(sl.loss(kind, features, own[k], small[k : k + 1], directions=d)) < 1e-6
        other = float(sl.loss(kind, features, sl.stats(kind, features * 2 + 1), small[:1], directions=d))
        assert other > 0.05

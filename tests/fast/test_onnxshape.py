"""The wire-format edit: byte-faithful, and the edited transformer equals the original at its declared size."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from stylelab.errors import WeightsError
from stylelab.fast import files, onnxshape

OUTPUT = "transformer/expand/conv3/conv/Sigmoid"
DIMS = {"content_image": {1: "height", 2: "width"}, OUTPUT: {1: "height", 2: "width"}}


@pytest.fixture(scope="module")
def transform_bytes() -> bytes:
    return files.read_models().transform


def _session(model: bytes):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


def test_an_identity_edit_reproduces_the_file_byte_for_byte(transform_bytes):
    def same(payload, _):
        return payload

    graph = onnxshape._rewrite(transform_bytes, onnxshape._MODEL_GRAPH, same)
    assert graph == transform_bytes


def test_the_edited_model_declares_symbolic_sizes(transform_bytes):
    sess = _session(onnxshape.symbolic_dims(transform_bytes, DIMS))
    content, vector = sess.get_inputs()
    assert content.shape == [1, "height", "width", 3]
    assert vector.shape == [1, 1, 1, 100]  # not named: left as it was
    assert sess.get_outputs()[0].shape == [1, "height", "width", 3]
    feed = {content.name: np.full((1, 64, 96, 3), 0.5, np.float32), vector.name: np.zeros((1, 1, 1, 100), np.float32)}
    out = sess.run(None, feed)
    assert out[0].shape == (1, 64, 96, 3)


def test_the_edited_model_equals_the_original_at_384(transform_bytes):
    rng = np.random.default_rng(3)
    feed = {
        "content_image": rng.random((1, 384, 384, 3), dtype=np.float32),
        "mobilenet_conv/Conv/BiasAdd": rng.normal(size=(1, 1, 1, 100)).astype(np.float32),
    }
    before = _session(transform_bytes).run(None, feed)[0]
    after = _session(onnxshape.symbolic_dims(transform_bytes, DIMS)).run(None, feed)[0]
    assert np.array_equal(before, after)


def test_an_unknown_name_is_refused(transform_bytes):
    with pytest.raises(WeightsError, match="no input or output named 'nope'"):
        onnxshape.symbolic_dims(transform_bytes, {"nope": {1: "h"}})


def test_an_axis_past_the_rank_is_refused(transform_bytes):
    with pytest.raises(WeightsError, match="has 4 axes"):
        onnxshape.symbolic_dims(transform_bytes, {"content_image": {7: "h"}})


def test_a_truncated_model_is_refused(transform_bytes):
    with pytest.raises(WeightsError, match="truncated"):
        onnxshape.symbolic_dims(transform_bytes[: len(transform_bytes) // 3], DIMS)

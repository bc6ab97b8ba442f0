"""
Lossless conversion of the GGUF's quantised layers into the fp32 ONNX graph.

GGUF Q4_1 stores each row of a linear layer's weight in blocks of 32 inputs:
an fp16 scale ``d``, an fp16 minimum ``m`` and 32 four-bit codes ``q`` (low
nibbles hold elements 0-15, high nibbles 16-31), so ``w = d*q + m``. The
token embedding is Q8_0: an fp16 scale and 32 int8 codes, ``w = d*q``.

Two layouts reuse those exact codes:

* ``q4``: each linear layer becomes ``MatMulNBits(x; q, d)`` plus
  ``blocksum(x) @ (m + 8d)``. MatMulNBits subtracts its default zero point 8,
  and ``d*q + m = d*(q - 8) + (m + 8d)``.
* ``q4f``: the codes and fp16 scales are stored compactly and plain ONNX ops
  (BitwiseAnd, BitShift, Cast, Mul, Add) rebuild the fp32 weight. The inputs
  of those ops are all initializers, so onnxruntime folds them into fp32
  weights when the session is created.

In both layouts the embedding is rebuilt the same foldable way from its Q8_0
codes; the output projection is tied to it through a Transpose.

llama.cpp permutes the rows of the q and k projections to interleave the
rotary halves; the rows are permuted back here, block codes unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

BLOCK = 32
Q4_1_BLOCK_BYTES = 20
Q8_0_BLOCK_BYTES = 34
LAYOUTS = ("q4", "q4f")
EMBEDDING_NAME = "model.embed_tokens.weight"

# ONNX MatMul node name -> GGUF tensor suffix.
_PROJECTIONS = {
    "self_attn/q_proj": "attn_q",
    "self_attn/k_proj": "attn_k",
    "self_attn/v_proj": "attn_v",
    "self_attn/o_proj": "attn_output",
    "mlp/gate_proj": "ffn_gate",
    "mlp/up_proj": "ffn_up",
    "mlp/down_proj": "ffn_down",
}
_NODE_PATTERN = re.compile(r"^/model/layers\.(\d+)/(self_attn/\w+|mlp/\w+)/MatMul$")


def split_q4_1(raw: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
    """
    Split Q4_1 rows ``(n, k/32*20)`` into ``d``, ``m`` (fp16, ``(n, k/32)``)
    and the packed codes (uint8, ``(n, k/32, 16)``) in GGUF nibble order.
    """
    blocks = raw.reshape(raw.shape[0], k // BLOCK, Q4_1_BLOCK_BYTES)
    d = blocks[:, :, 0:2].copy().view(np.float16)[:, :, 0]
    m = blocks[:, :, 2:4].copy().view(np.float16)[:, :, 0]
    packed = blocks[:, :, 4:].copy()
    return d, m, packed


def unpack_gguf_nibbles(packed: np.ndarray) -> np.ndarray:
    """
    Return the 32 codes per block (uint8 0-15) from GGUF-packed bytes.
    """
    return np.concatenate([packed & 0x0F, packed >> 4], axis=-1)


def split_q8_0(raw: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """
    Split Q8_0 rows into ``d`` (fp16, ``(n, k/32)``) and int8 codes
    ``(n, k/32, 32)``.
    """
    blocks = raw.reshape(raw.shape[0], k // BLOCK, Q8_0_BLOCK_BYTES)
    d = blocks[:, :, 0:2].copy().view(np.float16)[:, :, 0]
    codes = blocks[:, :, 2:].copy().view(np.int8)
    return d, codes


def unpermute_rows(array: np.ndarray, heads: int) -> np.ndarray:
    """
    Undo llama.cpp's q/k row permutation along axis 0.

    llama.cpp reorders each head's rows from (2, half) to (half, 2); this
    swaps them back. Trailing axes (blocks, codes) move with their row.
    """
    rows = array.shape[0]
    half = rows // heads // 2
    rest = array.shape[1:]
    return array.reshape(heads, half, 2, *rest).swapaxes(1, 2).reshape(rows, *rest)


def dequantize_q4_1(d: np.ndarray, m: np.ndarray, packed: np.ndarray) -> np.ndarray:
    """
    Return the fp32 weight ``(n, k)`` with ``w = d*q + m`` in fp32.
    """
    codes = unpack_gguf_nibbles(packed).astype(np.float32)
    weight = codes * d.astype(np.float32)[:, :, None] + m.astype(np.float32)[:, :, None]
    return weight.reshape(d.shape[0], -1)


class GGUFLayers:
    """
    The quantised tensors of a llama GGUF file, read once.
    """

    def __init__(self, gguf_path: Path) -> None:
        import gguf

        reader = gguf.GGUFReader(str(gguf_path))
        self.tensors = {tensor.name: tensor for tensor in reader.tensors}
        self.heads = int(reader.fields["llama.attention.head_count"].contents())
        self.kv_heads = int(reader.fields["llama.attention.head_count_kv"].contents())

    def q4_1(self, layer: int, suffix: str) -> tuple[np.ndarray, ...]:
        """
        Return ``(d, m, packed)`` of one linear layer, rows in HF order.
        """
        tensor = self.tensors[f"blk.{layer}.{suffix}.weight"]
        if tensor.tensor_type.name != "Q4_1":
            raise ValueError(
                f"GGUF tensor {tensor.name!r} is {tensor.tensor_type.name}, "
                "expected Q4_1."
            )
        k = int(tensor.shape[0])
        parts = split_q4_1(np.asarray(tensor.data), k)
        heads = {"attn_q": self.heads, "attn_k": self.kv_heads}.get(suffix)
        if heads is not None:
            parts = tuple(unpermute_rows(part, heads) for part in parts)
        return parts

    def embedding(self) -> tuple[np.ndarray, np.ndarray]:
        """
        Return ``(d, codes)`` of the Q8_0 token embedding.
        """
        tensor = self.tensors["token_embd.weight"]
        if tensor.tensor_type.name != "Q8_0":
            raise ValueError(
                f"GGUF tensor {tensor.name!r} is {tensor.tensor_type.name}, "
                "expected Q8_0."
            )
        return split_q8_0(np.asarray(tensor.data), int(tensor.shape[0]))


class _Graph:
    """
    Helpers to add initializers and nodes to an ONNX graph under a prefix.
    """

    def __init__(self, model: Any) -> None:
        self.model = model
        self.graph = model.graph
        self.initializers = {init.name: init for init in self.graph.initializer}
        self.leading_nodes: list[Any] = []

    def add_initializer(self, name: str, array: np.ndarray) -> str:
        from onnx import numpy_helper

        self.graph.initializer.append(numpy_helper.from_array(array, name))
        return name

    def remove_initializer(self, name: str) -> np.ndarray:
        from onnx import numpy_helper

        init = self.initializers.pop(name)
        array = numpy_helper.to_array(init)
        self.graph.initializer.remove(init)
        return array

    def node(self, op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        from onnx import helper

        domain = attrs.pop("domain", "")
        node = helper.make_node(
            op, inputs, [output], name=output, domain=domain, **attrs
        )
        self.leading_nodes.append(node)
        return output

    def finish(self) -> None:
        """
        Put the added weight-decoding nodes first, keeping topological order.
        """
        existing = list(self.graph.node)
        del self.graph.node[:]
        self.graph.node.extend(self.leading_nodes + existing)


def _decode_embedding(graph: _Graph, layers: GGUFLayers, reference: np.ndarray) -> None:
    d, codes = layers.embedding()
    rebuilt = (codes.astype(np.float32) * d.astype(np.float32)[:, :, None]).reshape(
        reference.shape
    )
    if not np.array_equal(rebuilt, reference):
        raise ValueError("The Q8_0 embedding does not match the fp32 export.")
    prefix = "gguf/embed_tokens"
    codes_name = graph.add_initializer(f"{prefix}/codes", codes)
    scales_name = graph.add_initializer(f"{prefix}/scales", d[:, :, None])
    shape_name = graph.add_initializer(
        f"{prefix}/shape", np.array(reference.shape, np.int64)
    )
    codes_f = graph.node("Cast", [codes_name], f"{prefix}/codes_f32", to=1)
    scales_f = graph.node("Cast", [scales_name], f"{prefix}/scales_f32", to=1)
    scaled = graph.node("Mul", [codes_f, scales_f], f"{prefix}/scaled")
    graph.node("Reshape", [scaled, shape_name], EMBEDDING_NAME)


def _foldable_weight(
    graph: _Graph, prefix: str, d: np.ndarray, m: np.ndarray, packed: np.ndarray
) -> str:
    """
    Add the q4f nodes that rebuild the fp32 ``(k, n)`` weight; return its name.
    """
    n, blocks = d.shape
    packed_name = graph.add_initializer(f"{prefix}/packed", packed)
    d_name = graph.add_initializer(f"{prefix}/d", d[:, :, None])
    m_name = graph.add_initializer(f"{prefix}/m", m[:, :, None])
    mask = graph.add_initializer(f"{prefix}/mask", np.array(0x0F, np.uint8))
    four = graph.add_initializer(f"{prefix}/four", np.array(4, np.uint8))
    shape = graph.add_initializer(
        f"{prefix}/shape", np.array([n, blocks * BLOCK], np.int64)
    )
    low = graph.node("BitwiseAnd", [packed_name, mask], f"{prefix}/low")
    high = graph.node(
        "BitShift", [packed_name, four], f"{prefix}/high", direction="RIGHT"
    )
    codes = graph.node("Concat", [low, high], f"{prefix}/codes", axis=-1)
    codes_f = graph.node("Cast", [codes], f"{prefix}/codes_f32", to=1)
    d_f = graph.node("Cast", [d_name], f"{prefix}/d_f32", to=1)
    m_f = graph.node("Cast", [m_name], f"{prefix}/m_f32", to=1)
    scaled = graph.node("Mul", [codes_f, d_f], f"{prefix}/scaled")
    shifted = graph.node("Add", [scaled, m_f], f"{prefix}/shifted")
    rows = graph.node("Reshape", [shifted, shape], f"{prefix}/rows")
    return graph.node("Transpose", [rows], f"{prefix}/weight", perm=[1, 0])


def _nbits_matmul(
    graph: _Graph,
    node: Any,
    prefix: str,
    d: np.ndarray,
    m: np.ndarray,
    packed: np.ndarray,
) -> list[Any]:
    """
    Return the nodes that replace ``node`` with MatMulNBits plus the block-sum
    correction.
    """
    from onnx import helper

    n, blocks = d.shape
    k = blocks * BLOCK
    codes = unpack_gguf_nibbles(packed)
    # MatMulNBits packs element 2j in the low nibble and 2j+1 in the high one.
    nbits = (codes[:, :, 0::2] | (codes[:, :, 1::2] << 4)).astype(np.uint8)
    offset = (m.astype(np.float32) + 8.0 * d.astype(np.float32)).T.copy()
    b_name = graph.add_initializer(f"{prefix}/B", nbits)
    scales = graph.add_initializer(f"{prefix}/scales", d.astype(np.float32))
    offset_name = graph.add_initializer(f"{prefix}/offset", offset)
    block_shape = graph.add_initializer(
        f"{prefix}/block_shape", np.array([0, 0, blocks, BLOCK], np.int64)
    )
    axes = graph.add_initializer(f"{prefix}/axes", np.array([-1], np.int64))
    x, output = node.input[0], node.output[0]
    return [
        helper.make_node(
            "MatMulNBits",
            [x, b_name, scales],
            [f"{prefix}/nbits"],
            name=f"{prefix}/MatMulNBits",
            domain="com.microsoft",
            K=k,
            N=n,
            bits=4,
            block_size=BLOCK,
        ),
        helper.make_node(
            "Reshape",
            [x, block_shape],
            [f"{prefix}/x_blocks"],
            name=f"{prefix}/Reshape",
        ),
        helper.make_node(
            "ReduceSum",
            [f"{prefix}/x_blocks", axes],
            [f"{prefix}/block_sums"],
            name=f"{prefix}/ReduceSum",
            keepdims=0,
        ),
        helper.make_node(
            "MatMul",
            [f"{prefix}/block_sums", offset_name],
            [f"{prefix}/correction"],
            name=f"{prefix}/MatMul",
        ),
        helper.make_node(
            "Add",
            [f"{prefix}/nbits", f"{prefix}/correction"],
            [output],
            name=f"{prefix}/Add",
        ),
    ]


def convert(
    fp32_path: Path,
    gguf_path: Path,
    out_path: Path,
    layout: str,
    log: Callable[[str], None] = print,
) -> dict[str, int]:
    """
    Write the ``layout`` variant of the fp32 decoder at ``fp32_path`` to
    ``out_path``, using the GGUF's own codes.

    Every rebuilt weight is compared with the fp32 export's and must be
    bit-identical; a mismatch raises ValueError. Returns counts of the
    converted layers.
    """
    import onnx
    from onnx import helper

    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS!r}, got {layout!r}")
    layers = GGUFLayers(gguf_path)
    model = onnx.load(str(fp32_path))
    graph = _Graph(model)

    _decode_embedding(graph, layers, graph.remove_initializer(EMBEDDING_NAME))
    converted = 0
    replaced_nodes: dict[int, list[Any]] = {}
    for index, node in enumerate(model.graph.node):
        match = _NODE_PATTERN.match(node.name) if node.op_type == "MatMul" else None
        if match is None:
            continue
        layer, projection = int(match.group(1)), match.group(2)
        d, m, packed = layers.q4_1(layer, _PROJECTIONS[projection])
        reference = graph.remove_initializer(node.input[1])
        if not np.array_equal(dequantize_q4_1(d, m, packed).T, reference):
            raise ValueError(
                f"GGUF layer {layer} {projection} does not match the fp32 export."
            )
        prefix = f"gguf/layers.{layer}/{projection}"
        if layout == "q4f":
            node.input[1] = _foldable_weight(graph, prefix, d, m, packed)
        else:
            replaced_nodes[index] = _nbits_matmul(graph, node, prefix, d, m, packed)
        converted += 1

    if replaced_nodes:
        nodes = list(model.graph.node)
        del model.graph.node[:]
        for index, node in enumerate(nodes):
            model.graph.node.extend(replaced_nodes.get(index, [node]))
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    graph.finish()
    log(f"Converted {converted} layers to {layout}; writing {out_path.name}")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out_path))
    return {"layers": converted}

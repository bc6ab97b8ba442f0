import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from django_offload.modelstore import gguf_q4

RNG = np.random.default_rng(7)


def q4_1_rows(n, k):
    """
    Return random GGUF Q4_1 rows and the d, m and codes they encode.
    """
    blocks = k // 32
    d = RNG.uniform(0.001, 0.05, (n, blocks)).astype(np.float16)
    m = RNG.uniform(-0.3, 0.0, (n, blocks)).astype(np.float16)
    codes = RNG.integers(0, 16, (n, blocks, 32)).astype(np.uint8)
    packed = codes[:, :, :16] | (codes[:, :, 16:] << 4)
    raw = np.concatenate(
        [d[:, :, None].view(np.uint8), m[:, :, None].view(np.uint8), packed], axis=2
    )
    return raw.reshape(n, blocks * 20), d, m, codes


def llama_cpp_permute(weight, heads):
    rows = weight.shape[0]
    return (
        weight.reshape(heads, 2, rows // heads // 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def test_split_q4_1_recovers_fields():
    raw, d, m, codes = q4_1_rows(4, 64)
    got_d, got_m, packed = gguf_q4.split_q4_1(raw, 64)
    assert np.array_equal(got_d, d)
    assert np.array_equal(got_m, m)
    assert np.array_equal(gguf_q4.unpack_gguf_nibbles(packed), codes)


def test_dequantize_q4_1_matches_formula():
    raw, d, m, codes = q4_1_rows(3, 64)
    weight = gguf_q4.dequantize_q4_1(*gguf_q4.split_q4_1(raw, 64))
    expected = (
        codes * d.astype(np.float32)[:, :, None] + m.astype(np.float32)[:, :, None]
    )
    assert np.array_equal(weight, expected.reshape(3, 64))


def test_split_q8_0_recovers_fields():
    d = RNG.uniform(0.001, 0.05, (5, 2)).astype(np.float16)
    codes = RNG.integers(-128, 128, (5, 2, 32)).astype(np.int8)
    raw = np.concatenate([d[:, :, None].view(np.uint8), codes.view(np.uint8)], axis=2)
    got_d, got_codes = gguf_q4.split_q8_0(raw.reshape(5, 68), 64)
    assert np.array_equal(got_d, d)
    assert np.array_equal(got_codes, codes)


def test_unpermute_rows_inverts_llama_cpp():
    weight = RNG.standard_normal((3 * 8, 5, 2))
    assert np.array_equal(
        gguf_q4.unpermute_rows(llama_cpp_permute(weight, 3), 3), weight
    )
    assert not np.array_equal(llama_cpp_permute(weight, 3), weight)


def run_layer(layout, n=48, k=96, tokens=5):
    """
    Build a one-layer graph in ``layout`` and return its output and the
    fp32 reference ``x @ w.T``.
    """
    raw, _, _, _ = q4_1_rows(n, k)
    d, m, packed = gguf_q4.split_q4_1(raw, k)
    weight = gguf_q4.dequantize_q4_1(d, m, packed)
    model = helper.make_model(
        helper.make_graph(
            [helper.make_node("MatMul", ["x", "w"], ["y"], name="layer")],
            "layer",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, None, k])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, None, n])],
        ),
        opset_imports=[helper.make_opsetid("", 18)],
    )
    graph = gguf_q4._Graph(model)
    node = model.graph.node[0]
    if layout == "q4f":
        node.input[1] = gguf_q4._foldable_weight(graph, "w", d, m, packed)
    else:
        replacement = gguf_q4._nbits_matmul(graph, node, "w", d, m, packed)
        del model.graph.node[:]
        model.graph.node.extend(replacement)
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    graph.finish()
    if layout == "q4f":
        onnx.checker.check_model(model)
    session = ort.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    x = RNG.standard_normal((1, tokens, k)).astype(np.float32)
    (y,) = session.run(None, {"x": x})
    return y, x @ weight.T


def test_q4f_layer_equals_fp32():
    got, expected = run_layer("q4f")
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_q4_matmulnbits_layer_equals_fp32():
    got, expected = run_layer("q4")
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)

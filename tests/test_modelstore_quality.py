"""
Quality gate and lossless-variant tests on the built models.
"""

import numpy as np
import pytest

from django_offload.engine import EmbeddingModel, GenerationParams, TextModel
from django_offload.modelstore import load_manifest
from django_offload.modelstore.hashing import file_record
from django_offload.modelstore.quality import embedding_gate, gate_model, text_gate
from tests.modelstore_helpers import built_model_dir, copy_model

pytestmark = pytest.mark.models

SMOLLM2 = "smollm2-135m-instruct"
MINILM = "all-minilm-l6-v2"
PROMPTS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "Name three fruits."}],
    [{"role": "user", "content": "Write one sentence about the sea."}],
]


def add_variant(model_dir, name, relative):
    from django_offload.modelstore import write_manifest

    manifest = load_manifest(model_dir)
    record = file_record(model_dir / relative)
    manifest["files"][relative] = record
    manifest["variants"][name] = {
        "file": relative,
        "dtype": name,
        "memory_bytes": 0,
        "reference": False,
        "backends": ["native"],
        "quality": None,
        "servable": False,
        **record,
    }
    write_manifest(model_dir, manifest)


@pytest.fixture(scope="module")
def smollm2_dir():
    return built_model_dir(SMOLLM2)


@pytest.fixture(scope="module")
def fp32_model(smollm2_dir):
    return TextModel.load(smollm2_dir, "fp32", threads=1)


@pytest.mark.parametrize("variant", ["q4", "q4f"])
def test_gguf_variant_generates_like_fp32(smollm2_dir, fp32_model, variant):
    model = TextModel.load(smollm2_dir, variant, threads=1)
    params = GenerationParams(max_new_tokens=24, temperature=0.0)
    for messages in PROMPTS:
        expected = fp32_model.generate(messages, params)
        got = model.generate(messages, params)
        assert got.token_ids == expected.token_ids
        assert got.text == expected.text


@pytest.mark.parametrize("variant", ["q4", "q4f"])
def test_gguf_variant_logits_close_to_fp32(smollm2_dir, fp32_model, variant):
    model = TextModel.load(smollm2_dir, variant, threads=1)
    ids = fp32_model.encode(fp32_model.render_chat(PROMPTS[0]))
    expected = fp32_model.logits(ids)
    got = model.logits(ids)
    assert np.array_equal(got.argmax(axis=1), expected.argmax(axis=1))
    assert float(np.abs(got - expected).max()) < 1e-2


def test_gate_passes_lossless_variant(smollm2_dir):
    result = text_gate(smollm2_dir, "q4f")
    assert result["passed"] is True
    assert result["agreement"] == 1.0
    assert result["positions"] >= 180
    assert all(task["passed"] for task in result["tasks"].values())


def test_gate_rejects_dynamic_int8(smollm2_dir, tmp_path):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model_dir = copy_model(smollm2_dir, tmp_path / SMOLLM2, ["fp32"])
    quantize_dynamic(
        str(model_dir / "onnx" / "model.onnx"),
        str(model_dir / "onnx" / "model_int8.onnx"),
        weight_type=QuantType.QInt8,
    )
    add_variant(model_dir, "int8", "onnx/model_int8.onnx")
    manifest = gate_model(model_dir, ["int8"], log=lambda message: None)
    entry = manifest["variants"]["int8"]
    assert entry["quality"]["passed"] is False
    assert entry["quality"]["agreement"] < 0.9
    assert entry["servable"] is False
    assert load_manifest(model_dir)["variants"]["int8"]["servable"] is False


def test_embedding_gate_rejects_damaged_weights(tmp_path):
    import onnx
    from onnx import numpy_helper

    model_dir = copy_model(built_model_dir(MINILM), tmp_path / MINILM, ["fp32"])
    model = onnx.load(str(model_dir / "onnx" / "model.onnx"))
    for init in model.graph.initializer:
        array = numpy_helper.to_array(init)
        # The six encoder layers' projection weights, not the embeddings.
        if array.ndim == 2 and array.shape[0] in (384, 1536) and array.size > 1e5:
            rng = np.random.default_rng(0)
            damaged = array + rng.normal(0, array.std(), array.shape)
            init.CopyFrom(
                numpy_helper.from_array(damaged.astype(np.float32), init.name)
            )
    onnx.save(model, str(model_dir / "onnx" / "model_damaged.onnx"))
    add_variant(model_dir, "damaged", "onnx/model_damaged.onnx")
    result = embedding_gate(model_dir, "damaged")
    assert result["passed"] is False
    assert result["min_cosine"] < 0.98


def test_embedding_gate_passes_int8():
    model_dir = built_model_dir(MINILM)
    result = embedding_gate(model_dir, "int8")
    assert result["passed"] is True
    assert result["min_cosine"] >= 0.98


def test_minilm_int8_embeds_like_fp32():
    model_dir = built_model_dir(MINILM)
    texts = ["A man is eating food.", "Someone is having a meal."]
    fp32 = EmbeddingModel.load(model_dir, "fp32").embed(texts)
    int8 = EmbeddingModel.load(model_dir, "int8").embed(texts)
    assert fp32.shape == (2, 384)
    assert float((fp32 * int8).sum(axis=1).min()) > 0.98


def test_built_manifests_record_gate(smollm2_dir):
    manifest = load_manifest(smollm2_dir)
    for name in ("fp32", "q4", "q4f"):
        assert manifest["variants"][name]["servable"] is True
        assert manifest["variants"][name]["quality"]["agreement"] == 1.0

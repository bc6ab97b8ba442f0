import numpy as np
import pytest

from django_offload.engine import EmbeddingModel, get_embedding_model, registry

from .conftest import EMBEDDING_MODEL, store_model_dir

pytestmark = pytest.mark.models

SENTENCES = [
    "The cat sits on the mat.",
    "A cat is sitting on a rug.",
    "Quarterly revenue grew by eight percent.",
]


def test_embeddings_shape_and_dtype(embedding_model):
    vectors = embedding_model.embed(SENTENCES)
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32


def test_embeddings_unit_length(embedding_model):
    vectors = embedding_model.embed(SENTENCES)
    assert np.linalg.norm(vectors, axis=1) == pytest.approx(np.ones(3), abs=1e-5)


def test_similar_sentences_score_higher(embedding_model):
    cat, rug, revenue = embedding_model.embed(SENTENCES)
    assert float(cat @ rug) > float(cat @ revenue) + 0.2


def test_embedding_independent_of_batch_padding(embedding_model):
    alone = embedding_model.embed([SENTENCES[0]])[0]
    padded = embedding_model.embed([SENTENCES[0], "word " * 60])[0]
    assert padded == pytest.approx(alone, abs=1e-5)


def test_embedding_long_text_truncated(embedding_model):
    vectors = embedding_model.embed(["long " * 5000])
    assert vectors.shape == (1, 384)
    assert np.isfinite(vectors).all()


def test_embedding_empty_list(embedding_model):
    assert embedding_model.embed([]).shape == (0, 384)


@pytest.mark.parametrize(
    ("texts", "fragment"),
    [("one text", "texts must be a list"), (["ok", 3], "texts[1]"), (None, "texts")],
)
def test_embedding_invalid_input_rejected(embedding_model, texts, fragment):
    with pytest.raises(ValueError) as caught:
        embedding_model.embed(texts)
    assert fragment in str(caught.value)


def test_embedding_int8_close_to_fp32(embedding_model):
    int8 = EmbeddingModel.load(store_model_dir(EMBEDDING_MODEL, "int8"), "int8")
    reference = embedding_model.embed(SENTENCES)
    quantised = int8.embed(SENTENCES)
    cosines = np.sum(reference * quantised, axis=1)
    assert cosines.min() > 0.98
    cat, rug, revenue = quantised
    assert float(cat @ rug) > float(cat @ revenue)


def test_embedding_model_from_registry():
    store_model_dir(EMBEDDING_MODEL)
    registry.clear()
    model = get_embedding_model(EMBEDDING_MODEL)
    assert model is get_embedding_model(EMBEDDING_MODEL)
    assert model.embed(SENTENCES[:1]).shape == (1, 384)
    registry.clear()

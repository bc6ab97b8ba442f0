from pathlib import Path

import pytest

from django_offload.conf import offload_settings
from django_offload.engine import EmbeddingModel, TextModel

TEXT_MODEL = "smollm2-135m-instruct"
EMBEDDING_MODEL = "all-minilm-l6-v2"


def store_model_dir(model_id: str, variant: str = "fp32") -> Path:
    """
    Return the store folder of a built model variant, or skip the test.
    """
    directory = offload_settings.model_store / model_id
    from django_offload.engine.loading import ModelLoadError, read_manifest

    if not (directory / "manifest.json").is_file():
        pytest.skip(f"{model_id} is not built in the model store {directory}")
    try:
        manifest = read_manifest(directory)
    except ModelLoadError as error:
        pytest.skip(f"{model_id} has an unreadable manifest: {error}")
    if variant not in manifest["variants"]:
        pytest.skip(f"{model_id} has no {variant} variant in {directory}")
    return directory


@pytest.fixture(scope="session")
def text_model() -> TextModel:
    return TextModel.load(store_model_dir(TEXT_MODEL), "fp32")


@pytest.fixture(scope="session")
def embedding_model() -> EmbeddingModel:
    return EmbeddingModel.load(store_model_dir(EMBEDDING_MODEL), "fp32")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from .tiny_model import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("store") / "tiny-decoder")


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir) -> TextModel:
    return TextModel.load(tiny_model_dir, threads=1)

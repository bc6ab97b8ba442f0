"""
The model tests skip when the store lacks a model, so that they can run on a
machine without the export tools. scripts/bootstrap always builds the store,
so under the README's test command this test makes a missing model a
failure instead of a row of skips.
"""

import pytest

from django_offload.conf import offload_settings
from django_offload.modelstore import load_manifest

pytestmark = pytest.mark.models


@pytest.mark.parametrize("model_id", ["smollm2-135m-instruct", "all-minilm-l6-v2"])
def test_store_has_built_model(model_id):
    model_dir = offload_settings.model_store / model_id
    assert (model_dir / "manifest.json").is_file(), (
        f"{model_id} is not built in {str(offload_settings.model_store)!r}; "
        "run `python manage.py offload_models build`"
    )
    manifest = load_manifest(model_dir)
    assert any(variant["servable"] for variant in manifest["variants"].values())

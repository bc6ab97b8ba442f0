import json
import os

import pytest
from django.test import override_settings

from django_offload import checks
from tests.modelstore_helpers import make_model


def ids(messages):
    return [message.id for message in messages]


def store_setting(path):
    return override_settings(OFFLOAD={"MODEL_STORE": str(path)})


def test_model_store_missing_warns(tmp_path):
    with store_setting(tmp_path / "absent"):
        messages = checks.check_model_store()
    assert ids(messages) == ["django_offload.W003"]
    assert str(tmp_path / "absent") in messages[0].msg
    assert "OFFLOAD['MODEL_STORE']" in messages[0].msg
    assert "offload_models build" in messages[0].hint


def test_model_store_is_a_file(tmp_path):
    path = tmp_path / "store"
    path.write_text("not a folder", "utf-8")
    with store_setting(path):
        messages = checks.check_model_store()
    assert ids(messages) == ["django_offload.E003"]
    assert str(path) in messages[0].msg
    assert "OFFLOAD['MODEL_STORE']" in messages[0].msg


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any folder")
def test_model_store_unreadable(tmp_path):
    path = tmp_path / "store"
    path.mkdir(mode=0)
    try:
        with store_setting(path):
            assert ids(checks.check_model_store()) == ["django_offload.E003"]
    finally:
        path.chmod(0o755)


def test_model_store_invalid_manifest(tmp_path):
    model_dir = make_model(tmp_path)
    data = json.loads((model_dir / "manifest.json").read_text("utf-8"))
    del data["license"]
    (model_dir / "manifest.json").write_text(json.dumps(data), "utf-8")
    with store_setting(tmp_path):
        messages = checks.check_model_store()
    assert ids(messages) == ["django_offload.E004"]
    assert "field 'license'" in messages[0].msg


def test_model_store_without_servable_model_warns(tmp_path):
    make_model(tmp_path, servable=False)
    with store_setting(tmp_path):
        messages = checks.check_model_store()
    assert ids(messages) == ["django_offload.W004"]
    assert "offload_models list" in messages[0].hint


def test_model_store_empty_warns_no_servable(tmp_path):
    with store_setting(tmp_path):
        assert ids(checks.check_model_store()) == ["django_offload.W004"]


def test_model_store_with_servable_model_passes(tmp_path):
    make_model(tmp_path)
    with store_setting(tmp_path):
        assert checks.check_model_store() == []

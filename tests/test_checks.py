from django.core.checks import run_checks
from django.test import override_settings

from django_offload import checks


def ids(messages):
    return [message.id for message in messages]


def test_channel_layer_missing():
    with override_settings(CHANNEL_LAYERS={}):
        assert ids(checks.check_channel_layer()) == ["django_offload.E001"]


def test_channel_layer_present():
    assert checks.check_channel_layer() == []


def test_asgi_application_missing():
    with override_settings(ASGI_APPLICATION=None):
        assert ids(checks.check_asgi_application()) == ["django_offload.E002"]


def test_demo_settings_pass_all_checks():
    errors = [m for m in run_checks() if m.id.startswith("django_offload.E")]
    assert errors == []

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_offload.conf import DEFAULTS, offload_settings


def test_default_used_when_unset():
    with override_settings(OFFLOAD={}):
        assert offload_settings.ACK_TIMEOUT == DEFAULTS["ACK_TIMEOUT"]


def test_override_settings_is_read():
    with override_settings(OFFLOAD={"ACK_TIMEOUT": 3.0}):
        assert offload_settings.ACK_TIMEOUT == 3.0


def test_unknown_key_rejected():
    with override_settings(OFFLOAD={"ACK_TIMEOUTS": 3}):
        with pytest.raises(ImproperlyConfigured, match="ACK_TIMEOUTS"):
            _ = offload_settings.ACK_TIMEOUT


def test_non_dict_rejected():
    with override_settings(OFFLOAD=[1]):
        with pytest.raises(ImproperlyConfigured, match="must be a dict"):
            _ = offload_settings.MODEL_STORE

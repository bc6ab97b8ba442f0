import re
from pathlib import Path

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


def test_isolation_settings_invalid_coep():
    with override_settings(OFFLOAD={"ISOLATION_COEP": "same-site"}):
        assert ids(checks.check_isolation_settings()) == ["django_offload.E010"]


def test_isolation_settings_invalid_paths():
    with override_settings(OFFLOAD={"ISOLATION_PATHS": "notes/"}):
        assert ids(checks.check_isolation_settings()) == ["django_offload.E010"]


def test_runtime_settings_invalid_log_level():
    with override_settings(OFFLOAD={"LOG_LEVEL": "verbose"}):
        assert ids(checks.check_runtime_settings()) == ["django_offload.E011"]


def test_runtime_settings_invalid_socket_path():
    with override_settings(OFFLOAD={"SOCKET_PATH": "/ws/offload/"}):
        assert ids(checks.check_runtime_settings()) == ["django_offload.E012"]


def test_runtime_settings_empty_consent_key():
    with override_settings(OFFLOAD={"CONSENT_STORAGE_KEY": ""}):
        assert ids(checks.check_runtime_settings()) == ["django_offload.E013"]


def test_fit_settings_invalid_values():
    bad = {
        "DEVICE_MAX_THREADS": 0,
        "DEVICE_MEMORY_FRACTION": 1.5,
        "UNKNOWN_DEVICE_MEMORY_GIB": True,
    }
    with override_settings(OFFLOAD=bad):
        assert ids(checks.check_fit_settings()) == ["django_offload.E014"] * 3


def test_check_ids_unique():
    source = Path(checks.__file__).read_text()
    found = re.findall(r'id="(django_offload\.[EW]\d{3})"', source)
    assert len(found) == len(set(found))


def test_check_ids_documented_once():
    source = Path(checks.__file__).read_text()
    docs = (Path(__file__).parent.parent / "docs" / "checks.md").read_text()
    used = set(re.findall(r'id="(django_offload\.[EW]\d{3})"', source))
    rows = re.findall(r"^\| `(django_offload\.[EW]\d{3})` \|", docs, re.MULTILINE)
    assert sorted(rows) == sorted(used)

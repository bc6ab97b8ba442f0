from django.test import override_settings

from django_offload import checks


def ids(messages):
    return [message.id for message in messages]


def test_task_settings_defaults_pass():
    assert checks.check_task_settings() == []


def test_default_fallback_invalid():
    with override_settings(OFFLOAD={"DEFAULT_FALLBACK": "cloud"}):
        assert ids(checks.check_task_settings()) == ["django_offload.E020"]


def test_default_fallback_not_importable():
    with override_settings(OFFLOAD={"DEFAULT_FALLBACK": "nowhere.to.be.found"}):
        assert ids(checks.check_task_settings()) == ["django_offload.E020"]


def test_default_fallback_dotted_path_passes():
    path = "tests.offload_support.count_fallback"
    with override_settings(OFFLOAD={"DEFAULT_FALLBACK": path}):
        assert checks.check_task_settings() == []


def test_task_seconds_not_positive():
    with override_settings(OFFLOAD={"ACK_TIMEOUT": 0, "POLL_INTERVAL": "1"}):
        errors = checks.check_task_settings()
    assert ids(errors) == ["django_offload.E021", "django_offload.E021"]
    assert "ACK_TIMEOUT" in errors[0].msg
    assert "POLL_INTERVAL" in errors[1].msg


def test_max_attempts_not_positive_integer():
    with override_settings(OFFLOAD={"MAX_ATTEMPTS": 0, "MAX_MESSAGE_BYTES": 1.5}):
        errors = checks.check_task_settings()
    assert ids(errors) == ["django_offload.E022", "django_offload.E022"]

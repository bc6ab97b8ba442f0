import pytest
from django.test import override_settings

from django_offload import checks


def ids(messages):
    return [message.id for message in messages]


@pytest.mark.parametrize("value", [0, -1, 2.5, "5", True])
def test_min_group_devices_invalid(value):
    with override_settings(OFFLOAD={"MIN_GROUP_DEVICES": value}):
        assert ids(checks.check_metrics_settings()) == ["django_offload.E030"]


def test_min_group_devices_valid():
    with override_settings(OFFLOAD={"MIN_GROUP_DEVICES": 10}):
        assert checks.check_metrics_settings() == []


@pytest.mark.parametrize(
    "rates",
    [
        {"offload_metrics": "fast"},
        {"offload_metrics": "0/minute"},
        {"offload_tasks": "10/week"},
        ["60/minute"],
    ],
)
def test_api_throttle_rates_invalid(rates):
    with override_settings(OFFLOAD={"API_THROTTLE_RATES": rates}):
        assert ids(checks.check_metrics_settings()) == ["django_offload.E031"]


def test_api_throttle_rates_default_valid():
    assert checks.check_metrics_settings() == []

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings
from django.utils import timezone

from django_offload.metrics import compute_metrics, csv_rows, parse_range, percentile
from django_offload.models import Device, Prompt, PromptVersion, Score, Task

pytestmark = pytest.mark.django_db
DAY = dt.date(2026, 11, 10)


def at(day, hour=12):
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)


def make_version(name="summarise", number=1):
    prompt, _ = Prompt.objects.get_or_create(name=name)
    return PromptVersion.objects.create(prompt=prompt, number=number, template="x")


def make_task(version, device, *, day=DAY, status=Task.Status.SUCCEEDED, **fields):
    values = {
        "model_id": "smollm2-135m-instruct",
        "variant": "q4f",
        "backend": device.backend if device else "server",
        "status": status,
    }
    values.update(fields)
    task = Task.objects.create(prompt_version=version, device=device, **values)
    # created_at has auto_now_add, so the day is set afterwards.
    Task.objects.filter(pk=task.pk).update(created_at=at(day))
    return task


def devices(count, backend="wasm", threads=2):
    return [
        Device.objects.create(backend=backend, threads=threads) for _ in range(count)
    ]


@pytest.fixture
def seeded():
    """
    Version v1 on wasm: 100 finished tasks on 5 devices with latencies 1..100
    ms; 80 succeeded, 10 failed, 10 fell back (8 no-consent, 2 timeout).
    Version v2 on webgpu: 3 tasks on 2 devices, below the threshold.
    """
    v1 = make_version(number=1)
    v2 = make_version(number=2)
    pool = devices(5)
    for i in range(100):
        if i < 80:
            status, reason = Task.Status.SUCCEEDED, ""
        elif i < 90:
            status, reason = Task.Status.FAILED, ""
        else:
            status = Task.Status.FELL_BACK
            reason = "no-consent" if i < 98 else "timeout"
        task = make_task(
            v1,
            pool[i % 5],
            day=DAY + dt.timedelta(days=i % 2),
            status=status,
            fallback_reason=reason,
            latency_ms=float(i + 1),
            ttft_ms=float(2 * (i + 1)),
            decode_tps=float(10 + i % 3),
            threads=2 if i % 4 else 4,
        )
        Score.objects.create(
            task=task,
            name="short",
            data_type="boolean",
            value=1.0,
            passed=i % 4 != 0,
        )
        Score.objects.create(
            task=task,
            name="sim",
            data_type="numeric",
            value=(i % 2) * 1.0,
            passed=None,
        )
    small = devices(2, backend="webgpu")
    for i in range(3):
        make_task(v2, small[i % 2], latency_ms=5000.0)
    return v1, v2


def test_percentile_linear_interpolation():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 95) == pytest.approx(95.05)
    assert percentile([7.0], 95) == 7.0
    assert percentile([], 50) is None


def test_metrics_group_counts_and_rates(seeded):
    report = compute_metrics(DAY, DAY + dt.timedelta(days=1), min_devices=5)
    assert len(report["groups"]) == 1
    group = report["groups"][0]
    assert group["prompt"] == "summarise"
    assert group["prompt_version"] == 1
    assert group["backend"] == "wasm"
    assert group["tasks"] == 100
    assert group["devices"] == 5
    assert group["succeeded"] == 80
    assert group["failed"] == 10
    assert group["fell_back"] == 10
    assert group["success_rate"] == pytest.approx(0.8)
    assert group["failure_rate"] == pytest.approx(0.1)
    assert group["fallback_rate"] == pytest.approx(0.1)
    assert group["fallback_reasons"] == {"no-consent": 8, "timeout": 2}
    assert group["threads"] == {"2": 75, "4": 25}


def test_metrics_percentiles(seeded):
    group = compute_metrics(DAY, DAY + dt.timedelta(days=1), min_devices=5)["groups"][0]
    assert group["latency_ms"]["p50"] == pytest.approx(50.5)
    assert group["latency_ms"]["p95"] == pytest.approx(95.05)
    assert group["ttft_ms"]["p50"] == pytest.approx(101.0)
    assert group["ttft_ms"]["p95"] == pytest.approx(190.1)
    # decode rates: 34 tasks at 10, 33 at 11, 33 at 12.
    assert group["decode_tps_median"] == pytest.approx(11.0)


def test_metrics_evaluator_pass_rates(seeded):
    group = compute_metrics(DAY, DAY + dt.timedelta(days=1), min_devices=5)["groups"][0]
    short = group["evaluators"]["short"]
    assert short["evaluated"] == 100
    assert short["passed"] == 75
    assert short["pass_rate"] == pytest.approx(0.75)
    sim = group["evaluators"]["sim"]
    assert sim["pass_rate"] is None
    assert sim["mean"] == pytest.approx(0.5)


def test_metrics_hides_small_groups(seeded):
    report = compute_metrics(DAY, DAY + dt.timedelta(days=1), min_devices=5)
    assert report["hidden_groups"] == 1
    versions = {group["prompt_version"] for group in report["groups"]}
    assert 2 not in versions
    # The hidden group's tasks are left out of the charts too.
    assert sum(sum(v) for v in report["daily"]["outcomes"].values()) == 100
    assert list(report["daily"]["latency_p50"]) == ["summarise v1"]


def test_metrics_threshold_from_settings(seeded):
    with override_settings(OFFLOAD={"MIN_GROUP_DEVICES": 2}):
        report = compute_metrics(DAY, DAY + dt.timedelta(days=1))
    assert report["min_group_devices"] == 2
    assert report["hidden_groups"] == 0
    assert len(report["groups"]) == 2
    with override_settings(OFFLOAD={"MIN_GROUP_DEVICES": 6}):
        report = compute_metrics(DAY, DAY + dt.timedelta(days=1))
    assert report["groups"] == []
    assert report["hidden_groups"] == 2
    assert report["device_mix"]["devices"] is not None


def test_metrics_device_mix_hidden_when_few(seeded):
    report = compute_metrics(DAY, DAY + dt.timedelta(days=1), min_devices=8)
    assert report["device_mix"]["devices"] is None
    report = compute_metrics(DAY, DAY + dt.timedelta(days=1), min_devices=5)
    assert report["device_mix"]["devices"] == 7
    assert report["device_mix"]["backends"] == {"wasm": 5, "webgpu": 2}


def test_metrics_daily_series(seeded):
    report = compute_metrics(DAY, DAY + dt.timedelta(days=2), min_devices=5)
    daily = report["daily"]
    assert daily["days"] == ["2026-11-10", "2026-11-11", "2026-11-12"]
    assert daily["outcomes"]["succeeded"] == [40, 40, 0]
    assert daily["outcomes"]["failed"] == [5, 5, 0]
    assert daily["outcomes"]["fell_back"] == [5, 5, 0]
    # Day one has the odd latencies 1, 3, ..., 99: median 50.
    assert daily["latency_p50"]["summarise v1"] == [50.0, 51.0, None]


def test_metrics_range_excludes_other_days(seeded):
    report = compute_metrics(DAY, DAY, min_devices=5)
    assert report["groups"][0]["tasks"] == 50


def test_metrics_server_tasks_count_users():
    version = make_version()
    users = [get_user_model().objects.create(username=f"user{i}") for i in range(5)]
    for user in users:
        make_task(version, None, user=user)
    report = compute_metrics(DAY, DAY, min_devices=5)
    assert report["hidden_groups"] == 0
    assert report["groups"][0]["devices"] == 5
    assert report["groups"][0]["backend"] == "server"


def test_metrics_csv_rows(seeded):
    report = compute_metrics(DAY, DAY + dt.timedelta(days=1), min_devices=5)
    [row] = csv_rows(report)
    assert row[:3] == ["summarise", 1, "smollm2-135m-instruct"]
    assert "short=0.75" in row[-2]
    assert "no-consent=8" in row[-3]


def test_parse_range_defaults_to_last_30_days():
    start, end = parse_range(None, None)
    assert end == timezone.localdate()
    assert (end - start).days == 29


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("2026-13-01", None, "start: expected a date"),
        ("2026-11-10", "2026-11-01", "is after end"),
        ("2024-01-01", "2026-01-01", "longer than"),
    ],
)
def test_parse_range_rejects_bad_values(start, end, message):
    with pytest.raises(ValueError, match=message):
        parse_range(start, end)

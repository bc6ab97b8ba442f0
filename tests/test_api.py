import datetime as dt
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import override_settings
from django.urls import reverse

from django_offload import api_views
from django_offload.conf import DEFAULTS
from django_offload.models import Device, Prompt, PromptVersion, Score, Task

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def clear_throttle_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def users():
    model = get_user_model()
    return {
        "owner": model.objects.create_user("owner", password="pw"),
        "other": model.objects.create_user("other", password="pw"),
        "staff": model.objects.create_user("staff", password="pw", is_staff=True),
    }


@pytest.fixture
def version():
    prompt = Prompt.objects.create(name="tag")
    return PromptVersion.objects.create(prompt=prompt, number=3, template="x")


def make_task(version, user, delivery, output=""):
    task = Task.objects.create(
        prompt_version=version,
        user=user,
        delivery=delivery,
        output=output,
        status=Task.Status.SUCCEEDED,
        backend="wasm",
        variant="q4f",
        model_id="smollm2-135m-instruct",
        finish_reason="stop",
        prompt_tokens=12,
        completion_tokens=4,
        latency_ms=850.0,
        ttft_ms=120.0,
        decode_tps=21.5,
    )
    Score.objects.create(
        task=task, name="json", data_type="boolean", value=1.0, passed=True
    )
    Score.objects.create(
        task=task, name="label", data_type="categorical", label="news", passed=True
    )
    return task


def task_url(task_id):
    return reverse("django_offload:api-task", args=[task_id])


def test_task_status_owner_server_delivery(client, users, version):
    task = make_task(version, users["owner"], Task.Delivery.SERVER, output="news")
    client.force_login(users["owner"])
    response = client.get(task_url(task.pk))
    assert response.status_code == 200
    data = response.json()
    assert data["status"] == "succeeded"
    assert data["prompt"] == "tag"
    assert data["prompt_version"] == 3
    assert data["output"] == "news"
    assert data["usage"] == {"prompt_tokens": 12, "completion_tokens": 4}
    assert data["timings"]["decode_tokens_per_second"] == 21.5
    scores = {score["name"]: score for score in data["scores"]}
    assert scores["json"]["value"] is True
    assert scores["label"]["label"] == "news"


def test_task_status_page_delivery_hides_output(client, users, version):
    task = make_task(version, users["owner"], Task.Delivery.PAGE)
    # A page-only row never stores output; the API must not show one anyway.
    Task.objects.filter(pk=task.pk).update(output="should-never-show")
    client.force_login(users["owner"])
    data = client.get(task_url(task.pk)).json()
    assert data["output"] is None
    assert "should-never-show" not in str(data)


def test_task_status_other_user_404(client, users, version):
    task = make_task(version, users["owner"], Task.Delivery.SERVER, output="x")
    client.force_login(users["other"])
    assert client.get(task_url(task.pk)).status_code == 404


def test_task_status_staff_not_owner_404(client, users, version):
    task = make_task(version, users["owner"], Task.Delivery.SERVER, output="x")
    client.force_login(users["staff"])
    assert client.get(task_url(task.pk)).status_code == 404


def test_task_status_anonymous_404(client, users, version):
    task = make_task(version, users["owner"], Task.Delivery.SERVER, output="x")
    assert client.get(task_url(task.pk)).status_code == 404


def test_task_status_unknown_id_404(client, users):
    client.force_login(users["owner"])
    assert client.get(task_url(uuid.uuid4())).status_code == 404


def test_task_status_anonymous_session_owner(client, version):
    session = client.session
    session["seen"] = True
    session.save()
    task = make_task(version, None, Task.Delivery.SERVER, output="ok")
    Task.objects.filter(pk=task.pk).update(session_key=session.session_key)
    response = client.get(task_url(task.pk))
    assert response.status_code == 200
    assert response.json()["output"] == "ok"


def seed_metrics(version, devices=5):
    today = dt.date.today()
    for i in range(devices):
        device = Device.objects.create(backend="wasm")
        task = Task.objects.create(
            prompt_version=version,
            device=device,
            backend="wasm",
            variant="q4f",
            status=Task.Status.SUCCEEDED,
            latency_ms=100.0 * (i + 1),
        )
        Score.objects.create(
            task=task, name="json", data_type="boolean", value=1.0, passed=i > 0
        )
    return today


def test_metrics_anonymous_forbidden(client):
    response = client.get(reverse("django_offload:api-metrics"))
    assert response.status_code in (401, 403)


def test_metrics_non_staff_forbidden(client, users):
    client.force_login(users["owner"])
    assert client.get(reverse("django_offload:api-metrics")).status_code == 403


def test_metrics_staff_sees_groups(client, users, version):
    today = seed_metrics(version)
    client.force_login(users["staff"])
    response = client.get(
        reverse("django_offload:api-metrics"),
        {"start": today.isoformat(), "end": today.isoformat()},
    )
    assert response.status_code == 200
    data = response.json()
    assert data["hidden_groups"] == 0
    [group] = data["groups"]
    assert group["tasks"] == 5
    assert group["latency_ms"]["p50"] == 300.0
    assert group["evaluators"]["json"]["pass_rate"] == pytest.approx(0.8)


def test_metrics_staff_small_group_hidden(client, users, version):
    today = seed_metrics(version, devices=4)
    client.force_login(users["staff"])
    data = client.get(
        reverse("django_offload:api-metrics"),
        {"start": today.isoformat(), "end": today.isoformat()},
    ).json()
    assert data["groups"] == []
    assert data["hidden_groups"] == 1
    assert data["device_mix"]["devices"] is None


def test_metrics_bad_date_400(client, users):
    client.force_login(users["staff"])
    response = client.get(reverse("django_offload:api-metrics"), {"end": "soon"})
    assert response.status_code == 400
    assert "end: expected a date" in response.json()["detail"]


def test_api_views_throttled_by_scope():
    views = [
        api_views.MetricsView,
        api_views.TaskStatusView,
        api_views.ModelListView,
        api_views.SchemaView,
    ]
    for view in views:
        assert view.throttle_scope in DEFAULTS["API_THROTTLE_RATES"]
        assert view.throttle_classes
    for rate in DEFAULTS["API_THROTTLE_RATES"].values():
        count, period = rate.split("/")
        assert int(count) > 0
        assert period in ("second", "minute", "hour", "day")


def test_task_status_throttled(client, users, version):
    task = make_task(version, users["owner"], Task.Delivery.SERVER, output="x")
    client.force_login(users["owner"])
    with override_settings(
        OFFLOAD={"API_THROTTLE_RATES": {"offload_tasks": "2/minute"}}
    ):
        codes = [client.get(task_url(task.pk)).status_code for _ in range(3)]
    assert codes == [200, 200, 429]


def test_rest_framework_rate_takes_precedence(client, users):
    client.force_login(users["staff"])
    rates = {"offload_metrics": "1/minute"}
    with override_settings(REST_FRAMEWORK={"DEFAULT_THROTTLE_RATES": rates}):
        codes = [
            client.get(reverse("django_offload:api-metrics")).status_code
            for _ in range(2)
        ]
    assert codes == [200, 429]


def test_schema_lists_endpoints(client):
    response = client.get(reverse("django_offload:api-schema"), {"format": "json"})
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/offload/api/metrics/" in paths
    assert "/offload/api/tasks/{id}/" in paths or "/offload/api/tasks/{pk}/" in paths
    assert "/offload/api/models/" in paths


@pytest.mark.models
def test_models_lists_servable_variants(client, settings, tmp_path):
    pytest.importorskip("django_offload.modelstore")
    from tests.modelstore_helpers import built_model_dir

    built_model_dir("smollm2-135m-instruct")
    response = client.get(reverse("django_offload:api-models"))
    assert response.status_code == 200
    models = response.json()
    assert models
    for model in models:
        assert model["variants"]
        for variant in model["variants"].values():
            assert "quality" not in variant
            assert variant["sha256"]

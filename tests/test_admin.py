import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from django_offload.models import (
    Device,
    Prompt,
    PromptVersion,
    Score,
    Task,
    VersionInUseError,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    user = get_user_model().objects.create_superuser("admin", "a@example.com", "pw")
    client.force_login(user)
    return client


@pytest.fixture
def version():
    prompt = Prompt.objects.create(name="classify")
    return PromptVersion.objects.create(
        prompt=prompt,
        number=1,
        template="Classify: {{ text }}",
        system="You label {{ kind }}.",
        evaluators=[{"name": "label", "type": "one_of", "labels": ["spam", "ham"]}],
        model_variants={"other": {"template": "Short {{ text }}"}},
    )


def used(version):
    device = Device.objects.create(backend="wasm")
    return Task.objects.create(prompt_version=version, device=device, backend="wasm")


def form_data(prompt, **changes):
    data = {
        "prompt": prompt.pk,
        "template": "Summarise: {{ text }}",
        "system": "",
        "messages": "[]",
        "max_new_tokens": 64,
        "temperature": 0.0,
        "top_k": 0,
        "top_p": 1.0,
        "seed": "",
        "stop": "[]",
        "output_schema": "",
        "evaluators": '[{"name": "short", "type": "word_count", "max": 50}]',
        "model_variants": "{}",
        "model_id": "smollm2-135m-instruct",
    }
    data.update(changes)
    return data


@pytest.mark.parametrize(
    "name",
    [
        "admin:django_offload_prompt_changelist",
        "admin:django_offload_prompt_add",
        "admin:django_offload_promptversion_changelist",
        "admin:django_offload_promptversion_add",
        "admin:django_offload_device_changelist",
        "admin:django_offload_task_changelist",
        "admin:django_offload_dashboard",
    ],
)
def test_admin_page_renders(admin_client, version, name):
    used(version)
    response = admin_client.get(reverse(name))
    assert response.status_code == 200


def test_app_index_links_dashboard(admin_client):
    response = admin_client.get(
        reverse("admin:app_list", kwargs={"app_label": "django_offload"})
    )
    assert reverse("admin:django_offload_dashboard").encode() in response.content


def test_version_add_assigns_next_number(admin_client, version):
    response = admin_client.post(
        reverse("admin:django_offload_promptversion_add"), form_data(version.prompt)
    )
    assert response.status_code == 302
    created = PromptVersion.objects.get(prompt=version.prompt, number=2)
    assert created.is_active is False
    assert created.evaluators[0]["name"] == "short"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "evaluators",
            '[{"name": "r", "type": "regex", "pattern": "(a+)+"}]',
            "evaluators[0].pattern",
        ),
        ("evaluators", '[{"name": "x", "type": "bleu"}]', "evaluators[0].type"),
        ("evaluators", '{"name": "x"}', "evaluators: expected a list"),
        (
            "output_schema",
            '{"type": "object", "patternProperties": {}}',
            "output_schema.patternProperties",
        ),
        ("template", "Hello {{ user.name }}", "template: invalid placeholder"),
        ("messages", '[{"role": "system", "content": "x"}]', "messages[0].role"),
        ("stop", '["", "x"]', "stop[0]"),
        ("model_variants", '{"m": {"prompt": "x"}}', "unknown keys"),
        ("top_p", "0", "top-p must be in"),
    ],
)
def test_version_form_rejects_bad_field(admin_client, version, field, value, message):
    response = admin_client.post(
        reverse("admin:django_offload_promptversion_add"),
        form_data(version.prompt, **{field: value}),
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert field in errors
    assert message in " ".join(errors[field])
    assert PromptVersion.objects.filter(prompt=version.prompt).count() == 1


def test_used_version_is_read_only(admin_client, version):
    used(version)
    url = reverse("admin:django_offload_promptversion_change", args=[version.pk])
    page = admin_client.get(url)
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    response = admin_client.post(url, form_data(version.prompt, template="Changed"))
    assert response.status_code == 403
    version.refresh_from_db()
    assert version.template == "Classify: {{ text }}"


def test_unused_version_can_be_edited(admin_client, version):
    url = reverse("admin:django_offload_promptversion_change", args=[version.pk])
    response = admin_client.post(url, form_data(version.prompt, template="New {{ a }}"))
    assert response.status_code == 302
    version.refresh_from_db()
    assert version.template == "New {{ a }}"


def test_used_version_save_raises(version):
    used(version)
    version.template = "Changed"
    with pytest.raises(VersionInUseError, match="template"):
        version.save()


def test_used_version_activation_allowed(version):
    used(version)
    version.is_active = True
    version.save()
    version.refresh_from_db()
    assert version.is_active is True


def test_copy_creates_next_inactive_version(admin_client, version):
    used(version)
    url = reverse("admin:django_offload_promptversion_copy", args=[version.pk])
    assert admin_client.get(url).status_code == 200
    response = admin_client.post(url)
    copy = PromptVersion.objects.get(prompt=version.prompt, number=2)
    assert response.status_code == 302
    assert response["Location"].endswith(f"/{copy.pk}/change/")
    assert copy.template == version.template
    assert copy.evaluators == version.evaluators
    assert copy.is_active is False


def test_activate_action_keeps_one_active(admin_client, version):
    second = PromptVersion.objects.create(
        prompt=version.prompt, number=2, template="x", is_active=False
    )
    PromptVersion.objects.filter(pk=version.pk).update(is_active=True)
    changelist = reverse("admin:django_offload_promptversion_changelist")
    admin_client.post(
        changelist, {"action": "activate", "_selected_action": [second.pk]}
    )
    active = list(PromptVersion.objects.filter(prompt=version.prompt, is_active=True))
    assert active == [second]


def test_activate_action_rejects_two_of_one_prompt(admin_client, version):
    second = PromptVersion.objects.create(prompt=version.prompt, number=2, template="x")
    changelist = reverse("admin:django_offload_promptversion_changelist")
    admin_client.post(
        changelist,
        {"action": "activate", "_selected_action": [version.pk, second.pk]},
    )
    assert not PromptVersion.objects.filter(is_active=True).exists()


def test_preview_renders_sample_variables(admin_client, version):
    url = reverse("admin:django_offload_promptversion_preview", args=[version.pk])
    page = admin_client.get(url)
    assert page.status_code == 200
    assert b'name="var_text"' in page.content
    assert b'name="var_kind"' in page.content
    response = admin_client.post(
        url,
        {
            "model_id": "smollm2-135m-instruct",
            "var_text": "buy now",
            "var_kind": "mail",
        },
    )
    assert response.status_code == 200
    assert response.context["rendered"] == [
        {"role": "system", "content": "You label mail."},
        {"role": "user", "content": "Classify: buy now"},
    ]


def test_preview_uses_model_override(admin_client, version):
    url = reverse("admin:django_offload_promptversion_preview", args=[version.pk])
    response = admin_client.post(
        url, {"model_id": "other", "var_text": "hi", "var_kind": "k"}
    )
    assert response.context["rendered"][-1]["content"] == "Short hi"


def test_task_admin_hides_page_output(admin_client, version):
    page_task = Task.objects.create(prompt_version=version, delivery=Task.Delivery.PAGE)
    server_task = Task.objects.create(
        prompt_version=version, delivery=Task.Delivery.SERVER, output="spam"
    )
    Score.objects.create(
        task=server_task,
        name="label",
        data_type="categorical",
        label="spam",
        passed=True,
    )
    page = admin_client.get(
        reverse("admin:django_offload_task_change", args=[page_task.pk])
    )
    assert page.status_code == 200
    assert "output" not in page.context["adminform"].form.fields
    assert b"Output" not in page.content
    page = admin_client.get(
        reverse("admin:django_offload_task_change", args=[server_task.pk])
    )
    assert b"Output" in page.content
    assert b'name="_save"' not in page.content


def test_device_admin_is_read_only(admin_client):
    device = Device.objects.create(backend="webgpu", session_key="secret-session")
    page = admin_client.get(
        reverse("admin:django_offload_device_change", args=[device.pk])
    )
    assert page.status_code == 200
    assert b"secret-session" not in page.content
    assert b'name="_save"' not in page.content
    add = admin_client.get(reverse("admin:django_offload_device_add"))
    assert add.status_code == 403


def test_dashboard_requires_permission(client):
    user = get_user_model().objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(user)
    response = client.get(reverse("admin:django_offload_dashboard"))
    assert response.status_code == 403


def test_dashboard_csv_export(admin_client, version):
    today = dt.date.today().isoformat()
    response = admin_client.get(
        reverse("admin:django_offload_dashboard"),
        {"start": today, "end": today, "format": "csv"},
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response.content.decode().startswith("prompt,prompt_version,")


def test_dashboard_bad_date_shows_error(admin_client):
    response = admin_client.get(
        reverse("admin:django_offload_dashboard"), {"start": "yesterday"}
    )
    assert response.status_code == 200
    assert "start: expected a date" in response.context["error"]


def test_prompt_change_lists_versions(admin_client, version):
    used(version)
    url = reverse("admin:django_offload_prompt_change", args=[version.prompt.pk])
    page = admin_client.get(url)
    assert page.status_code == 200
    add = reverse("admin:django_offload_promptversion_add")
    assert f"{add}?prompt={version.prompt.pk}".encode() in page.content
    change = reverse("admin:django_offload_promptversion_change", args=[version.pk])
    assert change.encode() in page.content


@pytest.mark.models
def test_preview_applies_chat_template(admin_client, version, settings):
    from tests.modelstore_helpers import built_model_dir

    built_model_dir("smollm2-135m-instruct")
    url = reverse("admin:django_offload_promptversion_preview", args=[version.pk])
    response = admin_client.post(
        url,
        {"model_id": "smollm2-135m-instruct", "var_text": "buy now", "var_kind": "k"},
    )
    templated = response.context["templated"]
    assert "<|im_start|>user\nClassify: buy now<|im_end|>" in templated["text"]
    assert templated["text"].endswith("<|im_start|>assistant\n")
    assert templated["tokens"] > 5
    assert templated["context_length"] == 8192


def test_preview_model_missing_from_store(admin_client, version, settings, tmp_path):
    settings.OFFLOAD = {"MODEL_STORE": str(tmp_path)}
    url = reverse("admin:django_offload_promptversion_preview", args=[version.pk])
    response = admin_client.post(
        url,
        {"model_id": "smollm2-135m-instruct", "var_text": "x", "var_kind": "k"},
    )
    assert "not in the model store" in response.context["templated"]["problem"]


def test_version_prompt_fixed_after_creation(admin_client, version):
    other = Prompt.objects.create(name="other")
    url = reverse("admin:django_offload_promptversion_change", args=[version.pk])
    response = admin_client.post(url, form_data(other, template="T {{ a }}"))
    assert response.status_code == 302
    version.refresh_from_db()
    assert version.prompt_id != other.pk
    assert version.template == "T {{ a }}"


def test_demo_prompt_versions_pass_form():
    # The demo migration's prompt versions must pass the same validation as
    # a version saved in the admin.
    import importlib
    import json

    from django.apps import apps

    from django_offload.admin import PromptVersionForm

    migration = importlib.import_module(
        "demo_project.notes.migrations.0002_demo_prompts"
    )
    migration.create_demo_prompts(apps)
    versions = list(PromptVersion.objects.select_related("prompt"))
    assert len(versions) == len(migration.PROMPTS)
    for version in versions:
        data = {}
        for name in PromptVersionForm._meta.fields:
            value = getattr(version, name)
            if name == "prompt":
                value = version.prompt_id
            elif isinstance(value, list | dict):
                value = json.dumps(value)
            data[name] = "" if value is None else value
        form = PromptVersionForm(data=data, instance=version)
        assert form.is_valid(), (version.prompt.name, form.errors)

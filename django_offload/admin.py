"""
Admin for prompts, prompt versions, devices and tasks, with the metrics
dashboard and the prompt preview.

A prompt version that a task used cannot be changed or deleted here (and
``PromptVersion.save`` enforces it too); "Copy as new version" starts the
next revision from it. Devices and tasks are read-only. A task's output is
shown only for tasks whose view requested server delivery.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, Max, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from django_offload import dashboard, prompts
from django_offload.evaluators import validate_specs
from django_offload.json_schema import validate_schema
from django_offload.models import Device, Prompt, PromptVersion, Score, Task

# Fields copied into a new version; activation and numbering are not.
COPIED_FIELDS = (
    "template",
    "system",
    "messages",
    "max_new_tokens",
    "temperature",
    "top_k",
    "top_p",
    "seed",
    "stop",
    "output_schema",
    "evaluators",
    "model_variants",
    "model_id",
)


def _as_validation_error(error: ValueError) -> forms.ValidationError:
    return forms.ValidationError(str(error), code="invalid")


class PromptVersionForm(forms.ModelForm):
    """
    Validates every structured field with the same rules the runtime uses,
    so an invalid version cannot be saved.
    """

    class Meta:
        model = PromptVersion
        fields = ("prompt", *COPIED_FIELDS)
        widgets = {
            "template": forms.Textarea(attrs={"rows": 6, "cols": 90}),
            "system": forms.Textarea(attrs={"rows": 3, "cols": 90}),
        }
        help_texts = {
            "template": _("User message; write variables as {{ name }}."),
            "evaluators": _(
                'List of evaluator specs, such as [{"name": "short", '
                '"type": "word_count", "max": 50}]. See docs/evaluation.md.'
            ),
            "output_schema": _(
                "JSON Schema of the output (the subset that devices support), or empty."
            ),
            "model_variants": _(
                'Per-model overrides by model id, such as {"smollm2-135m-instruct": '
                '{"template": "...", '
                '"system": "..."}}.'
            ),
            "stop": _('Stop strings, such as ["\\n\\n"].'),
        }

    def _check(self, field: str, validator: Any) -> Any:
        value = self.cleaned_data.get(field)
        try:
            validator(value, field)
        except ValueError as error:
            raise _as_validation_error(error) from None
        return value

    def clean_template(self) -> str:
        return self._check("template", prompts.validate_template)

    def clean_system(self) -> str:
        return self._check("system", prompts.validate_template)

    def clean_messages(self) -> list:
        return self._check("messages", prompts.validate_messages)

    def clean_model_variants(self) -> dict:
        return self._check("model_variants", prompts.validate_model_variants)

    def clean_stop(self) -> list:
        return self._check("stop", prompts.validate_stop)

    def clean_evaluators(self) -> list:
        value = self.cleaned_data.get("evaluators")
        try:
            validate_specs(value)
        except ValueError as error:
            raise _as_validation_error(error) from None
        return value

    def clean_output_schema(self) -> dict | None:
        value = self.cleaned_data.get("output_schema")
        if value is None:
            return None
        return self._check("output_schema", validate_schema)

    def clean_temperature(self) -> float:
        value = self.cleaned_data["temperature"]
        if not 0.0 <= value <= 5.0:
            raise forms.ValidationError(
                f"temperature must be in [0, 5], got {value!r}; 0 means greedy."
            )
        return value

    def clean_top_p(self) -> float:
        value = self.cleaned_data["top_p"]
        if not 0.0 < value <= 1.0:
            raise forms.ValidationError(f"top-p must be in (0, 1], got {value!r}.")
        return value


class VersionInline(admin.TabularInline):
    model = PromptVersion
    fields = ("number", "is_active", "model_id", "task_count", "created_at")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True
    ordering = ("-number",)

    @admin.display(description=_("tasks"))
    def task_count(self, obj: PromptVersion) -> int:
        return obj.tasks.count()


@admin.register(Prompt)
class PromptAdmin(admin.ModelAdmin):
    list_display = ("name", "active_version", "version_count", "created_at")
    search_fields = ("name", "description")
    inlines = [VersionInline]
    change_list_template = "admin/django_offload/prompt/change_list.html"
    change_form_template = "admin/django_offload/prompt/change_form.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Prompt]:
        return super().get_queryset(request).annotate(_versions=Count("versions"))

    @admin.display(description=_("versions"), ordering="_versions")
    def version_count(self, obj: Prompt) -> int:
        return obj._versions

    @admin.display(description=_("active version"))
    def active_version(self, obj: Prompt) -> str:
        active = obj.versions.filter(is_active=True).first()
        return f"v{active.number}" if active else "-"

    def get_urls(self) -> list:
        view = self.admin_site.admin_view(self.dashboard_view)
        return [
            path("dashboard/", view, name="django_offload_dashboard"),
            *super().get_urls(),
        ]

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm("django_offload.view_task"):
            raise PermissionDenied
        return dashboard.render_dashboard(request, self.admin_site)


@admin.register(PromptVersion)
class PromptVersionAdmin(admin.ModelAdmin):
    form = PromptVersionForm
    list_display = (
        "__str__",
        "prompt",
        "number",
        "is_active",
        "model_id",
        "evaluator_count",
        "task_count",
        "created_at",
    )
    list_filter = ("is_active", "prompt", "model_id")
    list_select_related = ("prompt",)
    actions = ["activate"]
    change_form_template = "admin/django_offload/promptversion/change_form.html"
    readonly_fields = ("number", "is_active", "created_at")

    def get_queryset(self, request: HttpRequest) -> QuerySet[PromptVersion]:
        return super().get_queryset(request).annotate(_tasks=Count("tasks"))

    @admin.display(description=_("tasks"), ordering="_tasks")
    def task_count(self, obj: PromptVersion) -> int:
        return obj._tasks

    @admin.display(description=_("evaluators"))
    def evaluator_count(self, obj: PromptVersion) -> int:
        return len(obj.evaluators or [])

    def has_change_permission(
        self, request: HttpRequest, obj: PromptVersion | None = None
    ) -> bool:
        # A used version is shown read-only, with no save buttons.
        if obj is not None and obj.is_used():
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(
        self, request: HttpRequest, obj: PromptVersion | None = None
    ) -> bool:
        if obj is not None and obj.is_used():
            return False
        return super().has_delete_permission(request, obj)

    def save_model(
        self, request: HttpRequest, obj: PromptVersion, form: Any, change: bool
    ) -> None:
        if not change:
            obj.number = _next_number(obj.prompt)
        super().save_model(request, obj, form, change)

    @admin.action(
        description=_("Activate the selected version"), permissions=["change"]
    )
    def activate(self, request: HttpRequest, queryset: QuerySet) -> None:
        versions = list(queryset.select_related("prompt"))
        prompts_seen = [version.prompt_id for version in versions]
        if len(set(prompts_seen)) != len(prompts_seen):
            self.message_user(
                request,
                _("Select at most one version per prompt; nothing was activated."),
                messages.ERROR,
            )
            return
        with transaction.atomic():
            for version in versions:
                activate_version(version)
        self.message_user(
            request,
            ngettext(
                "Activated %(count)d version.",
                "Activated %(count)d versions.",
                len(versions),
            )
            % {"count": len(versions)},
            messages.SUCCESS,
        )

    def get_urls(self) -> list:
        site = self.admin_site
        return [
            path(
                "<int:pk>/preview/",
                site.admin_view(self.preview_view),
                name="django_offload_promptversion_preview",
            ),
            path(
                "<int:pk>/copy/",
                site.admin_view(self.copy_view),
                name="django_offload_promptversion_copy",
            ),
            *super().get_urls(),
        ]

    def preview_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        version = get_object_or_404(
            PromptVersion.objects.select_related("prompt"), pk=pk
        )
        if not self.has_view_permission(request, version):
            raise PermissionDenied
        form = PreviewForm(version, request.POST or None)
        rendered = error = templated = None
        if request.method == "POST" and form.is_valid():
            model_id = form.cleaned_data["model_id"]
            try:
                rendered = prompts.render_prompt(version, form.variables(), model_id)
            except (ValueError, TypeError) as exc:
                error = str(exc)
            else:
                templated = template_for_model(rendered, model_id)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Preview of %(version)s") % {"version": version},
            "version": version,
            "form": form,
            "rendered": rendered,
            "templated": templated,
            "error": error,
        }
        return TemplateResponse(
            request, "admin/django_offload/promptversion/preview.html", context
        )

    def copy_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        source = get_object_or_404(
            PromptVersion.objects.select_related("prompt"), pk=pk
        )
        if request.method != "POST":
            context = {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": _("Copy %(version)s") % {"version": source},
                "version": source,
            }
            return TemplateResponse(
                request, "admin/django_offload/promptversion/copy_confirm.html", context
            )
        copy = copy_version(source)
        self.message_user(
            request,
            _("Created %(copy)s from %(source)s; edit it and activate it.")
            % {"copy": copy, "source": source},
            messages.SUCCESS,
        )
        url = reverse("admin:django_offload_promptversion_change", args=[copy.pk])
        return HttpResponseRedirect(url)


def template_for_model(messages: list[dict[str, str]], model_id: str) -> dict:
    """
    Apply the model's chat template to ``messages`` and count the prompt
    tokens, when the model is in the store.

    Returns ``{"text", "tokens", "context_length"}``, or ``{"problem"}`` with
    the reason the model's template could not be applied.
    """
    from django_offload.conf import offload_settings

    model_dir = offload_settings.model_store / model_id
    if not (model_dir / "tokenizer_config.json").is_file():
        return {"problem": f"Model {model_id!r} is not in the model store."}
    try:
        from django_offload.engine.chat import ChatTemplate
        from django_offload.engine.loading import read_manifest
        from django_offload.engine.text import load_tokenizer

        template = ChatTemplate.from_tokenizer_config(
            model_dir / "tokenizer_config.json"
        )
        text = template.render(messages, add_generation_prompt=True)
        tokens = len(
            load_tokenizer(model_dir).encode(text, add_special_tokens=False).ids
        )
        context_length = read_manifest(model_dir).get("context_length")
    except (ImportError, OSError, ValueError) as error:
        return {"problem": f"The chat template of {model_id!r} failed: {error}"}
    return {"text": text, "tokens": tokens, "context_length": context_length}


def _next_number(prompt: Prompt) -> int:
    current = prompt.versions.aggregate(top=Max("number"))["top"]
    return (current or 0) + 1


def activate_version(version: PromptVersion) -> None:
    """
    Make ``version`` the only active version of its prompt.
    """
    with transaction.atomic():
        PromptVersion.objects.filter(prompt=version.prompt_id, is_active=True).exclude(
            pk=version.pk
        ).update(is_active=False)
        PromptVersion.objects.filter(pk=version.pk).update(is_active=True)


def copy_version(source: PromptVersion) -> PromptVersion:
    """
    Create the next version of ``source``'s prompt with its content,
    inactive.
    """
    with transaction.atomic():
        Prompt.objects.select_for_update().filter(pk=source.prompt_id).first()
        copy = PromptVersion(prompt_id=source.prompt_id, is_active=False)
        for name in COPIED_FIELDS:
            setattr(copy, name, getattr(source, name))
        copy.number = _next_number(source.prompt)
        copy.save()
    return copy


class PreviewForm(forms.Form):
    """
    One text field per variable that the version's templates use, and the
    model whose template override to render.
    """

    model_id = forms.ChoiceField(label=_("model"))

    def __init__(self, version: PromptVersion, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        models = [version.model_id, *sorted(version.model_variants or {})]
        self.fields["model_id"].choices = [(m, m) for m in dict.fromkeys(models)]
        texts = [version.template, version.system]
        texts += [m.get("content", "") for m in version.messages or []]
        for override in (version.model_variants or {}).values():
            texts += list(override.values())
        names: list[str] = []
        for text in texts:
            for name in prompts.template_variables(text or ""):
                if name not in names:
                    names.append(name)
        self.variable_names = names
        for name in names:
            self.fields[f"var_{name}"] = forms.CharField(
                label=name,
                required=False,
                widget=forms.Textarea(attrs={"rows": 2, "cols": 80}),
            )

    def variables(self) -> dict[str, str]:
        """
        Return the sample variables typed into the form.
        """
        return {name: self.cleaned_data[f"var_{name}"] for name in self.variable_names}


class ReadOnlyAdmin(admin.ModelAdmin):
    """
    View-only admin: rows are written by the runtime, never by hand.
    """

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Device)
class DeviceAdmin(ReadOnlyAdmin):
    # The session key and channel name are left out: they are credentials.
    list_display = (
        "id",
        "user",
        "backend",
        "fallback_adapter",
        "threads",
        "memory_class",
        "variant",
        "consent",
        "connected",
        "last_seen",
    )
    list_filter = ("backend", "connected", "consent", "fallback_adapter")
    fields = (
        "id",
        "user",
        "backend",
        "fallback_adapter",
        "threads",
        "memory_class",
        "model_id",
        "variant",
        "consent",
        "connected",
        "first_seen",
        "last_seen",
    )
    readonly_fields = fields


class ScoreInline(admin.TabularInline):
    model = Score
    fields = ("name", "data_type", "value", "label", "passed")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


TASK_FIELDS = (
    "id",
    "prompt_version",
    "status",
    "delivery",
    "user",
    "device",
    "model_id",
    "variant",
    "backend",
    "threads",
    "attempts",
    "created_at",
    "acked_at",
    "finished_at",
    "error_code",
    "fallback_reason",
    "fallback_kind",
    "finish_reason",
    "prompt_tokens",
    "completion_tokens",
    "latency_ms",
    "ttft_ms",
    "decode_tps",
    "timings",
)


@admin.register(Task)
class TaskAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "prompt_version",
        "status",
        "delivery",
        "backend",
        "variant",
        "latency_ms",
        "created_at",
    )
    list_filter = ("status", "delivery", "backend", "variant")
    list_select_related = ("prompt_version__prompt",)
    date_hierarchy = "created_at"
    inlines = [ScoreInline]

    def get_fields(self, request: HttpRequest, obj: Task | None = None) -> tuple:
        # Page-only tasks never store output; server tasks show it here.
        if obj is not None and obj.delivery == Task.Delivery.SERVER:
            return (*TASK_FIELDS, "output")
        return TASK_FIELDS

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple:
        return self.get_fields(request, obj)

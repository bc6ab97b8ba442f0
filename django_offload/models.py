"""
Database models of django_offload.

Privacy rule for every model here: no prompt variable and no rendered prompt
is ever stored. A task's output is stored only when its view asked for it
(``Task.delivery == Delivery.SERVER``).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

# Fields of a prompt version that may change after a task used it.
VERSION_MUTABLE_FIELDS = frozenset({"is_active"})


class VersionInUseError(ValueError):
    """
    Raised when saving changes to a prompt version that tasks already used.
    """


class Prompt(models.Model):
    """
    A named prompt whose versions are managed in the admin.
    """

    name = models.SlugField(_("name"), max_length=100, unique=True)
    description = models.TextField(_("description"), blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("prompt")
        verbose_name_plural = _("prompts")

    def __str__(self) -> str:
        return self.name


class PromptVersion(models.Model):
    """
    One immutable revision of a prompt: template, generation parameters,
    output schema and evaluators. Versions used by a task are never edited,
    only superseded by a new version.
    """

    prompt = models.ForeignKey(
        Prompt, on_delete=models.CASCADE, related_name="versions"
    )
    number = models.PositiveIntegerField(_("number"))
    is_active = models.BooleanField(_("active"), default=False)
    # Text of the user message with {{variables}}.
    template = models.TextField(_("template"))
    system = models.TextField(_("system message"), blank=True)
    # Extra chat messages placed before the rendered template:
    # [{"role": "user" | "assistant", "content": "..."}].
    messages = models.JSONField(_("messages"), default=list, blank=True)
    max_new_tokens = models.PositiveIntegerField(_("max new tokens"), default=128)
    temperature = models.FloatField(_("temperature"), default=0.0)
    top_k = models.PositiveIntegerField(_("top-k"), default=0)
    top_p = models.FloatField(_("top-p"), default=1.0)
    seed = models.BigIntegerField(_("seed"), null=True, blank=True)
    stop = models.JSONField(_("stop strings"), default=list, blank=True)
    output_schema = models.JSONField(_("output JSON schema"), null=True, blank=True)
    evaluators = models.JSONField(_("evaluators"), default=list, blank=True)
    # {"<model id>": {"template": "...", "system": "..."}}
    model_variants = models.JSONField(
        _("per-model templates"), default=dict, blank=True
    )
    model_id = models.CharField(
        _("model"), max_length=100, default="smollm2-135m-instruct"
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["prompt", "-number"]
        unique_together = [("prompt", "number")]
        constraints = [
            models.UniqueConstraint(
                fields=["prompt"],
                condition=models.Q(is_active=True),
                name="django_offload_one_active_version",
            )
        ]
        verbose_name = _("prompt version")
        verbose_name_plural = _("prompt versions")

    def __str__(self) -> str:
        return f"{self.prompt.name} v{self.number}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        """
        Save the version; raise VersionInUseError when a task used it and a
        field other than ``is_active`` changed.
        """
        if self.is_used():
            changed = [
                name
                for name in self.changed_fields()
                if name not in VERSION_MUTABLE_FIELDS
            ]
            if changed:
                raise VersionInUseError(
                    f"Prompt version {self.pk} is used by tasks, so {changed!r} "
                    "cannot change; create a new version instead."
                )
        super().save(*args, **kwargs)

    def is_used(self) -> bool:
        """
        Return whether any task refers to this version.
        """
        return self.pk is not None and self.tasks.exists()

    def changed_fields(self) -> list[str]:
        """
        Return the names of fields whose values differ from the stored row.
        """
        if self.pk is None:
            return []
        stored = type(self).objects.filter(pk=self.pk).values().first()
        if stored is None:
            return []
        return [
            field.name
            for field in self._meta.concrete_fields
            if stored[field.attname] != getattr(self, field.attname)
        ]


class Device(models.Model):
    """
    A browser that runs tasks for its owner. Capabilities are coarse on
    purpose, so they cannot fingerprint the user.
    """

    class Backend(models.TextChoices):
        WEBGPU = "webgpu", "WebGPU"
        WASM = "wasm", "WASM"
        NONE = "none", _("none")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="offload_devices",
    )
    session_key = models.CharField(max_length=40, blank=True, db_index=True)
    backend = models.CharField(
        max_length=10, choices=Backend.choices, default=Backend.NONE
    )
    fallback_adapter = models.BooleanField(default=False)
    threads = models.PositiveSmallIntegerField(default=1)
    memory_class = models.CharField(max_length=10, blank=True)
    model_id = models.CharField(max_length=100, blank=True)
    variant = models.CharField(max_length=50, blank=True)
    consent = models.BooleanField(default=False)
    channel_name = models.CharField(max_length=200, blank=True)
    connected = models.BooleanField(default=False)
    first_seen = models.DateTimeField(auto_now_add=True)
    last_seen = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("device")
        verbose_name_plural = _("devices")

    def __str__(self) -> str:
        return f"{self.id} ({self.backend})"


class Task(models.Model):
    """
    One AI request. The row is the source of truth for the lease protocol.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("pending")
        LEASED = "leased", _("leased")
        RUNNING = "running", _("running")
        SUCCEEDED = "succeeded", _("succeeded")
        FAILED = "failed", _("failed")
        EXPIRED = "expired", _("expired")
        FELL_BACK = "fell_back", _("fell back")

    class Delivery(models.TextChoices):
        SERVER = "server", _("server")
        PAGE = "page", _("page only")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    prompt_version = models.ForeignKey(
        PromptVersion, on_delete=models.PROTECT, related_name="tasks"
    )
    model_id = models.CharField(max_length=100, blank=True)
    variant = models.CharField(max_length=50, blank=True)
    backend = models.CharField(max_length=10, blank=True)
    threads = models.PositiveSmallIntegerField(null=True, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="offload_tasks",
    )
    session_key = models.CharField(max_length=40, blank=True, db_index=True)
    device = models.ForeignKey(
        Device, null=True, blank=True, on_delete=models.SET_NULL, related_name="tasks"
    )
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    delivery = models.CharField(
        max_length=10, choices=Delivery.choices, default=Delivery.SERVER
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    lease_token = models.UUIDField(null=True, blank=True)
    lease_deadline = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    acked_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error_code = models.CharField(max_length=50, blank=True)
    fallback_reason = models.CharField(max_length=50, blank=True)
    fallback_kind = models.CharField(max_length=20, blank=True)
    finish_reason = models.CharField(max_length=20, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    # Timings in milliseconds and decode rate in tokens per second.
    latency_ms = models.FloatField(null=True, blank=True)
    ttft_ms = models.FloatField(null=True, blank=True)
    decode_tps = models.FloatField(null=True, blank=True)
    timings = models.JSONField(default=dict, blank=True)
    # Only for Delivery.SERVER; always empty for page-only tasks.
    output = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("task")
        verbose_name_plural = _("tasks")

    def __str__(self) -> str:
        return f"{self.id} ({self.status})"


class Score(models.Model):
    """
    One evaluator's result for one task: a number, a boolean or a label from
    the evaluator's declared set, never free text.
    """

    class DataType(models.TextChoices):
        NUMERIC = "numeric", _("numeric")
        BOOLEAN = "boolean", _("boolean")
        CATEGORICAL = "categorical", _("categorical")

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="scores")
    name = models.CharField(max_length=100)
    data_type = models.CharField(max_length=12, choices=DataType.choices)
    value = models.FloatField(null=True, blank=True)
    label = models.CharField(max_length=100, blank=True)
    passed = models.BooleanField(null=True, blank=True)

    class Meta:
        unique_together = [("task", "name")]
        verbose_name = _("score")
        verbose_name_plural = _("scores")

    def __str__(self) -> str:
        return f"{self.name}={self.label or self.value}"

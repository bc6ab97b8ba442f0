"""
Serializers of the REST API. They shape responses and document them in the
OpenAPI schema; the API accepts no request bodies.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from django_offload.models import Score, Task


class ScoreSerializer(serializers.ModelSerializer):
    """
    One evaluator's score: a number, a boolean or a declared label.
    """

    label = serializers.SerializerMethodField()
    value = serializers.SerializerMethodField()

    class Meta:
        model = Score
        fields = ("name", "data_type", "value", "label", "passed")

    def get_label(self, obj: Score) -> str | None:
        return obj.label or None

    def get_value(self, obj: Score) -> float | bool | None:
        # Boolean scores are stored as 1.0 / 0.0 and returned as booleans.
        if obj.data_type == Score.DataType.BOOLEAN and obj.value is not None:
            return bool(obj.value)
        return obj.value


class UsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField(allow_null=True)
    completion_tokens = serializers.IntegerField(allow_null=True)


class TimingsSerializer(serializers.Serializer):
    latency_ms = serializers.FloatField(allow_null=True)
    ttft_ms = serializers.FloatField(allow_null=True)
    decode_tokens_per_second = serializers.FloatField(allow_null=True)


class TaskStatusSerializer(serializers.ModelSerializer):
    """
    Status of one task for its owner. ``output`` is the generated text for
    tasks delivered to the server and always null for page-only tasks.
    """

    prompt = serializers.CharField(source="prompt_version.prompt.name")
    prompt_version = serializers.IntegerField(source="prompt_version.number")
    usage = serializers.SerializerMethodField()
    timings = serializers.SerializerMethodField()
    scores = ScoreSerializer(many=True)
    output = serializers.SerializerMethodField()

    class Meta:
        model = Task
        fields = (
            "id",
            "status",
            "delivery",
            "prompt",
            "prompt_version",
            "model_id",
            "variant",
            "backend",
            "finish_reason",
            "error_code",
            "fallback_reason",
            "created_at",
            "finished_at",
            "usage",
            "timings",
            "scores",
            "output",
        )

    def get_usage(self, obj: Task) -> UsageSerializer:
        return UsageSerializer(obj).data

    def get_timings(self, obj: Task) -> TimingsSerializer:
        return TimingsSerializer(
            {
                "latency_ms": obj.latency_ms,
                "ttft_ms": obj.ttft_ms,
                "decode_tokens_per_second": obj.decode_tps,
            }
        ).data

    def get_output(self, obj: Task) -> str | None:
        if obj.delivery != Task.Delivery.SERVER:
            return None
        return obj.output or None


class PercentilesSerializer(serializers.Serializer):
    p50 = serializers.FloatField(allow_null=True)
    p95 = serializers.FloatField(allow_null=True)


class EvaluatorFiguresSerializer(serializers.Serializer):
    scores = serializers.IntegerField()
    evaluated = serializers.IntegerField(help_text="Scores whose passed is not null.")
    passed = serializers.IntegerField()
    pass_rate = serializers.FloatField(allow_null=True)
    mean = serializers.FloatField(allow_null=True, help_text="Mean numeric value.")


class GroupSerializer(serializers.Serializer):
    """
    Figures of one prompt version, model variant and backend.
    """

    prompt = serializers.CharField()
    prompt_version = serializers.IntegerField()
    prompt_version_id = serializers.IntegerField()
    model_id = serializers.CharField()
    variant = serializers.CharField()
    backend = serializers.CharField()
    tasks = serializers.IntegerField()
    devices = serializers.IntegerField()
    succeeded = serializers.IntegerField()
    failed = serializers.IntegerField()
    fell_back = serializers.IntegerField()
    in_progress = serializers.IntegerField()
    success_rate = serializers.FloatField(allow_null=True)
    failure_rate = serializers.FloatField(allow_null=True)
    fallback_rate = serializers.FloatField(allow_null=True)
    fallback_reasons = serializers.DictField(child=serializers.IntegerField())
    evaluators = serializers.DictField(child=EvaluatorFiguresSerializer())
    latency_ms = PercentilesSerializer()
    ttft_ms = PercentilesSerializer()
    decode_tps_median = serializers.FloatField(allow_null=True)
    threads = serializers.DictField(child=serializers.IntegerField())


class DeviceMixSerializer(serializers.Serializer):
    devices = serializers.IntegerField(allow_null=True)
    backends = serializers.DictField(child=serializers.IntegerField())
    threads = serializers.DictField(child=serializers.IntegerField())


class DailySerializer(serializers.Serializer):
    days = serializers.ListField(child=serializers.DateField())
    outcomes = serializers.DictField(
        child=serializers.ListField(child=serializers.IntegerField())
    )
    latency_p50 = serializers.DictField(
        child=serializers.ListField(child=serializers.FloatField(allow_null=True))
    )


class MetricsSerializer(serializers.Serializer):
    """
    The metrics report: the same figures as the admin dashboard.
    """

    start = serializers.DateField()
    end = serializers.DateField()
    min_group_devices = serializers.IntegerField()
    hidden_groups = serializers.IntegerField()
    groups = GroupSerializer(many=True)
    device_mix = DeviceMixSerializer()
    daily = DailySerializer()


class VariantSerializer(serializers.Serializer):
    file = serializers.CharField()
    dtype = serializers.CharField()
    bytes = serializers.IntegerField()
    sha256 = serializers.CharField()
    memory_bytes = serializers.IntegerField()
    backends = serializers.ListField(child=serializers.CharField())
    reference = serializers.BooleanField()


class ModelSerializer(serializers.Serializer):
    """
    A model in the store with its servable variants only.
    """

    id = serializers.CharField()
    task = serializers.CharField()
    architecture = serializers.CharField()
    license = serializers.CharField()
    context_length = serializers.IntegerField(required=False)
    variants = serializers.DictField(child=VariantSerializer())

    @staticmethod
    def from_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
        """
        Keep a manifest's public fields and its servable variants.
        """
        variants = {
            name: {key: variant.get(key) for key in VariantSerializer().fields}
            for name, variant in manifest.get("variants", {}).items()
            if variant.get("servable")
        }
        shown = {key: manifest.get(key) for key in ("id", "task", "architecture")}
        shown["license"] = manifest.get("license")
        if "context_length" in manifest:
            shown["context_length"] = manifest["context_length"]
        shown["variants"] = variants
        return shown

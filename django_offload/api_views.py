"""
REST API views: metrics for staff, task status for the task's owner, the
servable models, and the OpenAPI schema. Every view is throttled per scope
(see ``OFFLOAD['API_THROTTLE_RATES']``).
"""

from __future__ import annotations

import logging

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from drf_spectacular.views import SpectacularAPIView
from rest_framework import permissions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from django_offload import metrics
from django_offload.models import Task
from django_offload.serializers import (
    MetricsSerializer,
    ModelSerializer,
    TaskStatusSerializer,
)
from django_offload.throttling import OffloadScopedThrottle

logger = logging.getLogger(__name__)


class MetricsView(APIView):
    """
    Staff only: the dashboard's figures for a date range, with the same
    privacy threshold.
    """

    permission_classes = [permissions.IsAdminUser]
    throttle_classes = [OffloadScopedThrottle]
    throttle_scope = "offload_metrics"

    @extend_schema(
        parameters=[
            OpenApiParameter("start", OpenApiTypes.DATE, description="First day."),
            OpenApiParameter("end", OpenApiTypes.DATE, description="Last day."),
        ],
        responses=MetricsSerializer,
    )
    def get(self, request: Request) -> Response:
        try:
            start, end = metrics.parse_range(
                request.query_params.get("start"), request.query_params.get("end")
            )
        except ValueError as error:
            return Response({"detail": str(error)}, status=400)
        report = metrics.compute_metrics(start, end)
        return Response(MetricsSerializer(report).data)


class TaskStatusView(APIView):
    """
    The owner's view of one task: status, scores, usage and timings, and the
    output only for tasks delivered to the server. Another user's task, or
    one of another session, is reported as not found.
    """

    permission_classes = [permissions.AllowAny]
    throttle_classes = [OffloadScopedThrottle]
    throttle_scope = "offload_tasks"

    @extend_schema(responses=TaskStatusSerializer)
    def get(self, request: Request, pk: str) -> Response:
        tasks = Task.objects.select_related("prompt_version__prompt").prefetch_related(
            "scores"
        )
        if request.user.is_authenticated:
            tasks = tasks.filter(user=request.user)
        else:
            session_key = request.session.session_key
            if not session_key:
                raise Http404
            tasks = tasks.filter(user__isnull=True, session_key=session_key)
        task = tasks.filter(pk=pk).first()
        if task is None:
            raise Http404
        return Response(TaskStatusSerializer(task).data)


class ModelListView(APIView):
    """
    The models in the store with their servable variants.
    """

    permission_classes = [permissions.AllowAny]
    throttle_classes = [OffloadScopedThrottle]
    throttle_scope = "offload_models"

    @extend_schema(responses=ModelSerializer(many=True))
    def get(self, request: Request) -> Response:
        from django_offload.modelstore import ManifestError, list_models

        try:
            manifests = list_models()
        except (ManifestError, OSError) as error:
            logger.error("Model store unreadable: %s", error)
            return Response({"detail": "The model store is unavailable."}, status=503)
        return Response([ModelSerializer.from_manifest(m) for m in manifests])


class SchemaView(SpectacularAPIView):
    """
    The OpenAPI 3 schema of the API.
    """

    throttle_classes = [OffloadScopedThrottle]
    throttle_scope = "offload_schema"

"""
HTTP routes of django_offload. Include them at a prefix of your choice, such
as ``path("offload/", include("django_offload.urls"))``.
"""

from django.urls import path

from django_offload import api_views, views

app_name = "django_offload"

urlpatterns = [
    path("manifest/", views.manifest_view, name="manifest"),
    path("fit/", views.fit_view, name="fit"),
    path(
        "models/<str:model_id>/<path:file_path>",
        views.model_file_view,
        name="model-file",
    ),
    path("api/metrics/", api_views.MetricsView.as_view(), name="api-metrics"),
    path("api/tasks/<uuid:pk>/", api_views.TaskStatusView.as_view(), name="api-task"),
    path("api/models/", api_views.ModelListView.as_view(), name="api-models"),
    path("api/schema/", api_views.SchemaView.as_view(), name="api-schema"),
]

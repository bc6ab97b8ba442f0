"""
HTTP routes of django_offload; projects include them at a prefix of their
choice, such as ``path("offload/", include("django_offload.urls"))``.
"""

from django.urls import path

from django_offload import views

app_name = "django_offload"
urlpatterns = [
    path("manifest/", views.manifest_view, name="manifest"),
    path("fit/", views.fit_view, name="fit"),
    path(
        "models/<str:model_id>/<path:file_path>",
        views.model_file_view,
        name="model-file",
    ),
]

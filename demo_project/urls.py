from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("offload/", include("django_offload.urls")),
    path("", include("demo_project.notes.urls")),
]

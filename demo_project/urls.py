from django.contrib import admin
from django.contrib.staticfiles.urls import staticfiles_urlpatterns
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("offload/", include("django_offload.urls")),
    path("", include("demo_project.notes.urls")),
]

# Static files go through the URL conf (in DEBUG only) rather than runserver's
# static handler, so the middleware adds the cross-origin isolation headers
# that module workers of an isolated page need.
urlpatterns += staticfiles_urlpatterns()

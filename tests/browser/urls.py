"""
URLs of the browser tests' server: a page that loads the runtime for a given
model, and the demo project's URLs.
"""

from django.http import HttpRequest, HttpResponse
from django.template import engines
from django.urls import include, path

PAGE = """{% load offload %}<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Runtime test page</title></head>
<body>
<h1>Runtime test page</h1>
{% offload_runtime model=model %}
</body>
</html>
"""


def runtime_page(request: HttpRequest, model_id: str) -> HttpResponse:
    template = engines["django"].from_string(PAGE)
    return HttpResponse(template.render({"model": model_id}, request))


urlpatterns = [
    path("runtime-page/<str:model_id>/", runtime_page),
    path("", include("demo_project.urls")),
]

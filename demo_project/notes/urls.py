from django.contrib.auth.decorators import login_required
from django.urls import path
from django.views.decorators.http import require_POST

from demo_project.notes import views

app_name = "notes"
urlpatterns = [
    path("", views.home, name="home"),
    path("notes/<int:pk>/", views.detail, name="detail"),
    path(
        "notes/<int:pk>/summarise/",
        login_required(require_POST(views.summarise)),
        name="summarise",
    ),
    path(
        "notes/<int:pk>/mood/",
        login_required(require_POST(views.detect_mood)),
        name="mood",
    ),
    path("chat/", login_required(require_POST(views.chat)), name="chat"),
]

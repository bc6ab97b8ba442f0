from django.urls import path

from demo_project.notes import views

app_name = "notes"
urlpatterns = [
    path("", views.home, name="home"),
]

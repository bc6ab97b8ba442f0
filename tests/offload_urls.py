from django.urls import path

from tests import offload_views

urlpatterns = [
    path("mood/sync/", offload_views.mood_sync),
    path("mood/async/", offload_views.mood_async),
    path("mood/page-sync/", offload_views.mood_page_sync),
    path("mood/page-async/", offload_views.mood_page_async),
    path("mood/error/", offload_views.mood_or_error),
    path("mood/hooked/", offload_views.mood_hooked),
    path("mood/wrong/", offload_views.mood_wrong_variables),
]

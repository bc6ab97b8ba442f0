"""
WebSocket routes of django_offload, for the project's ``URLRouter``.
"""

from django.urls import path

from django_offload.consumers import OffloadConsumer

websocket_urlpatterns = [
    path("ws/offload/", OffloadConsumer.as_asgi(), name="offload-socket"),
]

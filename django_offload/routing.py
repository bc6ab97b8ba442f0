"""
WebSocket routes of django_offload, for the project's ``URLRouter``.
"""

websocket_urlpatterns: list = []

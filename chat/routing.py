"""Websocket URL patterns for the chat app."""
from django.urls import re_path

from chat.consumers import ChatConsumer

# Match any path segment so that a bad slug reaches the consumer and is refused
# with a clean 403 instead of a routing error.
websocket_urlpatterns = [
    re_path(r"^ws/chat/(?P<slug>[^/]*)/$", ChatConsumer.as_asgi()),
]

"""Websocket URL patterns for the chat app."""
from django.urls import re_path

from chat.realtime.consumers import ChatConsumer, RoomConsumer

websocket_urlpatterns = [
    # Protocol v2: one socket per tab, rooms by subscription.
    re_path(r"^ws/$", ChatConsumer.as_asgi()),
    # Protocol v1 (deprecated): one socket per room. Any path segment matches, so that a
    # bad slug reaches the consumer and is refused with a close code instead of a routing error.
    re_path(r"^ws/chat/(?P<slug>[^/]*)/$", RoomConsumer.as_asgi()),
]

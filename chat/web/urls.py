"""URLs of the chat pages."""
from django.urls import path

from chat.web import files, moderation, previews, views

app_name = "chat"
urlpatterns = [
    path("", views.index, name="index"),
    path("chat/emoji.json", views.emoji_list, name="emoji"),
    path("chat/rooms.json", views.room_list, name="room_list"),
    path("search/", views.search_page, name="search"),
    path("search.json", views.search_json, name="search_json"),
    path("chat/<str:slug>/", views.room, name="room"),
    path("chat/<str:slug>/m/<int:seq>/", views.room, name="message"),
    path("chat/<str:slug>/members/", views.members, name="members"),
    path("chat/<str:slug>/members.json", views.member_search, name="member_search"),
    path("chat/<str:slug>/mute/", moderation.room_mute, name="mute"),
    path("chat/<str:slug>/leave/", views.room_leave, name="leave"),
    path("chat/<str:slug>/archive/", views.room_archive, name="archive"),
    path("chat/<str:slug>/invite/", views.invite_links, name="invite_links"),
    path("chat/<str:slug>/messages/", views.messages_page, name="messages"),
    path("chat/<str:slug>/uploads/", files.upload, name="upload"),
    # A file's name never holds "/", so no file is ever taken for a thumbnail.
    path("files/<int:attachment_id>/thumb/", files.file_thumbnail, name="file_thumbnail"),
    path("files/<int:attachment_id>/<str:name>", files.file_download, name="file"),
    path("chat/<str:slug>/previews/<int:preview_id>/image", previews.preview_image, name="preview_image"),
    path("invite/<str:token>/", views.invite, name="invite"),
    path("dm/", views.direct_open, name="direct_open"),
    path("dm/<str:username>/", views.direct, name="direct"),
]

from django.contrib import admin

from chat.domain.models import Membership, Message, Room


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "is_private", "last_seq", "last_message_at"]
    search_fields = ["slug", "name"]
    readonly_fields = ["last_seq", "last_cseq"]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["room", "seq", "author", "created_at", "edited_at", "is_deleted"]
    list_filter = ["is_deleted"]
    search_fields = ["body", "author__username", "room__slug"]
    raw_id_fields = ["room", "author"]
    readonly_fields = ["seq", "cseq", "client_id"]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["room", "user", "last_read_seq", "joined_at"]
    raw_id_fields = ["room", "user"]

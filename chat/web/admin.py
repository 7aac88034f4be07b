from django.contrib import admin
from django.utils.html import format_html, format_html_join

from chat.domain import moderation
from chat.domain.models import AuditLog, Ban, Membership, Message, Mute, Report, Room


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


class ServiceAdmin(admin.ModelAdmin):
    """An admin whose additions, changes and deletions go through moderation services, so that each is audited."""

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)


@admin.register(Ban)
class BanAdmin(ServiceAdmin):
    list_display = ["user", "banned_by", "reason", "hide_messages", "created_at"]
    search_fields = ["user__username", "reason"]
    raw_id_fields = ["user"]
    fields = ["user", "reason", "hide_messages"]

    def save_model(self, request, obj, form, change):
        ban = moderation.user_ban(actor=request.user, user=obj.user, hide_messages=obj.hide_messages,
                                  reason=obj.reason)
        obj.pk = ban.pk

    def delete_model(self, request, obj):
        moderation.user_unban(actor=request.user, user=obj.user)


@admin.register(Mute)
class MuteAdmin(ServiceAdmin):
    list_display = ["user", "room", "until", "muted_by", "reason", "created_at"]
    search_fields = ["user__username", "room__slug", "reason"]
    raw_id_fields = ["room", "user"]
    fields = ["room", "user", "until", "reason"]

    def has_change_permission(self, request, obj=None):
        return admin.ModelAdmin.has_change_permission(self, request, obj)  # a new `until` extends or shortens it

    def get_readonly_fields(self, request, obj=None):
        return ["room", "user"] if obj is not None else []

    def save_model(self, request, obj, form, change):
        mute = moderation.room_mute(actor=request.user, room=obj.room, user=obj.user, until=obj.until,
                                    reason=obj.reason)
        obj.pk = mute.pk

    def delete_model(self, request, obj):
        moderation.room_unmute(actor=request.user, room=obj.room, user=obj.user)
        obj.delete()  # an expired mute, which room_unmute leaves alone


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    list_display = ["created_at", "room", "author", "reporter", "reason", "resolved_at"]
    list_filter = [("resolved_at", admin.EmptyFieldListFilter)]
    search_fields = ["reason", "message__body", "reporter__username", "message__author__username"]
    list_select_related = ["message__room", "message__author", "reporter"]
    fields = ["room", "author", "reporter", "reason", "created_at", "context", "resolved_at", "resolved_by"]
    readonly_fields = fields
    actions = ["resolve"]

    def has_add_permission(self, request):
        return False  # members report from the page

    @admin.display(ordering="message__room__slug")
    def room(self, report):
        return report.message.room

    @admin.display(ordering="message__author__username")
    def author(self, report):
        return report.message.author

    @admin.display(description="The message and its context")
    def context(self, report):
        # The reported message in bold; every body escaped.
        rows = format_html_join("", '<tr style="font-weight: {}"><td>#{}</td><td>{}</td><td>{}</td><td>{}</td></tr>', (
            ("bold" if m.pk == report.message_id else "normal", m.seq,
             m.created_at.strftime("%Y-%m-%d %H:%M:%S"), m.author.username,
             "(deleted) " + m.body if m.is_deleted else m.body)
            for m in moderation.report_context(report)
        ))
        return format_html("<table>{}</table>", rows)

    @admin.action(description="Mark the selected reports resolved")
    def resolve(self, request, queryset):
        for report in queryset.select_related("message__room", "message__author"):
            moderation.report_resolve(actor=request.user, report=report)


@admin.register(AuditLog)
class AuditLogAdmin(admin.ModelAdmin):
    list_display = ["created_at", "actor", "action", "user", "room", "message", "detail"]
    list_filter = ["action"]
    search_fields = ["actor__username", "user__username", "room__slug"]
    list_select_related = ["actor", "user", "room", "message__room"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

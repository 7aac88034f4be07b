"""Rooms, their members and their messages."""
from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

SLUG_PATTERN = r"^[a-z0-9_-]{1,50}$"
MAX_BODY_LENGTH = 4000
MAX_CLIENT_ID_LENGTH = 64
MAX_NAME_LENGTH = 100
MAX_TOPIC_LENGTH = 250
MAX_FILE_NAME_LENGTH = 100
MAX_MESSAGE_ATTACHMENTS = 10
# An emoji with modifiers and joiners (a family, a flag) is a few code points; 32 leaves room.
MAX_EMOJI_LENGTH = 32

validate_room_slug = RegexValidator(
    SLUG_PATTERN,
    "Room names use 1 to 50 lowercase letters, digits, '-' or '_'.",
    code="invalid_slug",
)


class Room(models.Model):
    slug = models.CharField(max_length=50, unique=True, validators=[validate_room_slug])
    name = models.CharField(max_length=MAX_NAME_LENGTH)
    is_private = models.BooleanField(default=False)
    # A direct-message room: private, exactly two members, opened by /dm/<username>/.
    is_direct = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # The last allocated message seq; bumped under the row lock of each insert.
    last_seq = models.PositiveBigIntegerField(default=0)
    # The last allocated change number (a message's creation, edit or deletion); bumped under the same lock.
    last_cseq = models.PositiveBigIntegerField(default=0)
    last_message_at = models.DateTimeField(null=True, blank=True)
    topic = models.CharField(max_length=MAX_TOPIC_LENGTH, blank=True, default="")
    # The change number of the latest change to the name or topic: a resume after it replays the room as it is.
    changed_cseq = models.PositiveBigIntegerField(default=0)
    # An archived room is read-only and left out of room lists; its history stays readable.
    archived_at = models.DateTimeField(null=True, blank=True)
    # Signs the room's invite links (chat.domain.invites); a new key revokes every link made with the old one.
    invite_key = models.CharField(max_length=32, blank=True, default="")

    class Meta:
        ordering = ["slug"]

    def __str__(self):
        return self.slug

    def title_for(self, user):
        """Return the room's name as `user` sees it: the other person's name in a direct room."""
        if self.is_direct:
            others = [name for name in self.name.split(" & ") if name != user.username]
            return others[0] if others else user.username
        return self.name

    @property
    def is_archived(self):
        return self.archived_at is not None


class Membership(models.Model):
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    joined_at = models.DateTimeField(auto_now_add=True)
    last_read_seq = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["room", "user"], name="membership_unique")]

    def __str__(self):
        return f"{self.user} in {self.room}"


class Message(models.Model):
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="messages")
    seq = models.PositiveBigIntegerField()
    # The room's change number of this message's latest change, so that clients replay changes after theirs.
    cseq = models.PositiveBigIntegerField()
    body = models.TextField(max_length=MAX_BODY_LENGTH)
    created_at = models.DateTimeField(auto_now_add=True)
    edited_at = models.DateTimeField(null=True, blank=True)
    client_id = models.CharField(max_length=MAX_CLIENT_ID_LENGTH, null=True, blank=True)
    # Deleted rows stay so that seq numbers remain gap-free.
    is_deleted = models.BooleanField(default=False)
    # The reactions as every frame shows them (Reaction holds who reacted), kept with the row so that a message is
    # read and replayed in one query; null until the first reaction (the fast insert leaves it out).
    reactions = models.JSONField(null=True, blank=True)
    # A reply in the thread of `parent` (a message of the same room that is not a reply itself). Replies take
    # the room's seqs and cseqs like any message, and show in the room too only when `also_in_room`.
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="replies")
    # Defaults in the database too: the hand-written inserts of chat.domain.services leave these out.
    also_in_room = models.BooleanField(default=False, db_default=False)
    # A parent's thread as the room shows it, kept with the row (each reply changes it under the parent's cseq).
    reply_count = models.PositiveIntegerField(default=0, db_default=0)
    last_reply_at = models.DateTimeField(null=True, blank=True)
    # The files as every frame shows them (Attachment holds where they are), kept with the row as reactions are.
    attachments = models.JSONField(null=True, blank=True)
    # The link previews as every frame shows them (LinkPreview holds them), kept with the row as reactions are.
    previews = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["room", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["room", "seq"], name="message_room_seq_unique"),
            models.UniqueConstraint(fields=["room", "cseq"], name="message_room_cseq_unique"),
            models.UniqueConstraint(
                fields=["room", "author", "client_id"],
                condition=Q(client_id__isnull=False),
                name="message_client_id_unique",
            ),
        ]

    def __str__(self):
        return f"{self.room}#{self.seq}"


class ThreadFollow(models.Model):
    """A user who is told of new replies in a message's thread: its participants, and whoever follows it."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="follows")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="thread_follows")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["message", "user"], name="thread_follow_unique")]

    def __str__(self):
        return f"{self.user_id} follows {self.message}"


class Reaction(models.Model):
    """One user's emoji on one message."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="reaction_set")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reactions")
    emoji = models.CharField(max_length=MAX_EMOJI_LENGTH)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["message", "created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["message", "user", "emoji"], name="reaction_once_per_user_unique"),
        ]

    def __str__(self):
        return f"{self.emoji} by {self.user_id} on {self.message}"


class Attachment(models.Model):
    """A file uploaded to a room, its uploader's until a message they send takes it."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="attachments")
    uploader = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="attachments")
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.CASCADE, related_name="attachment_set"
    )
    # The name as shown and downloaded, made safe; the stored file's name is random (`path`), never this.
    name = models.CharField(max_length=MAX_FILE_NAME_LENGTH)
    # Sniffed from the content, never taken from the name or the browser.
    content_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField()
    path = models.CharField(max_length=255)
    # Raster images only, which are re-encoded: their sides and a thumbnail.
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    thumbnail_path = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["uploader", "created_at"], name="attachment_uploader_day")]

    def __str__(self):
        return f"{self.name} ({self.pk})"


def _optional_user():
    """Return a field naming a user, which turns null when that user is deleted (their actions stay)."""
    return models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )


class Ban(models.Model):
    """A user staff banned: no login, no socket, until unbanned (chat.domain.moderation)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="ban")
    banned_by = _optional_user()
    reason = models.CharField(max_length=MAX_TOPIC_LENGTH, blank=True, default="")
    # Whether the user's messages were hidden (deleted) with the ban; an unban leaves them hidden.
    hide_messages = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"ban of {self.user}"


class Mute(models.Model):
    """A user who may not send in one room until `until`."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="mutes")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="mutes")
    until = models.DateTimeField()
    muted_by = _optional_user()
    reason = models.CharField(max_length=MAX_TOPIC_LENGTH, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["room", "user"], name="mute_unique")]

    def __str__(self):
        return f"{self.user} muted in {self.room} until {self.until:%Y-%m-%d %H:%M}"


class Report(models.Model):
    """A member's report of a message to staff."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="reports")
    reporter = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reports")
    reason = models.CharField(max_length=MAX_TOPIC_LENGTH)
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = _optional_user()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["message", "reporter"], name="report_once_per_user_unique")]

    def __str__(self):
        return f"report of {self.message} by {self.reporter_id}"


class AuditLog(models.Model):
    """One moderation action: who did what to whom, kept when its subject goes."""

    actor = _optional_user()
    action = models.CharField(max_length=32)
    user = _optional_user()
    room = models.ForeignKey(Room, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.action} by {self.actor_id} at {self.created_at:%Y-%m-%d %H:%M}"


class LinkPreview(models.Model):
    """The preview of one link of a message, as the server fetched it (chat.domain.previews)."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="link_previews")
    url = models.TextField()
    # The link's place among the message's previews (0 for its first link).
    position = models.PositiveSmallIntegerField()
    title = models.CharField(max_length=200, blank=True, default="")
    description = models.CharField(max_length=300, blank=True, default="")
    # A thumbnail re-encoded by chat.domain.images (a few tens of KiB), served only to the room's readers.
    image = models.BinaryField(null=True, blank=True)
    image_type = models.CharField(max_length=20, blank=True, default="")
    # Removed by the message's author: shown nowhere, and never fetched again for this message.
    removed = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["message", "position"]
        constraints = [models.UniqueConstraint(fields=["message", "url"], name="link_preview_once_per_url")]

    def __str__(self):
        return f"{self.url} on {self.message_id}"

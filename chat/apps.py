from django.apps import AppConfig
from django.db import connections
from django.db.models.signals import post_delete, post_migrate


def search_index_ensure(using, **kwargs):
    """Make SQLite's search triggers again after a migration rebuilt the message table (chat.domain.search)."""
    if connections[using].vendor == "sqlite":
        from chat.domain.search import sqlite_index_ensure

        sqlite_index_ensure(connections[using])


class ChatConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "chat"

    def ready(self):
        from chat.realtime import signals  # noqa: F401  (connects the receivers)
        from chat.web import admin  # noqa: F401  (registers the models with the admin site)

        post_migrate.connect(search_index_ensure, sender=self)
        from chat.domain.attachments import attachment_files_delete
        from chat.domain.models import Attachment

        # However a row goes (a deleted message, a room or user deleted with everything theirs), its files go too.
        post_delete.connect(attachment_files_delete, sender=Attachment)

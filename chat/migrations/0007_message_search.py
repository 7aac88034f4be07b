"""The full-text index of message bodies: an FTS5 table on SQLite, a generated tsvector column on PostgreSQL."""
from django.conf import settings
from django.db import migrations

# SQLite: an external-content FTS5 table over chat_message, kept in step by triggers (made, and made again
# whenever a migration rebuilds chat_message, by chat.domain.search.sqlite_index_ensure).
SQLITE_TABLE = (
    "CREATE VIRTUAL TABLE chat_message_fts USING fts5("
    " body, content='chat_message', content_rowid='id', tokenize='unicode61 remove_diacritics 2')"
)
SQLITE_BACKWARD = [
    "DROP TRIGGER IF EXISTS chat_message_fts_update",
    "DROP TRIGGER IF EXISTS chat_message_fts_delete",
    "DROP TRIGGER IF EXISTS chat_message_fts_insert",
    "DROP TABLE chat_message_fts",
]


def _postgresql_forward(config):
    # A generated column follows every write of the body, the hand-written inserts included. Filling it and
    # building its index take minutes on a large history: longer than the app's statement timeout allows.
    return [
        "SET LOCAL statement_timeout = 0",
        f"ALTER TABLE chat_message ADD COLUMN search tsvector GENERATED ALWAYS AS"
        f" (to_tsvector('{config}'::regconfig, body)) STORED",
        "CREATE INDEX chat_message_search ON chat_message USING gin (search)",
    ]


POSTGRESQL_BACKWARD = ["DROP INDEX chat_message_search", "ALTER TABLE chat_message DROP COLUMN search"]


def forward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "sqlite":
        from chat.domain.search import sqlite_index_ensure

        schema_editor.execute(SQLITE_TABLE)
        sqlite_index_ensure(schema_editor.connection)
    elif vendor == "postgresql":
        for statement in _postgresql_forward(settings.CHAT_SEARCH_CONFIG):
            schema_editor.execute(statement)


def backward(apps, schema_editor):
    statements = {"sqlite": SQLITE_BACKWARD, "postgresql": POSTGRESQL_BACKWARD}.get(schema_editor.connection.vendor, [])
    for statement in statements:
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("chat", "0006_room_archive_invites")]
    operations = [migrations.RunPython(forward, backward)]

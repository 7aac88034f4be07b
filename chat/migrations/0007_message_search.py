"""The full-text index of message bodies: an FTS5 table on SQLite, a generated tsvector column on PostgreSQL."""
from django.conf import settings
from django.db import migrations

# SQLite: an external-content FTS5 table over chat_message, kept in step by triggers, so that every way of
# writing a message (the ORM, the hand-written inserts) updates it in the same transaction.
SQLITE_FORWARD = [
    "CREATE VIRTUAL TABLE chat_message_fts USING fts5("
    " body, content='chat_message', content_rowid='id', tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER chat_message_fts_insert AFTER INSERT ON chat_message BEGIN"
    " INSERT INTO chat_message_fts(rowid, body) VALUES (new.id, new.body); END",
    "CREATE TRIGGER chat_message_fts_delete AFTER DELETE ON chat_message BEGIN"
    " INSERT INTO chat_message_fts(chat_message_fts, rowid, body) VALUES ('delete', old.id, old.body); END",
    "CREATE TRIGGER chat_message_fts_update AFTER UPDATE OF body ON chat_message BEGIN"
    " INSERT INTO chat_message_fts(chat_message_fts, rowid, body) VALUES ('delete', old.id, old.body);"
    " INSERT INTO chat_message_fts(rowid, body) VALUES (new.id, new.body); END",
    "INSERT INTO chat_message_fts(chat_message_fts) VALUES ('rebuild')",
]
SQLITE_BACKWARD = [
    "DROP TRIGGER chat_message_fts_update",
    "DROP TRIGGER chat_message_fts_delete",
    "DROP TRIGGER chat_message_fts_insert",
    "DROP TABLE chat_message_fts",
]


def _postgresql_forward(config):
    # A generated column follows every write of the body, the hand-written inserts included.
    return [
        f"ALTER TABLE chat_message ADD COLUMN search tsvector GENERATED ALWAYS AS"
        f" (to_tsvector('{config}'::regconfig, body)) STORED",
        "CREATE INDEX chat_message_search ON chat_message USING gin (search)",
    ]


POSTGRESQL_BACKWARD = ["DROP INDEX chat_message_search", "ALTER TABLE chat_message DROP COLUMN search"]


def forward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "sqlite":
        statements = SQLITE_FORWARD
    elif vendor == "postgresql":
        statements = _postgresql_forward(settings.CHAT_SEARCH_CONFIG)
    else:
        return
    for statement in statements:
        schema_editor.execute(statement)


def backward(apps, schema_editor):
    statements = {"sqlite": SQLITE_BACKWARD, "postgresql": POSTGRESQL_BACKWARD}.get(schema_editor.connection.vendor, [])
    for statement in statements:
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("chat", "0006_room_archive_invites")]
    operations = [migrations.RunPython(forward, backward)]

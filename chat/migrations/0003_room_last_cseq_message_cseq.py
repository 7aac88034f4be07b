from django.db import migrations, models
from django.db.models import F


def number_existing_changes(apps, schema_editor):
    """Give each stored message its seq as cseq, and each room its last_seq as last_cseq."""
    # Every message so far counts as one change, its creation: edits and deletions before this had no number.
    apps.get_model("chat", "Message").objects.update(cseq=F("seq"))
    apps.get_model("chat", "Room").objects.update(last_cseq=F("last_seq"))


class Migration(migrations.Migration):

    dependencies = [
        ("chat", "0002_room_is_direct"),
    ]

    operations = [
        migrations.AddField(
            model_name="room",
            name="last_cseq",
            field=models.PositiveBigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="message",
            name="cseq",
            field=models.PositiveBigIntegerField(null=True),
        ),
        migrations.RunPython(number_existing_changes, migrations.RunPython.noop, elidable=True),
        migrations.AlterField(
            model_name="message",
            name="cseq",
            field=models.PositiveBigIntegerField(),
        ),
        migrations.AddConstraint(
            model_name="message",
            constraint=models.UniqueConstraint(fields=("room", "cseq"), name="message_room_cseq_unique"),
        ),
    ]

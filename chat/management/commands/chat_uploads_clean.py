"""Delete uploads that no message took within a day (chat/domain/attachments.py); run it daily, e.g. from cron."""
from django.core.management.base import BaseCommand

from chat.domain import attachments


class Command(BaseCommand):
    help = "Delete uploaded files that no message took within a day of their upload."

    def handle(self, *args, **options):
        count = attachments.attachments_stale_delete()
        self.stdout.write(f"Deleted {count} unsent upload{'s' if count != 1 else ''}.")

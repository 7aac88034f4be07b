"""Print the JSON Schema of protocol v2's frames (chat/realtime/frames.py)."""
import json

from django.core.management.base import BaseCommand

from chat.realtime import frames


class Command(BaseCommand):
    help = "Print the JSON Schema of every client and server frame of protocol v2."

    def handle(self, *args, **options):
        self.stdout.write(json.dumps(frames.schema(), indent=2))

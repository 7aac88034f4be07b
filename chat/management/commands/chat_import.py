"""Load a chat_export file into an empty database (chat/domain/export.py, docs/export.md)."""
import sys
from contextlib import nullcontext

from django.core.management.base import BaseCommand, CommandError

from chat.domain import export


class Command(BaseCommand):
    help = (
        "Load the JSON lines of chat_export (--input, or stdin) into a database without rooms or messages:"
        " all of them, or at the first bad line nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("--input", "-i", metavar="FILE", dest="source", help="read FILE (default: stdin)")

    def handle(self, *args, source=None, **options):
        try:
            # Bytes: a line that is not UTF-8 is reported with its number, as any other bad line.
            opened = open(source, "rb") if source else nullcontext(sys.stdin.buffer)
        except OSError as error:
            raise CommandError(f"Cannot read {source}: {error.strerror}.") from None
        with opened as lines:
            try:
                counts = export.import_lines(lines)
            except (export.InvalidLine, export.ImportRefused) as error:
                raise CommandError(f"Nothing imported: {error}") from None
        self.stdout.write(f"Imported {export.counts_text(counts)}.")

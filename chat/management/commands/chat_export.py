"""Write the whole chat as JSON lines (chat/domain/export.py, docs/export.md), to stdout or a file."""
import json
import os
import tempfile
from contextlib import closing
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from chat.domain import export


class Command(BaseCommand):
    help = (
        "Write every user (password hashes included: keep the output secret), room, membership, message and"
        " reaction as JSON lines, from one snapshot of the database, to stdout or --output."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--output", "-o", metavar="FILE",
            help="write to FILE, readable by its owner only, which appears only once complete (default: stdout)",
        )
        parser.add_argument(
            "--chunk-size", type=int, default=export.CHUNK_SIZE, help="rows read per database round trip",
        )

    def handle(self, *args, output=None, chunk_size, **options):
        if chunk_size < 1:
            raise CommandError("--chunk-size takes a whole number above 0.")
        with closing(export.export_lines(chunk_size=chunk_size)) as lines:
            last = self._write(lines, output) if output else self._print(lines)
        counts = json.loads(last)["counts"]
        self.stderr.write(f"Exported {export.counts_text(counts)}.")

    def _print(self, lines):
        line = ""
        for line in lines:
            self.stdout.write(line, ending="")
        return line

    def _write(self, lines, output):
        target = Path(output)
        # mkstemp creates the file readable by its owner only, as password hashes want.
        descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "w", encoding="ascii", newline="\n") as file:
                line = ""
                for line in lines:
                    file.write(line)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return line

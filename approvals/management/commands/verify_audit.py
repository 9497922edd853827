import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from audit.events import verify_ledger
from core.ledger.verify import lag_seconds


class Command(BaseCommand):
    help = (
        "Verify the audit ledger from the rows: every event's leaf hash, no gap, every signed "
        "head's root and signature; with --trusted-head, that the log still extends a head "
        "published before (a witness's copy). Exits 2 naming the first bad event."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--trusted-head",
            help="a head as JSON (a file, e.g. a line of a witness file, or the JSON itself)",
        )

    def handle(self, *args, **opts):
        trusted = None
        if opts["trusted_head"]:
            text = opts["trusted_head"]
            path = Path(text)
            if not text.lstrip().startswith("{") and path.exists():
                text = path.read_text().strip().splitlines()[-1]
            try:
                trusted = json.loads(text)
            except ValueError as exc:
                raise CommandError(f"--trusted-head is not a head as JSON: {exc}") from None
        result = verify_ledger(trusted_head=trusted)
        if not result.ok:
            where = f" at event #{result.bad_seq}" if result.bad_seq else ""
            raise CommandError(
                f"ledger BROKEN{where}: {result.problem} ({result.checked} events verified "
                "before it)",
                returncode=2,
            )
        pending = ""
        if result.pending:
            pending = (
                f"; {result.pending} events waiting for the sequencer (oldest "
                f"{lag_seconds(result):.1f} s)"
            )
        trusted_note = (
            f", extends the trusted head of size {trusted['tree_size']}" if trusted else ""
        )
        self.stdout.write(
            f"ledger OK: {result.checked} events verified, root {result.root_hash[:16]}…"
            f"{trusted_note}{pending}"
        )

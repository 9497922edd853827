from django.core.management.base import BaseCommand, CommandError

from approvals.audit import verify_chain


class Command(BaseCommand):
    help = "Verify the audit trail's hash chain. Exits non-zero naming the first bad event."

    def handle(self, *args, **opts):
        result = verify_chain()
        if not result.ok:
            raise CommandError(
                f"audit chain BROKEN at event #{result.bad_seq}: {result.problem} "
                f"({result.checked} events verified before it)",
                returncode=2,
            )
        self.stdout.write(f"audit chain OK: {result.checked} events verified")

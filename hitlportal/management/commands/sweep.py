import json

from django.core.management.base import BaseCommand

from hitlportal.sweeps import run_all


class Command(BaseCommand):
    help = "Run the expiry and reconcile sweeps once (the schedule calls the same code)."

    def handle(self, *args, **opts):
        self.stdout.write(json.dumps(run_all(), sort_keys=True))

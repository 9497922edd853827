"""Django's `createsuperuser`, with the account it creates in the audit trail (`user.created`
with its authority), like every other change of who may do what."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.management.commands import createsuperuser
from django.utils import timezone

from approvals.services import user_authority_record
from audit import events as audit
from audit.events import Actor


class Command(createsuperuser.Command):
    def handle(self, *args, **options):
        started = timezone.now()
        with audit.atomic():
            super().handle(*args, **options)
            created = get_user_model().objects.filter(is_superuser=True, date_joined__gte=started)
            for user in created:
                user_authority_record(user, None, actor=Actor.system("createsuperuser"))

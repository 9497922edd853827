"""Django's migrate, refusing first a database part-way through the migrations 0.1.0 squashed
(`core.migration_squash`): with a clear message instead of a missing-node error."""

from __future__ import annotations

from django.core.management.commands.migrate import Command as DjangoMigrate
from django.db import connections

from core.migration_squash import check_squash_complete


class Command(DjangoMigrate):
    def handle(self, *args, **options):
        check_squash_complete(connections[options["database"]])
        return super().handle(*args, **options)

"""0.1.0's migrations were squashed into a fresh set (issue 19); the old files are gone. A
database is either new (none of the old migrations recorded: the new set creates it) or was
migrated to the old set's end (all of them recorded: the new set is recorded as applied, and
nothing runs). A database part-way through the old set cannot be carried by the new set: the
migrate command refuses it and says what to do, instead of failing on a missing node or a
column that already exists."""

from __future__ import annotations

from django.core.management.base import CommandError
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder

LAST_COMMIT_BEFORE = "16693ed"


def replaced_migrations() -> set[tuple[str, str]]:
    """Every old migration the new set replaces (read from the files, without a database)."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    return {tuple(name) for m in loader.replacements.values() for name in m.replaces}


def check_squash_complete(connection) -> None:
    recorder = MigrationRecorder(connection)
    if not recorder.has_table():
        return
    applied = set(recorder.applied_migrations())
    replaced = replaced_migrations()
    done = replaced & applied
    if not done or done == replaced:
        return
    missing = sorted(replaced - done)
    raise CommandError(
        f"This database was migrated part-way through the migrations that 0.1.0 squashed: "
        f"{len(done)} of {len(replaced)} are applied, and "
        f"{', '.join('.'.join(m) for m in missing[:3])}{' …' if len(missing) > 3 else ''} "
        f"{'is' if len(missing) == 1 else 'are'} not. Migrate it to the end of the old set "
        f"first, with the last version that has them "
        f"(git checkout {LAST_COMMIT_BEFORE} && python manage.py migrate), then migrate "
        f'again with this version. See docs/production.md, "Upgrading".'
    )

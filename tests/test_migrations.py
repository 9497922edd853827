"""0.1.0's migrations are one fresh set (issue 19): a new database is built from it (with the
one row the old data migrations left on a new database), a database migrated to the end of
the old set is recorded as having it and nothing runs, and a database part-way through the
old set is refused with what to do — never half-migrated."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder

from approvals.models import PolicyGeneration
from core.migration_squash import LAST_COMMIT_BEFORE, replaced_migrations

OURS = {"agents", "api", "approvals", "audit", "core", "notifications", "oversight"}


def _ours(names) -> set[tuple[str, str]]:
    return {(app, name) for app, name in names if app in OURS}


@pytest.fixture
def recorded():
    """The test database's migration records, put back as they were after the test."""
    recorder = MigrationRecorder(connection)
    before = set(recorder.applied_migrations())
    yield recorder
    recorder.migration_qs.all().delete()
    recorder.migration_qs.bulk_create(recorder.Migration(app=a, name=n) for a, n in before)


@pytest.mark.django_db
def test_a_new_database_is_built_by_the_squashed_set_in_a_few_steps():
    loader = MigrationLoader(connection)
    ours = _ours(loader.graph.nodes)
    squashed = set(loader.replacements)
    assert len(squashed) == 6 and squashed <= ours  # the 36 old ones, in 6 (+ 3 rewritten)
    assert not replaced_migrations() & set(loader.graph.nodes)  # no old step runs
    # Django records the old names a squash replaces with it: a later release can drop them
    assert _ours(loader.applied_migrations) == ours | replaced_migrations()
    # what approvals 0009 left on a new database: the routing cache's generation row
    assert PolicyGeneration.objects.filter(pk=1, value=1).exists()


@pytest.mark.django_db(transaction=True)
def test_a_database_at_the_end_of_the_old_set_is_recorded_as_having_the_new_one(recorded):
    new = _ours(recorded.applied_migrations())
    squashed = set(MigrationLoader(None, ignore_no_migrations=True).replacements)
    # What a database at the old set's end has recorded: the old names, the three apps'
    # 0001 (rewritten in place), and whatever came after the squash (its schema is here too)
    later = new - squashed - replaced_migrations()
    recorded.migration_qs.filter(app__in=OURS).delete()
    recorded.migration_qs.bulk_create(
        recorded.Migration(app=a, name=n) for a, n in replaced_migrations() | later
    )
    out = StringIO()
    call_command("migrate", interactive=False, stdout=out)
    assert "No migrations to apply." in out.getvalue()
    assert new <= set(recorded.applied_migrations())


@pytest.mark.django_db(transaction=True)
def test_a_database_part_way_through_the_old_set_is_refused_and_told_what_to_do(recorded):
    recorded.migration_qs.filter(app__in=OURS).delete()
    old = sorted(replaced_migrations())
    missing = ("agents", "0010_idempotencyrecord_moved_to_api")
    recorded.migration_qs.bulk_create(
        recorded.Migration(app=a, name=n) for a, n in old if (a, n) != missing
    )
    records = set(recorded.applied_migrations())
    with pytest.raises(CommandError) as refused:
        call_command("migrate", interactive=False, verbosity=0)
    message = str(refused.value)
    assert f"{len(old) - 1} of {len(old)} are applied" in message
    assert "agents.0010_idempotencyrecord_moved_to_api is not" in message
    assert f"git checkout {LAST_COMMIT_BEFORE} && python manage.py migrate" in message
    assert set(recorded.applied_migrations()) == records  # nothing ran, nothing recorded

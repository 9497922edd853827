"""Moving a model to another app without touching its table (issue 19): the migration pair is
a state-only delete in the old app and a state-only create (same `db_table`) in the new one,
plus `move_content_type`, so that its permissions, and every role and person holding them,
follow it (a permission hangs off the model's content type, named by app label)."""

from __future__ import annotations

from django.db import migrations


def _move(apps, old_app: str, new_app: str, model: str) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    old = ContentType.objects.filter(app_label=old_app, model=model).first()
    if old is None:  # a fresh database: post_migrate creates it under the new app
        return
    new = ContentType.objects.filter(app_label=new_app, model=model).first()
    if new is None:
        old.app_label = new_app
        old.save(update_fields=["app_label"])
        return
    # Both exist (post_migrate ran in between): give the holders of the old permissions the
    # new ones of the same codename, then drop the old content type (and its permissions).
    for perm in Permission.objects.filter(content_type=old):
        twin = Permission.objects.filter(content_type=new, codename=perm.codename).first()
        if twin is None:
            perm.content_type = new
            perm.save(update_fields=["content_type"])
            continue
        twin.group_set.add(*perm.group_set.all())
        twin.user_set.add(*perm.user_set.all())
    old.delete()


def move_content_type(old_app: str, new_app: str, model: str) -> migrations.RunPython:
    """The RunPython that relabels `old_app.model`'s content type as `new_app.model`
    (and back when unapplied)."""

    def forwards(apps, schema_editor):
        _move(apps, old_app, new_app, model)

    def backwards(apps, schema_editor):
        _move(apps, new_app, old_app, model)

    return migrations.RunPython(forwards, backwards)

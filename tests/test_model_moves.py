"""Models that changed app (issue 19) keep their tables, and their permissions follow them: the
roles that held `approvals.view_auditevent` hold `audit.view_auditevent`."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType

from core.model_moves import _move

pytestmark = pytest.mark.django_db


def _perm(app_label: str, model: str, codename: str) -> Permission:
    ct, _ = ContentType.objects.get_or_create(app_label=app_label, model=model)
    return Permission.objects.create(content_type=ct, codename=codename, name=codename)


def test_it_relabels_the_content_type_so_roles_keep_their_permissions():
    role = Group.objects.create(name="auditors")
    role.permissions.add(_perm("approvals", "thing", "view_thing"))
    _move(apps, "approvals", "audit", "thing")
    assert list(role.permissions.values_list("content_type__app_label", "codename")) == [
        ("audit", "view_thing")
    ]
    assert not ContentType.objects.filter(app_label="approvals", model="thing").exists()


def test_it_merges_into_a_content_type_that_already_exists():
    role = Group.objects.create(name="auditors")
    role.permissions.add(_perm("approvals", "thing", "view_thing"))
    _perm("audit", "thing", "view_thing")
    _move(apps, "approvals", "audit", "thing")
    assert list(role.permissions.values_list("content_type__app_label", "codename")) == [
        ("audit", "view_thing")
    ]
    assert not ContentType.objects.filter(app_label="approvals", model="thing").exists()


def test_the_moved_tables_keep_their_names():
    assert apps.get_model("audit", "AuditEvent")._meta.db_table == "approvals_auditevent"

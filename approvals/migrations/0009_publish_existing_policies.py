import uuid

from django.db import migrations
from django.utils import timezone

from core.canonical import normalize

STATE_FIELDS = ("id", "live_version", "published_at", "published_by")


def publish_existing_policies(apps, schema_editor):
    """Policies from before versioning keep routing: each becomes version 1, published."""
    Policy = apps.get_model("approvals", "Policy")
    PolicyVersion = apps.get_model("approvals", "PolicyVersion")
    PolicyGeneration = apps.get_model("approvals", "PolicyGeneration")
    fields = [f for f in Policy._meta.concrete_fields if f.name not in STATE_FIELDS]
    now = timezone.now()
    for policy in Policy.objects.all():
        snapshot = normalize({f.name: f.value_from_object(policy) for f in fields})
        version = PolicyVersion.objects.create(
            policy=policy, number=1, snapshot=snapshot, changes={}, created_at=now
        )
        Policy.objects.filter(pk=policy.pk).update(live_version=version, published_at=now)
    PolicyGeneration.objects.create(pk=1, value=1, stamp=uuid.uuid4())


class Migration(migrations.Migration):
    dependencies = [("approvals", "0008_policy_versions_conditions_auto_decisions_shadow")]

    operations = [migrations.RunPython(publish_existing_policies, migrations.RunPython.noop)]

"""AuditEvent moved to the audit app (issue 19): state only, the table stays."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('approvals', '0016_replay_runs_policy_replayed_verb'),
        ('audit', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.DeleteModel(name='AuditEvent'),
        ]),
    ]

"""The links from a run's steps and webhook deliveries to their checkpoints (after approvals exists).

The migrations of 0.1.0 were squashed into this fresh set (issue 19): a new database is created
in a few steps instead of 39 migrations, and a database migrated by the old set, up to its
last migration, is recorded as having these. A database left part-way through the old set must
first be migrated to the old set's end (see docs/production.md, "Upgrading")."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    replaces = [
        ('agents', '0010_idempotencyrecord_moved_to_api'),
    ]

    dependencies = [
        ('agents', '0001_squashed_0009_initial'),
        ('approvals', '0001_squashed_0018_initial'),
    ]

    operations = [
        migrations.AddField(
            model_name='runstep',
            name='checkpoint',
            field=models.ForeignKey(blank=True, help_text='The approval this effect executed under, if it needed one.', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='run_steps', to='approvals.checkpoint'),
        ),
        migrations.AddField(
            model_name='webhookdelivery',
            name='checkpoint',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='webhook_deliveries', to='approvals.checkpoint'),
        ),
        migrations.AddConstraint(
            model_name='webhookdelivery',
            constraint=models.UniqueConstraint(fields=('checkpoint', 'event'), name='webhook_one_per_checkpoint_event'),
        ),
    ]

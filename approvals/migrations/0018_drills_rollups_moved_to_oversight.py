"""Drill, OversightRollup and RollupState moved to the oversight app (issue 19): state only,
the tables stay; the checkpoint's drill now points at oversight.Drill (same table)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('approvals', '0017_delete_auditevent'),
        ('oversight', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.AlterField(
                model_name='checkpoint',
                name='drill',
                field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='checkpoints', to='oversight.drill'),
            ),
            migrations.DeleteModel(name='OversightRollup'),
            migrations.DeleteModel(name='RollupState'),
            migrations.DeleteModel(name='Drill'),
        ]),
    ]

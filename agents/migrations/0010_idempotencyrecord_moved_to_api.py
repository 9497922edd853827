"""IdempotencyRecord moved to the api app (issue 19): state only, the table stays."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('agents', '0009_agent_kill_switch'),
        ('api', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.DeleteModel(name='IdempotencyRecord'),
        ]),
    ]

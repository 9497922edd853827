"""The API's idempotency records (the table keeps its name from agents).

The migrations of 0.1.0 were squashed into this fresh set (issue 19): a new database is created
in a few steps instead of 39 migrations, and a database migrated by the old set, up to its
last migration, is recorded as having these. A database left part-way through the old set must
first be migrated to the old set's end (see docs/production.md, "Upgrading")."""

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
    ]

    operations = [
        migrations.CreateModel(
            name='IdempotencyRecord',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('scope', models.CharField(help_text='agent:<id> or user:<id>', max_length=64)),
                ('key', models.CharField(max_length=255)),
                ('fingerprint', models.CharField(help_text='sha256 of method, path and body', max_length=64)),
                ('method', models.CharField(max_length=10)),
                ('path', models.CharField(max_length=500)),
                ('response_status', models.PositiveSmallIntegerField()),
                ('response_body', models.TextField()),
                ('response_headers', models.JSONField(default=dict)),
                ('created_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
            ],
            options={
                'db_table': 'agents_idempotencyrecord',
                'constraints': [models.UniqueConstraint(fields=('scope', 'key'), name='idempotency_scope_key')],
            },
        ),
    ]

"""IdempotencyRecord moves here from agents (issue 19): the table keeps its name
(`agents_idempotencyrecord`), so this only tells Django's state; the content type is relabelled
so that its permissions follow."""

import django.utils.timezone
from django.db import migrations, models

from core.model_moves import move_content_type


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('agents', '0009_agent_kill_switch'),
        ('contenttypes', '0002_remove_content_type_name'),
        ('auth', '0012_alter_user_first_name_max_length'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
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
        ]),
        move_content_type('agents', 'api', 'idempotencyrecord'),
    ]

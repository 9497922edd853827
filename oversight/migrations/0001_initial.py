"""Drills and the oversight rollups (the tables keep their names from approvals).

The migrations of 0.1.0 were squashed into this fresh set (issue 19): a new database is created
in a few steps instead of 39 migrations, and a database migrated by the old set, up to its
last migration, is recorded as having these. A database left part-way through the old set must
first be migrated to the old set's end (see docs/production.md, "Upgrading")."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('agents', '0001_squashed_0009_initial'),
        ('approvals', '0001_squashed_0018_initial'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='RollupState',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=50, unique=True)),
                ('watermark', models.DateTimeField(null=True)),
                ('refreshed_at', models.DateTimeField(null=True)),
                ('changed_at', models.DateTimeField(help_text='When a refresh last rebuilt a day.', null=True)),
            ],
            options={
                'db_table': 'approvals_rollupstate',
            },
        ),
        migrations.CreateModel(
            name='OversightRollup',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('day', models.DateField()),
                ('agent_id', models.BigIntegerField()),
                ('tool', models.CharField(blank=True, max_length=200)),
                ('kind', models.CharField(max_length=10)),
                ('policy_id', models.BigIntegerField(null=True)),
                ('role', models.CharField(max_length=150)),
                ('risk', models.CharField(max_length=10)),
                ('requests', models.PositiveIntegerField(default=0)),
                ('escalated', models.PositiveIntegerField(default=0)),
                ('resolved', models.PositiveIntegerField(default=0)),
                ('approve', models.PositiveIntegerField(default=0)),
                ('modify', models.PositiveIntegerField(default=0)),
                ('reject', models.PositiveIntegerField(default=0)),
                ('answer', models.PositiveIntegerField(default=0)),
                ('expired', models.PositiveIntegerField(default=0)),
                ('cancelled', models.PositiveIntegerField(default=0)),
                ('sla_total', models.PositiveIntegerField(default=0)),
                ('sla_breached', models.PositiveIntegerField(default=0)),
                ('ttd_ms', models.TextField(blank=True)),
                ('ttr_ms', models.TextField(blank=True)),
            ],
            options={
                'db_table': 'approvals_oversightrollup',
                'indexes': [models.Index(fields=['day'], name='rollup_day')],
            },
        ),
        migrations.CreateModel(
            name='Drill',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(help_text='For managers only.', max_length=200)),
                ('scenario', models.CharField(choices=[('copy', 'Copy of a past request, with a planted defect'), ('written', 'Written scenario')], max_length=10)),
                ('defect', models.TextField(help_text='What is wrong with it: what a careful reviewer catches.')),
                ('request', models.JSONField(default=dict)),
                ('release_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('released_at', models.DateTimeField(blank=True, null=True)),
                ('outcome', models.CharField(blank=True, choices=[('caught', 'Caught (rejected)'), ('edited', 'Fixed by an edit (approved with edits)'), ('missed', 'Missed (approved)'), ('expired', 'Nobody decided (expired)'), ('withdrawn', 'Withdrawn')], max_length=10)),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('created_by', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('run', models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='drill', to='agents.run')),
                ('source', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='drill_copies', to='approvals.checkpoint')),
            ],
            options={
                'db_table': 'approvals_drill',
                'ordering': ['-created_at'],
                'indexes': [models.Index(condition=models.Q(('released_at__isnull', True)), fields=['release_at'], name='drill_due')],
            },
        ),
    ]

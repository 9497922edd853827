"""The ledger, leader leases and witness deliveries.

The migrations of 0.1.0 were squashed into this fresh set (issue 19): a new database is created
in a few steps instead of 39 migrations, and a database migrated by the old set, up to its
last migration, is recorded as having these. A database left part-way through the old set must
first be migrated to the old set's end (see docs/production.md, "Upgrading")."""

import django.utils.timezone
import uuid
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    replaces = [
        ('core', '0001_encrypt_mfa_secrets'),
        ('core', '0002_ledger'),
        ('core', '0003_leader_lease'),
        ('core', '0004_witness_deliveries'),
    ]

    dependencies = [
    ]

    operations = [
        migrations.CreateModel(
            name='Lease',
            fields=[
                ('name', models.CharField(max_length=100, primary_key=True, serialize=False)),
                ('holder', models.CharField(blank=True, max_length=200)),
                ('expires_at', models.DateTimeField()),
            ],
        ),
        migrations.CreateModel(
            name='TreeHead',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('origin', models.CharField(help_text="the log's name (HITL_LEDGER_ORIGIN)", max_length=200)),
                ('tree_size', models.PositiveBigIntegerField(unique=True)),
                ('root_hash', models.CharField(max_length=64)),
                ('timestamp', models.PositiveBigIntegerField(help_text='milliseconds since the Unix epoch')),
                ('key_id', models.CharField(max_length=16)),
                ('signature', models.CharField(help_text='base64 Ed25519 signature', max_length=100)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                'ordering': ['-tree_size'],
            },
        ),
        migrations.CreateModel(
            name='WitnessState',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('url', models.CharField(max_length=500, unique=True)),
                ('last_tree_size', models.PositiveBigIntegerField(default=0, help_text='the last head it got')),
                ('last_pushed_at', models.DateTimeField(blank=True, null=True)),
                ('last_attempt_at', models.DateTimeField(blank=True, null=True)),
                ('last_error', models.TextField(blank=True, help_text='of the last attempt; empty if it worked')),
                ('owed_tree_size', models.PositiveBigIntegerField(default=0, help_text='the latest head owed to it (delivered or not)')),
                ('owed_at', models.DateTimeField(blank=True, help_text='when that head was owed: the interval counts from it', null=True)),
            ],
        ),
        migrations.CreateModel(
            name='LedgerNode',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('level', models.PositiveSmallIntegerField()),
                ('index', models.PositiveBigIntegerField()),
                ('hash', models.CharField(max_length=64)),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('level', 'index'), name='ledger_node_unique')],
            },
        ),
        migrations.CreateModel(
            name='Receipt',
            fields=[
                ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ('subject', models.CharField(help_text='what it was issued for', max_length=100, unique=True)),
                ('nonce', models.CharField(max_length=32, unique=True)),
                ('claims', models.JSONField(default=dict)),
                ('issued_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('expires_at', models.DateTimeField()),
                ('redeemed_at', models.DateTimeField(blank=True, null=True)),
                ('redeemed_by', models.CharField(blank=True, max_length=200)),
                ('redemption', models.JSONField(blank=True, default=dict)),
            ],
            options={
                'indexes': [models.Index(condition=models.Q(('redeemed_at__isnull', True)), fields=['expires_at'], name='rcpt_open')],
            },
        ),
        migrations.CreateModel(
            name='WitnessDelivery',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('attempts', models.PositiveIntegerField(default=0)),
                ('next_attempt_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('enqueued_at', models.DateTimeField(blank=True, null=True)),
                ('locked_until', models.DateTimeField(blank=True, null=True)),
                ('give_up_at', models.DateTimeField(help_text='Failed attempts are retried with backoff until then (re-send resets it).')),
                ('last_attempt_at', models.DateTimeField(blank=True, null=True)),
                ('last_status_code', models.PositiveSmallIntegerField(blank=True, null=True)),
                ('last_error', models.TextField(blank=True)),
                ('delivered_at', models.DateTimeField(blank=True, null=True)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('status', models.CharField(choices=[('pending', 'Pending'), ('delivered', 'Delivered'), ('failed', 'Failed (gave up)'), ('superseded', 'Superseded by a later head')], db_index=True, default='pending', max_length=10)),
                ('url', models.CharField(max_length=500)),
                ('tree_size', models.PositiveBigIntegerField()),
                ('head', models.JSONField(help_text='the signed head as JSON (`core.ledger.heads.as_json`)')),
            ],
            options={
                'verbose_name_plural': 'witness deliveries',
                'ordering': ['-created_at'],
                'constraints': [models.UniqueConstraint(fields=('url', 'tree_size'), name='witness_delivery_unique')],
            },
        ),
    ]

"""Notices, deliveries, preferences, role channels, chat links and digests.

The migrations of 0.1.0 were squashed into this fresh set (issue 19): a new database is created
in a few steps instead of 39 migrations, and a database migrated by the old set, up to its
last migration, is recorded as having these. A database left part-way through the old set must
first be migrated to the old set's end (see docs/production.md, "Upgrading")."""

import core.crypto
import django.db.models.deletion
import django.utils.timezone
import notifications.models
import uuid
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    replaces = [
        ('notifications', '0001_initial'),
        ('notifications', '0002_agent_and_drill_events'),
        ('notifications', '0003_notice_fan_out'),
    ]

    dependencies = [
        ('approvals', '0001_squashed_0018_initial'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='RoleChannel',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('role', models.CharField(help_text='A review role, or the managers group (SLA breaches).', max_length=150)),
                ('kind', models.CharField(choices=[('email', 'Email'), ('slack', 'Slack (incoming webhook)'), ('teams', 'Microsoft Teams (incoming webhook)'), ('webhook', 'Webhook (signed, for paging tools)')], max_length=10)),
                ('name', models.CharField(blank=True, help_text='What people call it, e.g. “#ops-approvals”.', max_length=100)),
                ('url', core.crypto.EncryptedTextField(blank=True, help_text="Slack / Teams: the incoming webhook URL (a secret: encrypted at rest). Webhook: the receiver's URL.")),
                ('secret', core.crypto.EncryptedTextField(blank=True, default=notifications.models.new_signing_secret, help_text='Webhook: signs each POST (X-HITL-Signature, as agent webhooks).')),
                ('config', models.JSONField(blank=True, default=dict, help_text='Email: {"to": ["ops-list@example.com"]} to write to a list instead of each member. Slack: {"interactive": false} for link-only messages.')),
                ('events', models.JSONField(blank=True, default=list, help_text='Only these events, e.g. ["checkpoint.requested", "checkpoint.escalated"]. Empty: every event the role is told of.')),
                ('active', models.BooleanField(default=True)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                'verbose_name': 'role channel',
                'ordering': ['role', 'kind', 'id'],
            },
        ),
        migrations.CreateModel(
            name='Delivery',
            fields=[
                ('status', models.CharField(choices=[('pending', 'Pending'), ('delivered', 'Delivered'), ('failed', 'Failed (gave up)')], db_index=True, default='pending', max_length=10)),
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
                ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ('event', models.CharField(choices=[('checkpoint.requested', 'Request waiting for the role'), ('checkpoint.stage', "Moved to the role's stage"), ('checkpoint.escalated', 'Escalated to the role'), ('checkpoint.reminder', 'Reminder before the deadline'), ('checkpoint.sla_reminder', 'Reminder before the SLA target'), ('checkpoint.sla_breached', 'SLA target passed (managers)'), ('checkpoint.resolved', 'Resolved (requester and agent owner)'), ('drill.finished', 'Drill result (managers)'), ('agent.halted', 'Agent halted (its owner)'), ('agent.resumed', 'Agent resumed (its owner)'), ('digest', 'Hourly digest'), ('chat.reply', 'Reply to a chat action')], max_length=40)),
                ('channel', models.CharField(choices=[('email', 'Email'), ('slack', 'Slack (incoming webhook)'), ('teams', 'Microsoft Teams (incoming webhook)'), ('webhook', 'Webhook (signed, for paging tools)')], max_length=10)),
                ('target', models.CharField(max_length=200)),
                ('address', models.CharField(blank=True, help_text='Email address.', max_length=254)),
                ('data', models.JSONField(blank=True, default=dict)),
                ('recipient', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='notifications', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name_plural': 'deliveries',
                'ordering': ['-created_at'],
                'indexes': [models.Index(condition=models.Q(('status', 'pending')), fields=['next_attempt_at'], name='notify_due')],
            },
        ),
        migrations.CreateModel(
            name='Notice',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('event', models.CharField(choices=[('checkpoint.requested', 'Request waiting for the role'), ('checkpoint.stage', "Moved to the role's stage"), ('checkpoint.escalated', 'Escalated to the role'), ('checkpoint.reminder', 'Reminder before the deadline'), ('checkpoint.sla_reminder', 'Reminder before the SLA target'), ('checkpoint.sla_breached', 'SLA target passed (managers)'), ('checkpoint.resolved', 'Resolved (requester and agent owner)'), ('drill.finished', 'Drill result (managers)'), ('agent.halted', 'Agent halted (its owner)'), ('agent.resumed', 'Agent resumed (its owner)'), ('digest', 'Hourly digest'), ('chat.reply', 'Reply to a chat action')], max_length=40)),
                ('occurrence', models.CharField(blank=True, help_text='Which one: a stage, a ladder step, a deadline.', max_length=64)),
                ('role', models.CharField(blank=True, max_length=150)),
                ('people', models.JSONField(blank=True, db_default=[], default=list, help_text='Ids of the people told by email, beside the role.')),
                ('data', models.JSONField(blank=True, default=dict, help_text='The facts at the time.')),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('fanned_out_at', models.DateTimeField(blank=True, help_text='When its deliveries were written (empty: not yet).', null=True)),
                ('checkpoint', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='notices', to='approvals.checkpoint')),
            ],
            options={
                'ordering': ['-created_at'],
                'indexes': [models.Index(condition=models.Q(('fanned_out_at__isnull', True)), fields=['created_at'], name='notice_fan_out_due')],
                'constraints': [models.UniqueConstraint(fields=('checkpoint', 'event', 'occurrence'), name='notice_once')],
            },
        ),
        migrations.CreateModel(
            name='DigestEntry',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('digest', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='entries', to='notifications.delivery')),
                ('recipient', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='digest_entries', to=settings.AUTH_USER_MODEL)),
                ('notice', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='digest_entries', to='notifications.notice')),
            ],
            options={
                'ordering': ['created_at', 'id'],
                'indexes': [models.Index(condition=models.Q(('digest__isnull', True)), fields=['recipient', 'created_at'], name='digest_waiting')],
                'constraints': [models.UniqueConstraint(fields=('notice', 'recipient'), name='digest_entry_once')],
            },
        ),
        migrations.AddField(
            model_name='delivery',
            name='notice',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='deliveries', to='notifications.notice'),
        ),
        migrations.CreateModel(
            name='Preference',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('email', models.BooleanField(default=True, help_text='Email me.')),
                ('email_mode', models.CharField(choices=[('immediate', 'Immediately'), ('digest', 'Hourly digest')], default='immediate', max_length=10)),
                ('away_until', models.DateTimeField(blank=True, help_text='Out of office until then: no notifications, claims released, shown as away.', null=True)),
                ('away_note', models.CharField(blank=True, max_length=200)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('user', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='notification_pref', to=settings.AUTH_USER_MODEL)),
            ],
        ),
        migrations.AddField(
            model_name='delivery',
            name='route',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='deliveries', to='notifications.rolechannel'),
        ),
        migrations.CreateModel(
            name='ChatLink',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('provider', models.CharField(default='slack', max_length=20)),
                ('team_id', models.CharField(max_length=50)),
                ('chat_user_id', models.CharField(max_length=50)),
                ('chat_name', models.CharField(blank=True, max_length=150)),
                ('mfa_verified_at', models.DateTimeField(blank=True, help_text='When the session that linked it last passed MFA.', null=True)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='chat_links', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('provider', 'team_id', 'chat_user_id'), name='chatlink_one_account')],
            },
        ),
        migrations.AddConstraint(
            model_name='delivery',
            constraint=models.UniqueConstraint(fields=('notice', 'channel', 'target'), name='delivery_once_per_target'),
        ),
        migrations.AddConstraint(
            model_name='delivery',
            constraint=models.UniqueConstraint(condition=models.Q(('notice__isnull', True)), fields=('channel', 'target'), name='delivery_once_without_notice'),
        ),
    ]

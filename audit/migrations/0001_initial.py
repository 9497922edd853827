"""The audit trail (the table keeps its name from approvals).

The migrations of 0.1.0 were squashed into this fresh set (issue 19): a new database is created
in a few steps instead of 39 migrations, and a database migrated by the old set, up to its
last migration, is recorded as having these. A database left part-way through the old set must
first be migrated to the old set's end (see docs/production.md, "Upgrading")."""

from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
    ]

    operations = [
        migrations.CreateModel(
            name='AuditEvent',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('seq', models.PositiveBigIntegerField(blank=True, null=True, unique=True)),
                ('hash', models.CharField(blank=True, help_text='RFC 6962 leaf hash', max_length=64, null=True)),
                ('at', models.DateTimeField()),
                ('actor_type', models.CharField(choices=[('user', 'User'), ('agent', 'Agent'), ('policy', 'Policy'), ('system', 'System')], max_length=10)),
                ('actor_id', models.CharField(blank=True, max_length=64)),
                ('actor_label', models.CharField(blank=True, max_length=200)),
                ('verb', models.CharField(choices=[('run.started', 'Run started'), ('run.waiting', 'Run waiting for a human'), ('run.resumed', 'Run resumed'), ('run.completed', 'Run completed'), ('run.failed', 'Run failed'), ('run.cancelled', 'Run cancelled'), ('run.step_executed', 'Run step executed'), ('run.step_failed', 'Run step failed'), ('checkpoint.requested', 'Checkpoint requested'), ('checkpoint.claimed', 'Checkpoint claimed'), ('checkpoint.released', 'Checkpoint released'), ('checkpoint.reassigned', 'Checkpoint reassigned'), ('checkpoint.stage_advanced', 'Checkpoint moved to its next stage'), ('checkpoint.escalated', 'Checkpoint escalated'), ('checkpoint.approved', 'Checkpoint approved'), ('checkpoint.rejected', 'Checkpoint rejected'), ('checkpoint.answered', 'Checkpoint answered'), ('checkpoint.expired', 'Checkpoint expired'), ('checkpoint.cancelled', 'Checkpoint cancelled'), ('checkpoint.viewed', 'Checkpoint opened by a reviewer'), ('checkpoint.sla_breached', 'Checkpoint passed its SLA undecided'), ('checkpoint.outcome_received', 'Agent received the outcome'), ('decision.recorded', 'Decision recorded'), ('receipt.redeemed', 'Receipt redeemed'), ('webhook.delivered', 'Webhook delivered'), ('webhook.failed', 'Webhook failed (gave up)'), ('webhook.resent', 'Webhook re-sent'), ('notification.failed', 'Notification failed (gave up)'), ('notification.resent', 'Notification re-sent'), ('notification.channel_created', 'Notification channel created'), ('notification.channel_updated', 'Notification channel changed'), ('notification.channel_deleted', 'Notification channel deleted'), ('user.away', 'Out of office set'), ('user.back', 'Out of office ended'), ('user.chat_linked', 'Chat account linked'), ('user.chat_unlinked', 'Chat account unlinked'), ('agent.created', 'Agent created'), ('agent.updated', 'Agent changed'), ('agent.deleted', 'Agent deleted'), ('agent.key_created', 'Agent key created'), ('agent.key_revoked', 'Agent key revoked'), ('agent.webhook_secret_rotated', 'Agent webhook secret rotated'), ('user.created', 'User created'), ('user.updated', "User's authority changed"), ('user.deleted', 'User deleted'), ('user.token_created', 'Personal token created'), ('user.token_revoked', 'Personal token revoked'), ('group.created', 'Role created'), ('group.updated', "Role's permissions changed"), ('group.deleted', 'Role deleted'), ('policy.created', 'Policy created'), ('policy.updated', 'Policy changed'), ('policy.deleted', 'Policy deleted'), ('policy.published', 'Policy version published'), ('policy.rolled_back', 'Policy rolled back to an earlier version'), ('policy.revoked', 'Policy revoked (routes nothing)'), ('policy.proposed', 'Standing rule proposed'), ('policy.replayed', 'Policy version replayed against history'), ('decision.automatic', 'Decision made by a policy'), ('agent.halted', 'Agent halted (kill switch)'), ('agent.resumed', 'Agent resumed after a halt'), ('drill.scheduled', 'Drill scheduled'), ('drill.released', 'Drill released to reviewers'), ('drill.finished', 'Drill finished'), ('drill.withdrawn', 'Drill withdrawn'), ('export.created', 'Export downloaded'), ('audit.verified', 'Audit chain verified')], db_index=True, max_length=64)),
                ('target_type', models.CharField(max_length=64)),
                ('target_id', models.CharField(db_index=True, max_length=64)),
                ('data', models.JSONField(default=dict)),
            ],
            options={
                'db_table': 'approvals_auditevent',
                'ordering': ['id'],
                'indexes': [models.Index(condition=models.Q(('seq__isnull', True)), fields=['id'], name='audit_unsequenced'), models.Index(fields=['actor_type', 'actor_id', 'id'], name='audit_actor_id'), models.Index(fields=['target_type', 'target_id', 'id'], name='audit_target_id'), models.Index(fields=['verb', 'id'], name='audit_verb_id'), models.Index(fields=['at'], name='audit_at')],
            },
        ),
    ]

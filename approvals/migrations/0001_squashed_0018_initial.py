"""Checkpoints, decisions, policies and their versions, tokens, artifacts, replays.

The migrations of 0.1.0 were squashed into this fresh set (issue 19): a new database is created
in a few steps instead of 39 migrations, and a database migrated by the old set, up to its
last migration, is recorded as having these. A database left part-way through the old set must
first be migrated to the old set's end (see docs/production.md, "Upgrading")."""

import django.db.models.deletion
import django.db.models.manager
import django.utils.timezone
import uuid
from django.conf import settings
from django.db import migrations, models


def first_policy_generation(apps, schema_editor):
    """The one row the routing cache compares against (was approvals 0009)."""
    apps.get_model("approvals", "PolicyGeneration").objects.get_or_create(
        pk=1, defaults={"value": 1, "stamp": uuid.uuid4()}
    )


class Migration(migrations.Migration):

    initial = True

    replaces = [
        ('approvals', '0001_initial'),
        ('approvals', '0002_queue_counts_index'),
        ('approvals', '0003_auditevent_verb_vocabulary'),
        ('approvals', '0004_review_role_permission_policy_hints_default_timeout'),
        ('approvals', '0005_token_expiry_scope_mfa'),
        ('approvals', '0006_audit_verbs_for_authority_changes'),
        ('approvals', '0007_checkpoint_external_id_allowed_outcomes_reject_options'),
        ('approvals', '0008_policy_versions_conditions_auto_decisions_shadow'),
        ('approvals', '0009_publish_existing_policies'),
        ('approvals', '0010_oversight_sla_drills_views_rollups'),
        ('approvals', '0011_audit_verbs_merged'),
        ('approvals', '0012_auditevent_ledger_leaves'),
        ('approvals', '0013_audit_explorer_by_id_receipt_verb'),
        ('approvals', '0014_escalation_ladder_step_up_slack_channel'),
        ('approvals', '0015_audit_verbs_notifications_slack_channel'),
        ('approvals', '0016_replay_runs_policy_replayed_verb'),
        ('approvals', '0017_delete_auditevent'),
        ('approvals', '0018_drills_rollups_moved_to_oversight'),
    ]

    dependencies = [
        ('agents', '0001_squashed_0009_initial'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='PolicyGeneration',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('value', models.PositiveBigIntegerField(default=0)),
                ('stamp', models.UUIDField(blank=True, null=True)),
            ],
        ),
        migrations.CreateModel(
            name='Checkpoint',
            fields=[
                ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ('kind', models.CharField(choices=[('approval', 'Approval'), ('question', 'Question'), ('review', 'Review')], default='approval', max_length=10)),
                ('title', models.CharField(max_length=300)),
                ('summary', models.TextField(blank=True)),
                ('action', models.JSONField(blank=True, default=dict, help_text='{tool, args} as proposed')),
                ('tool', models.CharField(blank=True, default='', max_length=200)),
                ('context', models.JSONField(blank=True, default=dict)),
                ('risk', models.CharField(choices=[('low', 'Low'), ('medium', 'Medium'), ('high', 'High'), ('critical', 'Critical')], default='medium', max_length=10)),
                ('options', models.JSONField(blank=True, default=list)),
                ('role_hint', models.CharField(blank=True, max_length=150)),
                ('confidence', models.FloatField(blank=True, help_text="The agent's own confidence in the action, 0 to 1.", null=True)),
                ('status', models.CharField(choices=[('pending', 'Pending'), ('approved', 'Approved'), ('rejected', 'Rejected'), ('answered', 'Answered'), ('expired', 'Expired'), ('cancelled', 'Cancelled')], db_index=True, default='pending', max_length=10)),
                ('stages', models.JSONField(default=list)),
                ('stage', models.PositiveSmallIntegerField(default=0)),
                ('current_role', models.CharField(max_length=150)),
                ('approvals_needed', models.PositiveSmallIntegerField(default=1)),
                ('deadline', models.DateTimeField()),
                ('expiry_action', models.CharField(choices=[('reject', 'Auto-reject'), ('escalate', 'Escalate')], default='reject', max_length=10)),
                ('escalation_role', models.CharField(blank=True, max_length=150)),
                ('escalation_timeout_seconds', models.PositiveIntegerField(default=1800)),
                ('escalated', models.BooleanField(default=False)),
                ('escalation_ladder', models.JSONField(blank=True, default=list)),
                ('escalation_step', models.PositiveSmallIntegerField(default=0)),
                ('sla_seconds', models.PositiveIntegerField(blank=True, null=True)),
                ('sla_due_at', models.DateTimeField(blank=True, null=True)),
                ('sla_breached_at', models.DateTimeField(blank=True, null=True)),
                ('claim_expires_at', models.DateTimeField(blank=True, null=True)),
                ('resolved_at', models.DateTimeField(blank=True, null=True)),
                ('resolution_reason', models.TextField(blank=True)),
                ('final_action', models.JSONField(blank=True, help_text='The action as approved', null=True)),
                ('final_action_sha256', models.CharField(blank=True, max_length=64)),
                ('answer', models.TextField(blank=True)),
                ('resumed_at', models.DateTimeField(blank=True, null=True)),
                ('idempotency_key', models.CharField(blank=True, max_length=255)),
                ('external_id', models.CharField(blank=True, max_length=255)),
                ('request_sha256', models.CharField(blank=True, max_length=64)),
                ('allowed_outcomes', models.JSONField(blank=True, default=list)),
                ('reject_options', models.JSONField(blank=True, default=list)),
                ('version', models.PositiveIntegerField(default=0)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('agent', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='checkpoints', to='agents.agent')),
                ('claimed_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='claimed_checkpoints', to=settings.AUTH_USER_MODEL)),
                ('requester', models.ForeignKey(blank=True, help_text='The human on whose behalf the agent asks (four-eyes: may never decide it).', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='requested_checkpoints', to=settings.AUTH_USER_MODEL)),
                ('resolved_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='resolved_checkpoints', to=settings.AUTH_USER_MODEL)),
                ('run', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='checkpoints', to='agents.run')),
            ],
            options={
                'ordering': ['deadline', 'created_at'],
                'permissions': [('decide_checkpoint', 'Can decide checkpoints routed to their review roles')],
                'default_manager_name': 'with_drills',
                'indexes': [models.Index(condition=models.Q(('status', 'pending')), fields=['current_role', 'deadline'], name='cp_queue_pending'), models.Index(condition=models.Q(('status', 'pending')), fields=['deadline'], name='cp_sweep_pending'), models.Index(condition=models.Q(('status', 'pending')), fields=['current_role', 'deadline', 'claimed_by', 'claim_expires_at', 'risk', 'kind', 'agent'], name='cp_queue_counts'), models.Index(fields=['run', 'status'], name='cp_run_status'), models.Index(fields=['status', 'resolved_at'], name='cp_status_resolved'), models.Index(fields=['created_at'], name='cp_created'), models.Index(fields=['resolved_at'], name='cp_resolved'), models.Index(fields=['updated_at'], name='cp_updated'), models.Index(fields=['agent', 'tool'], name='cp_agent_tool'), models.Index(condition=models.Q(('sla_breached_at__isnull', True), ('status', 'pending')), fields=['sla_due_at'], name='cp_sla_watch'), models.Index(fields=['sla_due_at'], name='cp_sla_due'), models.Index(condition=models.Q(('status', 'pending')), fields=['created_at'], name='cp_pending_created')],
                'constraints': [models.UniqueConstraint(condition=models.Q(('idempotency_key', ''), _negated=True), fields=('agent', 'idempotency_key'), name='cp_unique_agent_idempotency_key'), models.UniqueConstraint(condition=models.Q(('external_id', ''), _negated=True), fields=('agent', 'external_id'), name='cp_unique_agent_external_id')],
            },
            managers=[
                ('with_drills', django.db.models.manager.Manager()),
            ],
        ),
        migrations.CreateModel(
            name='Artifact',
            fields=[
                ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ('name', models.CharField(max_length=255)),
                ('kind', models.CharField(choices=[('diff', 'Diff'), ('log', 'Log'), ('file', 'File'), ('json', 'JSON'), ('markdown', 'Markdown'), ('image', 'Image')], default='file', max_length=10)),
                ('content_type', models.CharField(default='text/plain', max_length=100)),
                ('inline', models.TextField(blank=True, help_text='Small text artifacts are stored inline.')),
                ('file', models.FileField(blank=True, upload_to='artifacts/%Y/%m/')),
                ('sha256', models.CharField(max_length=64)),
                ('size', models.PositiveBigIntegerField(default=0)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('agent', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='artifacts', to='agents.agent')),
                ('edited_from', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='edits', to='approvals.artifact')),
                ('checkpoint', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='artifacts', to='approvals.checkpoint')),
            ],
            options={
                'ordering': ['created_at', 'name'],
            },
        ),
        migrations.CreateModel(
            name='Policy',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=100, unique=True)),
                ('description', models.TextField(blank=True)),
                ('active', models.BooleanField(default=True)),
                ('priority', models.IntegerField(default=100, help_text='Lower numbers are tried first.')),
                ('match_agent', models.CharField(blank=True, help_text="Agent slug glob, e.g. 'sql-*'. Empty: any.", max_length=100)),
                ('match_tool', models.CharField(blank=True, help_text="Tool name glob, e.g. 'delete_*'. Empty: any. An exact name (no * ? [) is indexed: routing tries only the policies that can match a request's tool.", max_length=200)),
                ('match_kind', models.CharField(blank=True, help_text='Checkpoint kind or empty.', max_length=20)),
                ('min_risk', models.CharField(blank=True, choices=[('low', 'Low'), ('medium', 'Medium'), ('high', 'High'), ('critical', 'Critical')], help_text='Match this risk and above.', max_length=10)),
                ('condition', models.TextField(blank=True, help_text='A CEL expression over the request, e.g. tool == "delete_files" && size(args.paths) <= 20 && args.paths.all(p, p.startsWith("/var/log/")). Variables: agent, tool, args, kind, risk, risk_level, confidence, title, role_hint, artifacts, now, hour, weekday. Empty: the match fields alone decide.')),
                ('outcome', models.CharField(choices=[('route', 'Route to reviewers'), ('auto_approve', 'Approve automatically'), ('auto_reject', 'Reject automatically')], default='route', max_length=20)),
                ('reason', models.TextField(blank=True, help_text='Automatic outcomes: the reason recorded with the decision and sent to the agent (required to reject).')),
                ('shadow', models.BooleanField(default=False, help_text='Shadow mode (automatic outcomes): evaluate and record what it would have decided on every matching request, while people still decide.')),
                ('expires_at', models.DateTimeField(blank=True, help_text='After this moment the policy matches nothing.', null=True)),
                ('stages', models.JSONField(blank=True, default=list, help_text='Ordered review stages: [{"role": "ops", "approvals": 1}, ...]. Each role must be a review role (a group with the “Can decide checkpoints” permission). Required to route; more approvals per stage where a request needs more eyes.')),
                ('honour_role_hints', models.BooleanField(default=True, help_text='Add the review role an agent hints at as an extra stage (never instead of the stages above). Off: hints are ignored.')),
                ('timeout_seconds', models.PositiveIntegerField(blank=True, help_text='Seconds until a request expires or escalates. Empty: HITL_DEFAULT_TIMEOUT.', null=True)),
                ('expiry_action', models.CharField(choices=[('reject', 'Auto-reject'), ('escalate', 'Escalate')], default='reject', max_length=10)),
                ('escalation_role', models.CharField(blank=True, help_text='One-step escalation: at the deadline, hand the request to this review role (for the escalation timeout), then auto-reject. For more steps use the ladder.', max_length=150)),
                ('escalation_timeout_seconds', models.PositiveIntegerField(default=1800)),
                ('escalation_ladder', models.JSONField(blank=True, default=list, help_text='Ordered escalation steps after the first deadline, e.g. [{"role": "ops-leads", "timeout_seconds": 7200}, {"role": "cto", "timeout_seconds": 3600}]; after the last step the request is rejected (fail-closed). Needs expiry action Escalate; replaces the escalation role.')),
                ('sla_seconds', models.PositiveIntegerField(blank=True, help_text='Target time to decision, for reports.', null=True)),
                ('standing_role', models.CharField(blank=True, help_text='Standing rules: the review role whose reviewers may publish or revoke it.', max_length=150)),
                ('published_at', models.DateTimeField(blank=True, editable=False, null=True)),
                ('proposed_from', models.ForeignKey(blank=True, help_text='Standing rules: the request it was proposed from.', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='standing_rules', to='approvals.checkpoint')),
                ('published_by', models.ForeignKey(blank=True, editable=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name_plural': 'policies',
                'ordering': ['priority', 'id'],
                'permissions': [('publish_policy', 'Can publish and roll back policies')],
            },
        ),
        migrations.AddField(
            model_name='checkpoint',
            name='policy',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, to='approvals.policy'),
        ),
        migrations.CreateModel(
            name='PolicyVersion',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('number', models.PositiveIntegerField()),
                ('snapshot', models.JSONField()),
                ('changes', models.JSONField(blank=True, default=dict)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('policy', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='versions', to='approvals.policy')),
            ],
            options={
                'ordering': ['policy', '-number'],
                'constraints': [models.UniqueConstraint(fields=('policy', 'number'), name='policyversion_unique')],
            },
        ),
        migrations.AddField(
            model_name='policy',
            name='live_version',
            field=models.ForeignKey(blank=True, editable=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='approvals.policyversion'),
        ),
        migrations.CreateModel(
            name='Decision',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('stage', models.PositiveSmallIntegerField(default=0)),
                ('role', models.CharField(max_length=150)),
                ('outcome', models.CharField(choices=[('approve', 'Approve'), ('reject', 'Reject'), ('modify', 'Approve with edits'), ('answer', 'Answer')], max_length=10)),
                ('comment', models.TextField(blank=True)),
                ('edited_action', models.JSONField(blank=True, null=True)),
                ('answer', models.TextField(blank=True)),
                ('action_sha256', models.CharField(blank=True, max_length=64)),
                ('channel', models.CharField(choices=[('web', 'Web'), ('api', 'API'), ('admin', 'Admin'), ('cli', 'CLI'), ('policy', 'Policy (automatic)'), ('slack', 'Slack')], default='web', max_length=10)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('checkpoint', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='decisions', to='approvals.checkpoint')),
                ('reviewer', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='decisions', to=settings.AUTH_USER_MODEL)),
                ('policy_version', models.ForeignKey(blank=True, help_text='An automatic decision: the policy version that made it.', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='decisions', to='approvals.policyversion')),
            ],
            options={
                'ordering': ['created_at', 'id'],
                'indexes': [models.Index(fields=['created_at'], name='decision_created')],
                'constraints': [models.UniqueConstraint(fields=('checkpoint', 'reviewer', 'stage'), name='decision_one_vote_per_stage'), models.CheckConstraint(condition=models.Q(models.Q(('policy_version__isnull', True), ('reviewer__isnull', False)), models.Q(('policy_version__isnull', False), ('reviewer__isnull', True)), _connector='OR'), name='decision_by_person_or_policy')],
            },
        ),
        migrations.AddField(
            model_name='checkpoint',
            name='policy_version',
            field=models.ForeignKey(blank=True, help_text='The published policy version that routed (or decided) it.', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='checkpoints', to='approvals.policyversion'),
        ),
        migrations.CreateModel(
            name='Replay',
            fields=[
                ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ('days', models.PositiveIntegerField()),
                ('status', models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('done', 'Done'), ('failed', 'Failed')], default='queued', max_length=10)),
                ('progress', models.PositiveIntegerField(default=0, help_text='Checkpoints replayed so far.')),
                ('total', models.PositiveIntegerField(default=0, help_text='Checkpoints to replay.')),
                ('attempts', models.PositiveSmallIntegerField(default=0)),
                ('result', models.JSONField(blank=True, default=dict)),
                ('error', models.TextField(blank=True)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('started_at', models.DateTimeField(blank=True, null=True)),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
                ('policy', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='replays', to='approvals.policy')),
                ('requested_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('version', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='replays', to='approvals.policyversion')),
            ],
            options={
                'ordering': ['-created_at'],
                'indexes': [models.Index(fields=['policy', '-created_at'], name='replay_by_policy')],
            },
        ),
        migrations.CreateModel(
            name='ShadowMatch',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('would', models.CharField(choices=[('route', 'Route to reviewers'), ('auto_approve', 'Approve automatically'), ('auto_reject', 'Reject automatically')], max_length=20)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('checkpoint', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='shadow_matches', to='approvals.checkpoint')),
                ('version', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='shadow', to='approvals.policyversion')),
            ],
            options={
                'ordering': ['-created_at'],
                'constraints': [models.UniqueConstraint(fields=('version', 'checkpoint'), name='shadow_once')],
            },
        ),
        migrations.CreateModel(
            name='UserToken',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(blank=True, max_length=100)),
                ('prefix', models.CharField(max_length=16, unique=True)),
                ('secret_hash', models.CharField(max_length=64)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('last_used_at', models.DateTimeField(blank=True, null=True)),
                ('revoked_at', models.DateTimeField(blank=True, null=True)),
                ('expires_at', models.DateTimeField(blank=True, help_text='Empty: never expires.', null=True)),
                ('scope', models.CharField(choices=[('read', 'Read'), ('decide', 'Read and decide'), ('decide_critical', 'Read and decide, critical requests too')], default='read', max_length=20)),
                ('mfa_verified_at', models.DateTimeField(blank=True, help_text='When the session that minted it last passed MFA (empty: it did not).', null=True)),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='api_tokens', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'abstract': False,
            },
        ),
        migrations.CreateModel(
            name='CheckpointView',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('at', models.DateTimeField(default=django.utils.timezone.now)),
                ('channel', models.CharField(default='web', max_length=10)),
                ('checkpoint', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='views', to='approvals.checkpoint')),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='checkpoint_views', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('checkpoint', 'user'), name='cpview_once_per_user')],
            },
        ),
        migrations.RunPython(first_policy_generation, migrations.RunPython.noop),
    ]

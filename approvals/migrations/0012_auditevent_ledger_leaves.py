"""The hash chain becomes the first leaves of the ledger's Merkle tree.

1. The existing chain is verified with the old rules (frozen below). A broken chain stops the
   migration, naming the first bad event: migrating it would sign tampered history. Set
   HITL_LEDGER_ACCEPT_BROKEN_CHAIN=1 to migrate the current contents as they are anyway.
2. `seq` may be NULL (events are inserted unsequenced from now on), `hash` is the RFC 6962
   leaf hash of the event's entry (format 1, audit.entry.entry_v1), `prev_hash` goes.
3. Every existing event keeps its `seq` and gets its leaf hash, in seq order; the sequencer
   appends them to the tree and signs the first head on its first batch.
"""

import hashlib
import json
import os

from django.db import migrations, models


def _legacy_hash(e) -> str:
    payload = json.dumps(
        {
            "seq": e.seq,
            "at": e.at.astimezone(__import__("datetime").UTC).isoformat(timespec="microseconds"),
            "actor": [e.actor_type, e.actor_id, e.actor_label],
            "verb": e.verb,
            "target": [e.target_type, e.target_id],
            "data": e.data,
            "prev_hash": e.prev_hash,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def verify_legacy_chain(apps, schema_editor):
    AuditEvent = apps.get_model("approvals", "AuditEvent")
    expected, prev = 1, "0" * 64
    for e in AuditEvent.objects.order_by("seq").iterator(chunk_size=2000):
        problem = ""
        if e.seq != expected:
            problem = f"event #{expected} is missing"
        elif e.prev_hash != prev or _legacy_hash(e) != e.hash:
            problem = f"event #{e.seq} was changed"
        if problem:
            if os.environ.get("HITL_LEDGER_ACCEPT_BROKEN_CHAIN") == "1":
                print(f"\n  audit chain broken ({problem}); migrating it as it is")
                return
            raise RuntimeError(
                f"The audit chain is broken ({problem}): refusing to sign it into the ledger. "
                "Investigate with `manage.py verify_audit` on the previous release; set "
                "HITL_LEDGER_ACCEPT_BROKEN_CHAIN=1 to migrate the current contents anyway."
            )
        prev, expected = e.hash, expected + 1


def leaf_hashes(apps, schema_editor):
    from audit.entry import entry_v1

    AuditEvent = apps.get_model("approvals", "AuditEvent")
    batch = []
    for e in AuditEvent.objects.order_by("seq").iterator(chunk_size=2000):
        entry = entry_v1(
            seq=e.seq,
            at=e.at,
            actor_type=e.actor_type,
            actor_id=e.actor_id,
            actor_label=e.actor_label,
            verb=e.verb,
            target_type=e.target_type,
            target_id=e.target_id,
            data=e.data,
        )
        e.hash = hashlib.sha256(b"\x00" + entry).hexdigest()
        batch.append(e)
        if len(batch) >= 1000:
            AuditEvent.objects.bulk_update(batch, ["hash"])
            batch = []
    if batch:
        AuditEvent.objects.bulk_update(batch, ["hash"])


class Migration(migrations.Migration):

    dependencies = [
        ('approvals', '0011_audit_verbs_merged'),
        ('core', '0002_ledger'),
    ]

    operations = [
        migrations.RunPython(verify_legacy_chain, migrations.RunPython.noop),
        migrations.AlterModelOptions(
            name='auditevent',
            options={'ordering': ['id']},
        ),
        migrations.RemoveField(
            model_name='auditevent',
            name='prev_hash',
        ),
        migrations.AlterField(
            model_name='auditevent',
            name='hash',
            field=models.CharField(blank=True, help_text='RFC 6962 leaf hash', max_length=64, null=True),
        ),
        migrations.AlterField(
            model_name='auditevent',
            name='seq',
            field=models.PositiveBigIntegerField(blank=True, null=True, unique=True),
        ),
        migrations.AddIndex(
            model_name='auditevent',
            index=models.Index(condition=models.Q(('seq__isnull', True)), fields=['id'], name='audit_unsequenced'),
        ),
        migrations.RunPython(leaf_hashes, migrations.RunPython.noop),
    ]

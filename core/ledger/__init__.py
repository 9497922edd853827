"""The transparency log under the audit trail (designed like a certificate-transparency log).

- Writers insert entries *unsequenced* (no lock, no hash) in the transaction of the change
  they record (`audit.events`).
- One sequencer at a time (`sequencer.run_batch`: PostgreSQL advisory try-lock; SQLite's
  single writer) takes committed unsequenced entries in batches, assigns `seq`, computes
  their RFC 6962 leaf hashes, appends them to the Merkle tree (`merkle`, nodes in
  `LedgerNode`) and publishes an Ed25519-signed tree head (`heads`, `TreeHead`), all in one
  transaction. `manage.py sequencer` runs it as a standing leader, woken on commit; the
  sweep runs a batch as a safety net.
- `proofs` serves inclusion and consistency proofs; `verify` checks the whole log from the
  rows (the `verify_audit` command); `witnesses` pushes heads out of the database (on the
  generic outbox, `core.outbox`);
  `receipts` signs and checks single-use receipts with the same key.

Nothing here knows what an entry means: the entry model registers itself (`register`).
"""

from __future__ import annotations

_entry_model = None


def register(model) -> None:
    """The concrete `core.models.LedgerEntry` subclass whose rows are the log."""
    global _entry_model
    _entry_model = model


def entry_model():
    if _entry_model is None:
        raise RuntimeError("no ledger entry model registered")
    return _entry_model

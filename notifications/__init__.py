"""Reaching people where they are: notifications of what happens to checkpoints, by email,
Slack, Microsoft Teams and signed webhooks.

events      what is announced, and to whom (a role, the managers, the requester and owner):
            the Notice in the transaction, its fan-out into Deliveries after commit
recipients  who of a role is told: its active staff, minus four-eyes and people away
receivers   approvals' signals → a Notice (once per event) in the same transaction; a task
            enqueued at commit fans it out into Deliveries (the outbox rows), then sent
transports  the channel registry: one module per kind (email, slack, teams, webhook), each
            validating its config and sending one delivery
outbox      the deliveries on `core.outbox`: claim, lease, backoff, give-up, resend
messages    what a notification says (templates/notifications/), the same facts everywhere
sweeps      reminders before deadlines and SLA targets, hourly digests, lost fan-outs and
            lost sends
services    preferences, out-of-office, chat links, role channels: each audited
"""

"""Run with a portal's code tree on PYTHONPATH (this branch's, or an older one unpacked by
bench/api.py): migrate the bench database and create what the load needs. Prints JSON:
{"pairs": [[agent key, run id], ...], "reviewers": [personal token, ...]}. Uses only APIs
that exist in both trees."""

from __future__ import annotations

import json
import os
import secrets
import sys

import django

clients, reviewers = int(sys.argv[1]), int(sys.argv[2])
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hitlportal.settings")
django.setup()

from django.contrib.auth.models import Group, Permission, User  # noqa: E402
from django.core.management import call_command  # noqa: E402

call_command("migrate", verbosity=0, interactive=False)
call_command("createcachetable", verbosity=0)

from agents.models import Agent  # noqa: E402
from agents.services import AGENT_KEYS  # noqa: E402
from agents.transitions import run_start  # noqa: E402
from approvals.models import UserToken  # noqa: E402
from approvals.services import USER_TOKENS  # noqa: E402
from audit.events import Actor  # noqa: E402

actor = Actor.system("bench")
pairs = []
for i in range(clients):
    agent = Agent.objects.create(slug=f"bench-{i}", name=f"Bench {i}")
    key = AGENT_KEYS.create(agent, actor)
    pairs.append([key, str(run_start(agent=agent, task="bench", actor=actor).pk)])
# Reviewers as tests/factories.py makes them: staff users in a review role (a group with the
# decide permission) with tokens of the decide scope. An older tree has neither the
# permission nor token scopes (nor needs them): grant what this tree has.
ops = Group.objects.get_or_create(name="ops")[0]
ops.permissions.add(*Permission.objects.filter(codename="decide_checkpoint"))
scoped = any(f.name == "scope" for f in UserToken._meta.get_fields())
tokens = []
for i in range(reviewers):
    user = User.objects.create_user(
        f"bench-reviewer-{i}",
        f"bench-reviewer-{i}@example.com",
        secrets.token_urlsafe(),
        is_staff=True,
    )
    user.groups.add(ops)
    tokens.append(USER_TOKENS.create(user, **({"scope": "decide"} if scoped else {})))
print(json.dumps({"pairs": pairs, "reviewers": tokens}))

from __future__ import annotations

import factory
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission

from agents.models import Agent
from approvals.models import Policy
from approvals.policies import policy_record, table_changed
from audit import events as audit
from audit.events import Actor


class GroupFactory(factory.django.DjangoModelFactory):
    """A role. Every group but the managers group is a review role (it may decide) unless
    `review_role=False`."""

    class Meta:
        model = Group
        django_get_or_create = ("name",)
        skip_postgeneration_save = True

    name = "ops"

    @factory.post_generation
    def review_role(self, create, extracted, **kwargs):
        if create and extracted is not False and self.name != settings.HITL_MANAGERS_GROUP:
            self.permissions.add(Permission.objects.get(codename="decide_checkpoint"))


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    is_staff = True
    password = factory.PostGenerationMethodCall("set_password", "pw-for-tests")

    @factory.post_generation
    def roles(self, create, extracted, **kwargs):
        if create and extracted:
            self.groups.set([GroupFactory(name=name) for name in extracted])
        if create:
            self.save()


class AgentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Agent
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Agent {n}")
    slug = factory.Sequence(lambda n: f"agent-{n}")
    kind = Agent.Kind.EXTERNAL


class PolicyFactory(factory.django.DjangoModelFactory):
    """A policy, saved as version 1 and live (`published=False`: left a draft). Like any
    configuration row it is not validated (tests make unusable ones on purpose); policies
    made through the portal go through `policy_save` and `policy_publish`."""

    class Meta:
        model = Policy

    name = factory.Sequence(lambda n: f"policy {n}")
    stages = factory.LazyFunction(lambda: [{"role": "ops", "approvals": 1}])
    timeout_seconds = 1800

    @classmethod
    def _create(cls, model_class, *args, published: bool = True, **kwargs):
        policy = model_class(*args, **kwargs)
        with audit.atomic():
            policy.save()
            version = policy_record(policy, None, actor=Actor.system("tests"))
            if published:
                Policy.objects.filter(pk=policy.pk).update(live_version=version)
                table_changed()
        policy.refresh_from_db()
        return policy

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import URLValidator
from django.utils.module_loading import import_string
from django.utils.text import slugify

from agents.models import Agent
from agents.services import AGENT_KEYS, agent_record
from audit import events as audit
from audit.events import Actor
from core.net import UnsafeURL, check_url


class Command(BaseCommand):
    help = "Register an agent (or add a key to an existing one). Prints the API key last."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", default="")
        parser.add_argument("--callback-url", default="")
        parser.add_argument(
            "--hosted", default="", metavar="CLASS", help="dotted path of a hosted agent class"
        )
        parser.add_argument("--owner", default="", help="username of the owner (four-eyes)")
        parser.add_argument("--key-name", default="cli")

    def handle(self, *args, **opts):
        slug = opts["slug"]
        if slugify(slug) != slug:
            raise CommandError(f"{slug!r} is not a valid slug (use lowercase letters, digits, -)")
        callback_url = opts["callback_url"]
        if callback_url:
            max_length = Agent._meta.get_field("callback_url").max_length
            try:
                URLValidator(schemes=["http", "https"])(callback_url)
            except ValidationError:
                raise CommandError(
                    f"--callback-url {callback_url!r} is not a valid http(s) URL with a host "
                    "(like https://agent.example.com/hitl-webhook)"
                ) from None
            if len(callback_url) > max_length:
                raise CommandError(f"--callback-url is longer than {max_length} characters")
            try:
                check_url(callback_url)
            except UnsafeURL as exc:
                raise CommandError(f"--callback-url {callback_url!r}: {exc}") from None
        if opts["hosted"]:
            try:
                import_string(opts["hosted"])
            except ImportError as exc:
                raise CommandError(f"--hosted {opts['hosted']!r}: {exc}") from None
        owner = None
        if opts["owner"]:
            owner = get_user_model().objects.filter(username=opts["owner"]).first()
            if owner is None:
                raise CommandError(f"no user {opts['owner']!r}")
        actor = Actor.system("createagent")
        with audit.atomic():
            agent, created = Agent.objects.get_or_create(
                slug=slug,
                defaults={
                    "name": opts["name"] or slug,
                    "kind": Agent.Kind.HOSTED if opts["hosted"] else Agent.Kind.EXTERNAL,
                    "runtime": opts["hosted"],
                    "callback_url": callback_url,
                    "owner": owner,
                },
            )
            if created:
                agent_record(agent, None, actor=actor)
            key = AGENT_KEYS.create(agent, actor, name=opts["key_name"])
        if created:
            self.stdout.write(f"Created agent {slug!r} (id {agent.pk}).")
            self.stdout.write(f"Webhook secret (shown once): {agent.webhook_secret}")
        else:
            # The secret was shown when the agent was created; it is stored encrypted and
            # never printed again (rotate it in the admin if it was lost).
            self.stdout.write(f"Added a key to existing agent {slug!r} (id {agent.pk}).")
        self.stdout.write("API key (shown once):")
        self.stdout.write(key)

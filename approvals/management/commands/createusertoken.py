from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from approvals.audit import Actor
from approvals.services import USER_TOKENS


class Command(BaseCommand):
    help = "Create a personal API token for a reviewer. Prints the token last."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="cli")

    def handle(self, *args, **opts):
        user = get_user_model().objects.filter(username=opts["username"]).first()
        if user is None:
            raise CommandError(f"no user {opts['username']!r}")
        token = USER_TOKENS.create(user, name=opts["name"], actor=Actor.system("createusertoken"))
        self.stdout.write(f"Token for {user.get_username()} (shown once):")
        self.stdout.write(token)

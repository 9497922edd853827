from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from approvals.models import UserToken
from approvals.services import user_token_create
from audit.events import Actor
from core.exceptions import InvalidInput


class Command(BaseCommand):
    help = (
        "Create a personal API token for a person (audited). Prints the token last, once. "
        "People can also mint their own tokens in the portal (Your API tokens); where MFA is "
        "required, only those (minted after MFA) may decide."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="cli")
        parser.add_argument(
            "--scope",
            choices=UserToken.Scope.values,
            default=UserToken.Scope.READ,
            help="read (default) or decide",
        )
        parser.add_argument("--days", type=int, default=None, help="lifetime (HITL_TOKEN_DAYS)")

    def handle(self, *args, **opts):
        user = get_user_model().objects.filter(username=opts["username"]).first()
        if user is None:
            raise CommandError(f"no user {opts['username']!r}")
        try:
            token = user_token_create(
                user,
                actor=Actor.system("createusertoken"),
                name=opts["name"],
                scope=opts["scope"],
                days=opts["days"],
            )
        except InvalidInput as exc:
            raise CommandError(f"--{exc.field}: {exc}") from None
        self.stdout.write(f"Token for {user.get_username()} ({opts['scope']}; shown once):")
        self.stdout.write(token)

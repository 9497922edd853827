"""Re-encrypt every secret stored at rest with the current (first) HITL_ENCRYPTION_KEY."""

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import transaction

from core import crypto
from core.crypto import EncryptedTextField

MFA_SECRET_KEYS = {"totp": "secret", "recovery_codes": "seed"}


class Command(BaseCommand):
    help = (
        "Re-encrypt every secret at rest (agents' webhook secrets, TOTP secrets, recovery-code "
        "seeds) with the first key of HITL_ENCRYPTION_KEY. Rotate a key: put the new key "
        "first (keep the old one after it), run this, then drop the old key."
    )

    @transaction.atomic
    def handle(self, *args, **opts):
        count = 0
        for model in apps.get_models():
            fields = [f for f in model._meta.fields if isinstance(f, EncryptedTextField)]
            for field in fields:
                # Values come back decrypted (with any key) and are saved encrypted with the
                # current one.
                for obj in model.objects.exclude(**{field.name: ""}).only("pk", field.name):
                    model.objects.filter(pk=obj.pk).update(**{field.name: getattr(obj, field.name)})
                    count += 1
        Authenticator = apps.get_model("mfa", "Authenticator")
        for authenticator in Authenticator.objects.filter(type__in=list(MFA_SECRET_KEYS)):
            key = MFA_SECRET_KEYS[authenticator.type]
            if authenticator.data.get(key):
                authenticator.data[key] = crypto.rotate(authenticator.data[key])
                authenticator.save(update_fields=["data"])
                count += 1
        self.stdout.write(f"Re-encrypted {count} secret(s) with the current key.")

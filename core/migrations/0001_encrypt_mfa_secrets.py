"""TOTP secrets and recovery-code seeds that allauth stored in clear before encryption at rest
was configured (hitlportal.auth.MFAAdapter) are encrypted in place."""

from django.db import migrations

from core import crypto

SECRET_KEYS = {"totp": "secret", "recovery_codes": "seed"}


def encrypt_existing(apps, schema_editor):
    Authenticator = apps.get_model("mfa", "Authenticator")
    for authenticator in Authenticator.objects.filter(type__in=list(SECRET_KEYS)):
        field = SECRET_KEYS[authenticator.type]
        value = (authenticator.data or {}).get(field)
        if value and not crypto.is_encrypted(value):
            authenticator.data = {**authenticator.data, field: crypto.encrypt(value)}
            authenticator.save(update_fields=["data"])


class Migration(migrations.Migration):
    dependencies = [("mfa", "0003_authenticator_type_uniq")]
    operations = [migrations.RunPython(encrypt_existing, migrations.RunPython.noop)]

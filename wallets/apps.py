from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _first_gate_key(using: str = "default", **kwargs: object) -> None:
    """`migrate` makes the first gate signing key, so that codes are signed with nothing else to
    run (signing also makes it on first use, should it be missing)."""
    from django.db import connections

    from wallets.gate.keystore import ensure_first_key
    from wallets.models import GateSigningKey

    if using != "default" or GateSigningKey._meta.db_table not in connections[using].introspection.table_names():
        return
    ensure_first_key()


class WalletsConfig(AppConfig):
    name = "wallets"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        post_migrate.connect(_first_gate_key, sender=self, dispatch_uid="wallets.first_gate_key")

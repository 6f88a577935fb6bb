"""`manage.py rotate_gate_keys [--revoke] [--json]`"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from wallets.gate.keystore import GateKeyError, rotate_keys


class Command(BaseCommand):
    help = (
        "Retire the gate signing key and make a new one that signs QR codes from now on. The retired key "
        "stays listed in /gate/keys while codes it signed can still be used (--revoke: delisted at once, "
        "for a key that leaked; its codes stop verifying)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--revoke", action="store_true",
                            help="Delist the retired key at once: codes it signed are refused from now on.")
        parser.add_argument("--json", action="store_true", dest="as_json",
                            help='Print one line {"kid": ..., "retiredKid": ..., "retiredListedUntil": ...}.')

    def handle(self, *args, revoke: bool, as_json: bool, **options) -> None:
        try:
            rotation = rotate_keys(revoke=revoke)
        except GateKeyError as exc:
            raise CommandError(str(exc)) from exc
        retired = rotation.retired
        if as_json:
            self.stdout.write(json.dumps({
                "kid": rotation.new.kid,
                "retiredKid": retired.kid if retired else None,
                "retiredListedUntil": retired.listed_until.isoformat() if retired and retired.listed_until else None,
            }))
            return
        self.stdout.write(f"New gate signing key {rotation.new.kid}: it signs every code from now on "
                          "(other processes switch within GATE_KEY_CACHE_SECONDS).")
        if retired is None:
            return
        if revoke:
            self.stdout.write(f"Retired and revoked {retired.kid}: codes it signed are refused.")
        else:
            self.stdout.write(f"Retired {retired.kid}: listed in /gate/keys until {retired.listed_until}, "
                              "while codes it signed can still be used.")

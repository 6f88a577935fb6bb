"""`manage.py create_gate_device NAME [--items ID,ID…] [--json]`"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from catalog.models import Item
from wallets.gate.devices import create_gate_device
from wallets.models import GateDevice

NAME_MAX_LENGTH = GateDevice._meta.get_field("name").max_length


class Command(BaseCommand):
    help = "Register a gate device and print its token. The token is shown only this once and stored as a hash."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", metavar="NAME", help="What staff call the device, e.g. 'North entrance 1'.")
        parser.add_argument("--items", metavar="ID,ID…", help="The itemIds it admits (default: every item).")
        parser.add_argument("--json", action="store_true", dest="as_json",
                            help='Print one line {"deviceId": ..., "token": ...} instead of text.')

    def handle(self, *args, name: str, items: str | None, as_json: bool, **options) -> None:
        name = name.strip()
        if not name:
            raise CommandError("NAME must not be empty.")
        if len(name) > NAME_MAX_LENGTH:
            raise CommandError(f"NAME is longer than {NAME_MAX_LENGTH} characters.")
        limited_to: list[Item] = []
        if items is not None:
            codes = [code.strip() for code in items.split(",") if code.strip()]
            if not codes:
                raise CommandError("--items names no itemId.")
            found = {item.item_id: item for item in Item.objects.filter(item_id__in=codes)}
            unknown = [code for code in codes if code not in found]
            if unknown:
                raise CommandError(f"Unknown itemId(s): {', '.join(unknown)}.")
            limited_to = [found[code] for code in dict.fromkeys(codes)]
        device, token = create_gate_device(name=name, items=limited_to)
        if as_json:
            self.stdout.write(json.dumps({"deviceId": str(device.device_id), "token": token}))
            return
        scope = ", ".join(item.item_id for item in limited_to) or "every item"
        self.stdout.write(f"Created gate device {device.name} ({device.device_id}), admitting {scope}.")
        self.stdout.write("Token (shown only now; store it on the device):")
        self.stdout.write(token)

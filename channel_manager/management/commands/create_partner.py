"""`manage.py create_partner PARTNER_ID --name NAME [--active-from RFC3339] [--json]`"""

from __future__ import annotations

import datetime as dt
import json
import re

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import IntegrityError
from django.utils.dateparse import parse_datetime

from channel_manager.kernel import partners
from channel_manager.kernel.dates import INSTANT_RANGE_MESSAGE, in_calendar
from channel_manager.kernel.formats import rfc3339
from channel_manager.kernel.models import Partner

PARTNER_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
NAME_MAX_LENGTH = Partner._meta.get_field("name").max_length


def parse_rfc3339(value: str) -> dt.datetime:
    """An RFC 3339 timestamp with a UTC offset ("2026-12-01T00:00:00Z", "...+01:00")."""
    text = value.strip()
    # RFC 3339 allows a lower-case t and z; Python's parser wants them upper-case.
    parsed = None
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", text):
        try:
            parsed = parse_datetime(text.upper())
        except ValueError:
            parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise CommandError(
            f"--active-from {value!r} is not an RFC 3339 timestamp with a UTC offset, "
            "e.g. 2026-12-01T00:00:00Z or 2026-12-01T09:00:00+01:00."
        )
    if not in_calendar(parsed):  # e.g. 0001-01-01T00:00:00+01:00 has no UTC equivalent
        raise CommandError(f"--active-from {value!r}: {INSTANT_RANGE_MESSAGE}")
    return parsed.astimezone(dt.UTC)




def validate_partner_id(value: str) -> str:
    if not PARTNER_ID_RE.fullmatch(value):
        raise CommandError(
            f"PARTNER_ID {value!r} is invalid: use 1-64 characters of A-Z a-z 0-9 . _ -"
        )
    return value


class Command(BaseCommand):
    help = (
        "Create a partnership and print its first live API key and test key. The keys are shown "
        "only this once and stored as hashes."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "partner_id", metavar="PARTNER_ID", help="1-64 chars of A-Z a-z 0-9 . _ -"
        )
        parser.add_argument("--name", required=True, help="The partner's display name.")
        parser.add_argument(
            "--active-from",
            dest="active_from",
            metavar="RFC3339",
            help="When the partnership starts (default: now). Requests before it answer 403.",
        )
        parser.add_argument(
            "--json",
            action="store_true",
            dest="as_json",
            help='Print one line {"partnerId": ..., "apiKey": ..., "testApiKey": ...} instead of text.',
        )

    def handle(
        self, *args, partner_id: str, name: str, active_from: str | None, as_json: bool, **options
    ) -> None:
        partner_id = validate_partner_id(partner_id)
        name = name.strip()
        if not name:
            raise CommandError("--name must not be empty.")
        if len(name) > NAME_MAX_LENGTH:
            raise CommandError(f"--name is longer than {NAME_MAX_LENGTH} characters.")
        starts = parse_rfc3339(active_from) if active_from is not None else None

        if Partner.objects.filter(partner_id=partner_id).exists():
            raise CommandError(f"A partner with partnerId {partner_id!r} already exists.")
        try:
            partner, raw_key, test_key = partners.create_partner_with_test_key(
                partner_id=partner_id, name=name, active_from=starts
            )
        except IntegrityError as exc:  # created concurrently since the check above
            raise CommandError(f"A partner with partnerId {partner_id!r} already exists.") from exc

        if as_json:
            self.stdout.write(
                json.dumps({"partnerId": partner.partner_id, "apiKey": raw_key, "testApiKey": test_key})
            )
            return
        self.stdout.write(
            f"Created partner {partner.partner_id} ({partner.name}), "
            f"active from {rfc3339(partner.active_from)}."
        )
        self.stdout.write("API key (shown only now; store it safely):")
        self.stdout.write(raw_key)
        self.stdout.write("Test API key (test mode: test data only, never live tickets; shown only now):")
        self.stdout.write(test_key)

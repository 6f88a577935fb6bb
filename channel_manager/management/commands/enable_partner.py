"""`manage.py enable_partner PARTNER_ID`"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from channel_manager.kernel import partners
from channel_manager.kernel.models import Partner


class Command(BaseCommand):
    help = "Switch a disabled partnership back on."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("partner_id", metavar="PARTNER_ID")

    def handle(self, *args, partner_id: str, **options) -> None:
        partner = Partner.objects.filter(partner_id=partner_id).first()
        if partner is None:
            raise CommandError(f"No partner with partnerId {partner_id!r}.")
        was = partner.enabled
        partners.set_partner_enabled(partner=partner, enabled=True)
        if was:
            self.stdout.write(f"Partner {partner.partner_id} was already enabled.")
        else:
            self.stdout.write(f"Partner {partner.partner_id} enabled.")

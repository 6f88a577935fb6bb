"""Management command bodies the apps share."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from channel_manager.kernel import partners
from channel_manager.kernel.models import Partner


class SetPartnerEnabledCommand(BaseCommand):
    """`manage.py enable_partner|disable_partner PARTNER_ID`: one body, `enabled` says which."""

    enabled: bool

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("partner_id", metavar="PARTNER_ID")

    def handle(self, *args, partner_id: str, **options) -> None:
        partner = Partner.objects.filter(partner_id=partner_id).first()
        if partner is None:
            raise CommandError(f"No partner with partnerId {partner_id!r}.")
        word = "enabled" if self.enabled else "disabled"
        if partner.enabled == self.enabled:
            self.stdout.write(f"Partner {partner.partner_id} was already {word}.")
            return
        partners.set_partner_enabled(partner=partner, enabled=self.enabled)
        self.stdout.write(f"Partner {partner.partner_id} {word}.")

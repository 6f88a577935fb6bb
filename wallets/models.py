"""Wallets and the assets (tickets and coupons) minted into them.

A wallet shell exists from submission; minting fills in its reference number, manifest token and
assets. Destroyed wallets keep their row (so their manifest URL can answer 410) but no longer
hold their external reference number or capacity.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class Wallet(models.Model):
    order = models.ForeignKey("channel_manager.Order", on_delete=models.CASCADE, related_name="wallets")
    # SET_NULL: a replace deletes the old lines but keeps their destroyed wallets, so that their
    # manifest URLs answer 410 rather than 404.
    line = models.ForeignKey(
        "channel_manager.OrderLine", on_delete=models.SET_NULL, null=True, blank=True, related_name="wallets"
    )
    # Denormalised from the order so the database can keep external references unique per partner.
    partner = models.ForeignKey("channel_manager.Partner", on_delete=models.CASCADE, related_name="+")
    position = models.PositiveIntegerField(help_text="0-based position among the line's wallets.")
    external_reference_number = models.CharField(max_length=64, null=True, blank=True)
    wallet_reference_number = models.CharField(max_length=64, null=True, blank=True)
    manifest_token = models.CharField(max_length=64, null=True, blank=True, unique=True)
    minted_at = models.DateTimeField(null=True, blank=True)
    destroyed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["line_id", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["partner", "external_reference_number"],
                condition=Q(destroyed_at__isnull=True, external_reference_number__isnull=False),
                name="wallet_live_external_reference_unique",
            ),
        ]
        indexes = [models.Index(fields=["wallet_reference_number"], name="wallet_reference_idx")]

    def __str__(self) -> str:
        return self.wallet_reference_number or self.external_reference_number or f"wallet {self.pk}"

    @property
    def live(self) -> bool:
        return self.destroyed_at is None


class AssetType(models.TextChoices):
    TICKET = "ticket", "Ticket"
    COUPON = "coupon", "Coupon"


class Asset(models.Model):
    wallet = models.ForeignKey(Wallet, on_delete=models.CASCADE, related_name="assets")
    asset_type = models.CharField(max_length=8, choices=AssetType.choices)
    asset_number = models.CharField(max_length=32, unique=True)
    item = models.ForeignKey("catalog.Item", on_delete=models.PROTECT, related_name="+")
    item_code = models.CharField("itemId", max_length=64)
    name = models.CharField(max_length=255)
    visit_date = models.DateField()
    visit_time = models.TimeField(null=True, blank=True)
    admits = models.PositiveIntegerField(null=True, blank=True, help_text="Tickets: people admitted.")
    description = models.CharField(max_length=255, blank=True)
    valid_until = models.DateField(null=True, blank=True, help_text="Coupons: last valid day.")
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["wallet_id", "position"]

    def __str__(self) -> str:
        return self.asset_number

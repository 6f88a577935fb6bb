"""Wallets and the assets (tickets and coupons) minted into them.

A wallet shell exists from submission; minting fills in its reference number, manifest token and
assets. Destroyed (void) wallets keep their row (so their manifest URL can answer 410) but no
longer hold their external reference number or capacity.

Wallets know nothing of orders: the order side links its lines to wallets (its OrderWallet
model) and pushes each wallet's validity in, and a wallet carries a snapshot of what its holder
is shown (name, language, the booking references), written when the shell is made. The manifest
reads only wallets and the catalog.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from channel_manager.kernel.models import Partner


class WalletValidity(models.TextChoices):
    """pending (minted for a Draft: not valid until the order is confirmed) -> valid -> void
    (cancelled, replaced or deleted: the manifest answers 410)."""

    PENDING = "pending", "Pending"
    VALID = "valid", "Valid"
    VOID = "void", "Void"


class Wallet(models.Model):
    # The partner (a kernel row) whose customer holds the wallet: the database keeps external
    # references unique per partner among live wallets.
    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="+")
    position = models.PositiveIntegerField(help_text="0-based position among the wallets issued together.")
    validity = models.CharField(max_length=8, choices=WalletValidity.choices, default=WalletValidity.PENDING)
    # What the holder is shown, as the booking stood when the wallet was made.
    holder_name = models.TextField(null=True, blank=True)
    holder_language = models.TextField(null=True, blank=True, help_text="As the customer gave it.")
    holder_country = models.TextField(null=True, blank=True, help_text="As the customer gave it.")
    sell_to_order_reference = models.CharField("sellToOrderReference", max_length=64, blank=True, default="")
    buy_from_order_reference = models.CharField("buyFromOrderReference", max_length=32, blank=True, default="")
    external_reference_number = models.CharField(max_length=64, null=True, blank=True)
    wallet_reference_number = models.CharField(max_length=64, null=True, blank=True)
    manifest_token = models.CharField(max_length=64, null=True, blank=True, unique=True)
    minted_at = models.DateTimeField(null=True, blank=True)
    destroyed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["partner", "external_reference_number"],
                condition=Q(destroyed_at__isnull=True, external_reference_number__isnull=False),
                name="wallet_live_external_reference_unique",
            ),
            # destroyed_at is when the wallet became void: one never goes without the other.
            models.CheckConstraint(
                condition=Q(validity=WalletValidity.VOID, destroyed_at__isnull=False)
                | (~Q(validity=WalletValidity.VOID) & Q(destroyed_at__isnull=True)),
                name="wallet_void_when_destroyed",
            ),
        ]
        indexes = [models.Index(fields=["wallet_reference_number"], name="wallet_reference_idx")]

    def __str__(self) -> str:
        return self.wallet_reference_number or self.external_reference_number or f"wallet {self.pk}"

    @property
    def live(self) -> bool:
        return self.destroyed_at is None

    @property
    def gone(self) -> bool:
        """Void (cancelled, replaced or deleted): its manifest answers 410."""
        return self.validity == WalletValidity.VOID or self.destroyed_at is not None


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

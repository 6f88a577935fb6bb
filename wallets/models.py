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

import uuid

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
        indexes = [
            models.Index(fields=["wallet_reference_number"], name="wallet_reference_idx"),
            # The gate resolves a code as wallet OR external reference: without this index each
            # such lookup (every unknown code too) scanned the whole wallet table.
            models.Index(fields=["external_reference_number"], name="wallet_external_reference_idx"),
        ]

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
    # Set once, at the gate, by a conditional UPDATE (wallets.gate.services): the database, not
    # the reader, decides which of two racing scans admits. Null until used.
    redeemed_at = models.DateTimeField(null=True, blank=True)
    redeemed_by = models.ForeignKey(
        "GateDevice", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["wallet_id", "position"]
        constraints = [
            models.CheckConstraint(
                condition=Q(redeemed_at__isnull=False) | Q(redeemed_by__isnull=True),
                name="asset_redeemed_by_only_when_redeemed",
            ),
        ]

    def __str__(self) -> str:
        return self.asset_number


# ---- The gate (wallets.gate): devices at the entrance and what they scanned -----------------


class GateDevice(models.Model):
    """A scanner at the venue's entrance. Its bearer token is shown once and kept as a SHA-256
    digest (256 random bits: a fast hash is as safe as a slow one), like a partner's API key."""

    device_id = models.UUIDField("deviceId", default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, help_text="First characters of the token, to tell devices apart.")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    items = models.ManyToManyField(
        "catalog.Item", blank=True, related_name="+",
        help_text="The items this device admits; none means every item.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name", "id"]
        verbose_name = "gate device"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…{', revoked' if self.revoked_at else ''})"


class ScanResult(models.TextChoices):
    ACCEPTED = "accepted", "Accepted"
    REJECTED = "rejected", "Rejected"


class GateScan(models.Model):
    """Every scan a device made, accepted or not: the gate's log."""

    device = models.ForeignKey(GateDevice, on_delete=models.PROTECT, related_name="scans")
    code = models.CharField(max_length=200, help_text="As scanned (truncated).")
    scanned_at = models.DateTimeField(help_text="When the device scanned it.")
    received_at = models.DateTimeField(auto_now_add=True)
    result = models.CharField(max_length=8, choices=ScanResult.choices)
    reason = models.CharField(max_length=32, null=True, blank=True)
    asset = models.ForeignKey(Asset, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-scanned_at", "-id"]
        indexes = [
            models.Index(fields=["scanned_at"], name="gatescan_scanned_at_idx"),
            models.Index(fields=["code"], name="gatescan_code_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.code[:24]} {self.result}"

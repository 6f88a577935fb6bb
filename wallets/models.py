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

from django.conf import settings
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
    # False for a test order's wallet (API.md, "Test mode"): its manifest says "TEST — not valid
    # for entry", the gate refuses it (test_ticket), and it holds test-pool capacity only.
    livemode = models.BooleanField(default=True)
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
            # External references are separate per mode: a test order may reuse a live one's.
            models.UniqueConstraint(
                fields=["partner", "livemode", "external_reference_number"],
                condition=Q(destroyed_at__isnull=True, external_reference_number__isnull=False),
                name="wallet_live_external_reference_unique_per_mode",
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
    # A Gate staff member scanning with the scanner page under their own login scans as their own
    # device (made on their first visit): the log, redeemed_by and previousRedemption name it like
    # any device, and the admin limits its items or revokes it the same way. Its token is never shown.
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="gate_device",
        help_text="Set for a staff member's own scanner (the scanner page under a staff login).",
    )

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
    # An accepted scan whose redemption moved to an earlier scan of the same asset uploaded
    # later (offline, the earliest scannedAt wins): a conflict, it now counts as already used.
    superseded_by = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The earlier scan (uploaded later) that took this scan's redemption: a conflict.",
    )

    class Meta:
        ordering = ["-scanned_at", "-id"]
        # Staff holding it (the Gate group) may scan with the scanner page under their own login.
        permissions = [("scan_at_gate", "Can scan at the gate with the scanner page")]
        indexes = [
            models.Index(fields=["scanned_at"], name="gatescan_scanned_at_idx"),
            models.Index(fields=["code"], name="gatescan_code_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.code[:24]} {self.result}"


class GateSigningKey(models.Model):
    """An Ed25519 key the venue signs QR payloads with (wallets.gate.keystore).

    Exactly one key signs (`active`); a retired key stays in the public JWKS until `listed_until`
    (the venue's date), so codes it signed keep verifying. The private key is sealed with
    AES-GCM under a key derived from SECRET_KEY; the public key is stored as JWK `x`.
    """

    kid = models.CharField(max_length=16, unique=True, editable=False)
    public_x = models.CharField("x", max_length=64, editable=False, help_text="The public key, base64url (JWK x).")
    # nonce || AES-256-GCM ciphertext of the 32-byte raw private key, bound to kid as associated data.
    sealed_private_key = models.BinaryField(editable=False)
    # True for the one signing key, NULL once retired: a unique column with NULLs allowed keeps a
    # single active key on PostgreSQL and SQLite alike, so two processes never make two.
    active = models.BooleanField(null=True, default=True, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    retired_at = models.DateTimeField(null=True, blank=True)
    listed_until = models.DateField(
        null=True, blank=True, help_text="A retired key is listed in /gate/keys until this day (venue date)."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "gate signing key"
        constraints = [
            models.CheckConstraint(
                condition=Q(active=True, retired_at__isnull=True) | Q(active__isnull=True, retired_at__isnull=False),
                name="gate_key_active_unless_retired",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kid}{' (retired)' if self.retired_at else ''}"
class GateChangeKind(models.TextChoices):
    VOIDED = "voided", "Voided"
    REDEEMED = "redeemed", "Redeemed"


class GateChange(models.Model):
    """The gate's change feed (GET /gate/sync): one row per asset voided or redeemed, written in
    the transaction that voids or redeems it (wallets.gate.changes). Plain columns, no foreign
    key to the asset: a deleted Draft's assets go, their voiding stays in the feed.

    `txid` is the writing transaction's id on PostgreSQL (0 elsewhere): the feed is read in
    (txid, id) order and only up to the oldest transaction still running, so that a change
    committed late is never skipped (see wallets.gate.changes)."""

    txid = models.BigIntegerField(default=0)
    kind = models.CharField(max_length=8, choices=GateChangeKind.choices)
    asset_number = models.CharField(max_length=32)
    item = models.ForeignKey("catalog.Item", on_delete=models.DO_NOTHING, db_constraint=False, related_name="+")
    at = models.DateTimeField(help_text="Redeemed: when the winning scan was made; voided: when.")

    class Meta:
        ordering = ["txid", "id"]
        indexes = [
            models.Index(fields=["txid", "id"], name="gatechange_feed_idx"),
            models.Index(fields=["at"], name="gatechange_at_idx"),  # housekeeping (prune_gate_changes)
        ]

    def __str__(self) -> str:
        return f"{self.asset_number} {self.kind}"

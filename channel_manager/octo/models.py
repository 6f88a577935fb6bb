"""The one thing OCTO needs that an order does not have: the booking's uuid, its unit items'
uuids and the reseller's references, mapped to the order.

Not a foreign key to the order: deleting an ON_HOLD booking's Draft order leaves a tombstone
(DeletedOrder) with the same orderId, through which the cancelled booking stays readable."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from channel_manager.kernel.models import Partner


class OctoBooking(models.Model):
    # Unique per partner and mode (below), as the partner API's references are: a test key's
    # uuid never collides with, nor reveals, a live booking (API.md, "Test mode").
    uuid = models.UUIDField("booking uuid", editable=False)
    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="+")
    # The mode of the key that reserved it (OCTO's testMode); every lookup filters on it.
    livemode = models.BooleanField(default=True)
    # The order's orderId (its row may have been deleted: then its tombstone has it).
    order_id = models.UUIDField("orderId", unique=True)
    product_id = models.CharField("productId", max_length=64)
    availability_id = models.CharField("availabilityId", max_length=64)
    reseller_reference = models.CharField("resellerReference", max_length=128, null=True, blank=True)
    notes = models.TextField(null=True, blank=True)
    # [{"uuid", "unitId", "resellerReference"}], in the order of the order's wallets (line by
    # line, then position): unit item i is wallet i.
    unit_items = models.JSONField(default=list)
    cancellation_reason = models.TextField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        app_label = "channel_manager"
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["partner", "livemode", "uuid"], name="octobooking_unique_partner_mode_uuid"
            ),
        ]
        indexes = [
            models.Index(fields=["partner", "livemode", "reseller_reference"], name="octobooking_reseller_ref"),
        ]

    def __str__(self) -> str:
        return f"OCTO booking {self.uuid}"

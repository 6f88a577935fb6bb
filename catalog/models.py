"""The venue's catalog: items, package components and coupons, time slots and capacity rows.

The catalog knows nothing of orders. Capacity is kept per (item, visit date, slot) in rows that
issuance locks and counts atomically; the check constraint is the last guard against overselling.
"""

from __future__ import annotations

import datetime as dt

from django.db import models


class Venue(models.Model):
    """The single venue this installation sells for (one row)."""

    name = models.CharField(max_length=200)
    time_zone = models.CharField(max_length=64)
    currency = models.CharField(max_length=3)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.name


class ItemType(models.TextChoices):
    TICKET = "ticket", "Ticket"
    GROUP_TICKET = "group_ticket", "Group ticket"
    PACKAGE = "package", "Package"


class Item(models.Model):
    item_id = models.CharField("itemId", max_length=64, unique=True)
    name = models.CharField(max_length=200)
    item_type = models.CharField(max_length=16, choices=ItemType.choices)
    price = models.DecimalField(max_digits=12, decimal_places=2)
    active = models.BooleanField(default=True)
    sale_from = models.DateField(null=True, blank=True, help_text="First visit date on sale (inclusive).")
    sale_until = models.DateField(null=True, blank=True, help_text="Last visit date on sale (inclusive).")
    capacity_per_day = models.PositiveIntegerField(
        null=True, blank=True, help_text="Untimed items only; empty means no limit (freesale)."
    )
    max_group_size = models.PositiveIntegerField(null=True, blank=True)
    # The gate's admission window of a timed ticket (API.md, "Gate admission"): it admits from
    # this long before its visitTime until this long after it.
    admit_before_minutes = models.PositiveIntegerField(
        default=60, help_text="Timed tickets: minutes before the visit time the gate admits from."
    )
    admit_after_minutes = models.PositiveIntegerField(
        default=60, help_text="Timed tickets: minutes after the visit time the gate admits until."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["item_id"]

    def __str__(self) -> str:
        return f"{self.item_id} ({self.name})"

    def on_sale(self, visit_date: dt.date) -> bool:
        if self.sale_from and visit_date < self.sale_from:
            return False
        return not (self.sale_until and visit_date > self.sale_until)


class TimeSlot(models.Model):
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="time_slots")
    time = models.TimeField()
    capacity = models.PositiveIntegerField(null=True, blank=True, help_text="Per visit date; empty means no limit.")

    class Meta:
        ordering = ["item", "time"]
        constraints = [models.UniqueConstraint(fields=["item", "time"], name="timeslot_unique_per_item")]

    def __str__(self) -> str:
        return f"{self.item.item_id} {self.time:%H:%M}"


class PackageComponent(models.Model):
    package = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="components")
    component = models.ForeignKey(Item, on_delete=models.PROTECT, related_name="in_packages")
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["package", "position"]
        constraints = [
            models.UniqueConstraint(fields=["package", "component"], name="component_once_per_package")
        ]

    def __str__(self) -> str:
        return f"{self.package_id} ⊃ {self.component_id}"


class PackageCoupon(models.Model):
    package = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="coupons")
    code = models.CharField(max_length=64)
    description = models.CharField(max_length=255)
    valid_days = models.PositiveIntegerField(default=1)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["package", "position"]
        constraints = [models.UniqueConstraint(fields=["package", "code"], name="coupon_code_once_per_package")]

    def __str__(self) -> str:
        return self.code


class Capacity(models.Model):
    """Sold count for one item on one visit date (and slot, for timed items).

    `capacity` is copied from the item or slot when the row is made (and updated by
    load_catalog); NULL means freesale. Rows are made lazily by the first reservation.

    Test mode (API.md) sells from a pool of its own: rows with `livemode` False, the same size,
    full at the start of each date and slot. Test orders never touch a live row.
    """

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="capacity_rows")
    livemode = models.BooleanField(default=True)
    visit_date = models.DateField()
    visit_time = models.TimeField(null=True, blank=True, help_text="Empty for untimed items.")
    capacity = models.PositiveIntegerField(null=True, blank=True)
    sold = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "capacity"
        ordering = ["item", "visit_date", "visit_time"]
        constraints = [
            models.UniqueConstraint(
                fields=["item", "visit_date", "visit_time", "livemode"],
                condition=models.Q(visit_time__isnull=False),
                name="capacity_unique_timed_per_mode",
            ),
            models.UniqueConstraint(
                fields=["item", "visit_date", "livemode"],
                condition=models.Q(visit_time__isnull=True),
                name="capacity_unique_untimed_per_mode",
            ),
            models.CheckConstraint(
                condition=models.Q(capacity__isnull=True) | models.Q(sold__lte=models.F("capacity")),
                name="capacity_not_oversold",
            ),
        ]

    def __str__(self) -> str:
        mode = "" if self.livemode else " (test)"
        return f"{self.item_id} {self.visit_date} {self.visit_time or ''}{mode}: {self.sold}/{self.capacity or '∞'}"

    @property
    def remaining(self) -> int | None:
        return None if self.capacity is None else max(self.capacity - self.sold, 0)

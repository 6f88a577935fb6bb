"""Orders, their lines and history, and the one order state machine."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from channel_manager.kernel.models import Partner


class OrderStatus(models.TextChoices):
    SUBMITTED = "Submitted"
    SCHEDULED = "Scheduled"
    PROCESSING = "Processing"
    DRAFT = "Draft"
    ISSUED = "Issued"
    ERROR = "Error"
    CANCELLED = "Cancelled"


IN_FLIGHT = frozenset({OrderStatus.SUBMITTED, OrderStatus.SCHEDULED, OrderStatus.PROCESSING})
SETTLED = frozenset({OrderStatus.DRAFT, OrderStatus.ISSUED, OrderStatus.ERROR})

# The state machine, declared once. channel_manager.orders.state, the one writer of
# Order.status, checks every move against it; the services ask `operation_allowed`.
INITIAL_STATUS = OrderStatus.SUBMITTED  # every order starts here (history: "" → Submitted)

TRANSITIONS: dict[str, frozenset[str]] = {
    OrderStatus.SUBMITTED: frozenset({OrderStatus.SCHEDULED, OrderStatus.PROCESSING}),
    OrderStatus.SCHEDULED: frozenset({OrderStatus.PROCESSING}),
    # Processing -> Scheduled: the sweeper re-enqueues an order whose worker died.
    OrderStatus.PROCESSING: frozenset(
        {OrderStatus.DRAFT, OrderStatus.ISSUED, OrderStatus.ERROR, OrderStatus.SCHEDULED}
    ),
    # Draft -> Error: its hold expired (channel_manager.orders.services.expire_draft_holds).
    OrderStatus.DRAFT: frozenset({OrderStatus.ISSUED, OrderStatus.SUBMITTED, OrderStatus.ERROR}),
    OrderStatus.ISSUED: frozenset({OrderStatus.CANCELLED}),
    OrderStatus.ERROR: frozenset({OrderStatus.SUBMITTED}),
    OrderStatus.CANCELLED: frozenset(),
}

# Partner operations and the statuses they are allowed in. "confirm" on Issued and "delete" on
# Cancelled are no-ops that answer the order unchanged.
OPERATIONS: dict[str, frozenset[str]] = {
    "confirm": frozenset({OrderStatus.DRAFT, OrderStatus.ISSUED}),
    "replace": frozenset({OrderStatus.DRAFT, OrderStatus.ERROR}),
    "delete": frozenset({OrderStatus.DRAFT, OrderStatus.ERROR, OrderStatus.ISSUED, OrderStatus.CANCELLED}),
}


def can_transition(from_status: str, to_status: str) -> bool:
    return to_status in TRANSITIONS[from_status]


# The statuses in which an allowed operation is a no-op.
NO_OP_STATUS: dict[str, str] = {"confirm": OrderStatus.ISSUED, "delete": OrderStatus.CANCELLED}


def operation_allowed(operation: str, status: str) -> bool:
    return status in OPERATIONS[operation]


def is_no_op(operation: str, status: str) -> bool:
    return NO_OP_STATUS.get(operation) == status


def operation_changes(operation: str, status: str) -> bool:
    """Allowed and not a no-op: what the admin offers to do."""
    return operation_allowed(operation, status) and not is_no_op(operation, status)


class TestScenario(models.TextChoices):
    """Simulated outcomes a test order may ask for (API.md, "Test mode"): test keys only."""

    ERROR = "error"
    SLOW = "slow"


class Order(models.Model):
    # Internal bigint key; it also numbers buyFromOrderReference, so that reference is unique
    # by construction and known from the first INSERT.
    id = models.BigAutoField(primary_key=True)
    order_id = models.UUIDField("orderId", default=uuid.uuid4, unique=True, editable=False)
    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="orders")
    # False for test data (made with a test key, API.md "Test mode"): every partner query filters on it.
    livemode = models.BooleanField(default=True)
    sell_to_order_reference = models.CharField("sellToOrderReference", max_length=64)
    status = models.CharField(max_length=16, choices=OrderStatus.choices, default=OrderStatus.SUBMITTED)
    status_message = models.TextField(null=True, blank=True)
    payment_reference = models.CharField(max_length=128, null=True, blank=True)
    customer = models.JSONField(null=True, blank=True)
    currency = models.CharField(max_length=3)
    total_amount = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(default=timezone.now, db_index=True)
    issued_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    # When a Draft's hold on its capacity ends (API.md, "Draft holds"): set when the order settles
    # Draft (null when its partnership's holds never expire), cleared on every other status.
    hold_expires_at = models.DateTimeField("holdExpiresAt", null=True, blank=True)
    # How many times issuance started for the current content (a worker that died counts).
    issuance_attempts = models.PositiveIntegerField(default=0)
    # The X-Request-Id of the request that last submitted it: issuance logs under it, so that a
    # partner's request can be followed into the batch that issued its order.
    request_id = models.CharField(max_length=128, blank=True, default="")
    # A test order's simulated outcome (testScenario), kept across replaces until changed.
    test_scenario = models.CharField(max_length=8, choices=TestScenario.choices, blank=True, default="")
    # Not issued before this moment ("slow" test orders): the queue skips it until then, so no
    # worker waits for it.
    issue_after = models.DateTimeField(null=True, blank=True)

    class Meta:
        app_label = "channel_manager"
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["partner", "livemode", "sell_to_order_reference"], name="order_unique_partner_mode_reference"
            ),
            models.CheckConstraint(
                condition=models.Q(livemode=False) | models.Q(test_scenario=""), name="order_test_scenario_test_only"
            ),
        ]
        indexes = [
            models.Index(fields=["partner", "livemode", "-id"], name="order_partner_mode_newest"),
            models.Index(fields=["status", "updated_at"], name="order_status_updated"),
            # The issuance queue: Scheduled orders, oldest first.
            models.Index(fields=["id"], condition=models.Q(status="Scheduled"), name="order_due"),
            # The holds to expire: Drafts whose hold has an end, soonest first.
            models.Index(
                fields=["hold_expires_at"],
                condition=models.Q(status="Draft", hold_expires_at__isnull=False),
                name="order_hold_due",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.buy_from_order_reference} ({self.status})"

    @property
    def buy_from_order_reference(self) -> str:
        return format_buy_from_reference(self.pk)

    @property
    def in_flight(self) -> bool:
        return self.status in IN_FLIGHT


BUY_FROM_PREFIX = "CM-"


def format_buy_from_reference(pk: int) -> str:
    return f"{BUY_FROM_PREFIX}{pk:08d}"


def parse_buy_from_reference(value: str) -> int | None:
    value = value.strip().upper()
    if value.startswith(BUY_FROM_PREFIX) and value[len(BUY_FROM_PREFIX):].isdigit():
        return int(value[len(BUY_FROM_PREFIX):])
    return None


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    line_number = models.PositiveSmallIntegerField()
    item = models.ForeignKey("catalog.Item", on_delete=models.PROTECT, related_name="+")
    item_code = models.CharField("itemId", max_length=64)
    item_type = models.CharField(max_length=16)
    quantity = models.PositiveIntegerField()
    visit_date = models.DateField()
    visit_time = models.TimeField(null=True, blank=True)
    external_reference_numbers = models.JSONField(default=list, blank=True)
    component_schedule = models.JSONField(default=list, blank=True)
    unit_price = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    line_total = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)

    class Meta:
        app_label = "channel_manager"
        ordering = ["order", "line_number"]
        constraints = [models.UniqueConstraint(fields=["order", "line_number"], name="line_number_unique")]

    def __str__(self) -> str:
        return f"{self.line_number}: {self.quantity} × {self.item_code}"


class OrderStatusChange(models.Model):
    """The order's history: every status change and staff action, who or what did it, and why."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="status_changes")
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16)
    at = models.DateTimeField(default=timezone.now)
    actor = models.CharField(max_length=150, help_text="partner:<id>, worker, sweeper or staff:<username>")
    message = models.TextField(blank=True)

    class Meta:
        app_label = "channel_manager"
        ordering = ["order", "at", "id"]

    def __str__(self) -> str:
        return f"{self.from_status or '∅'} → {self.to_status} by {self.actor}"


class OrderWallet(models.Model):
    """Which wallets an order issued, and for which of its lines: the order side's link, so
    that wallets need not know orders.

    A replace deletes the old lines but keeps their void wallets (their manifests answer 410):
    the link then keeps its order and loses its line (SET_NULL). Deleting a Draft or Error
    order deletes its wallets first (services.delete_order), as its links go with it.
    """

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="wallet_links")
    line = models.ForeignKey(
        OrderLine, on_delete=models.SET_NULL, null=True, blank=True, related_name="wallet_links"
    )
    wallet = models.OneToOneField("wallets.Wallet", on_delete=models.CASCADE, related_name="order_link")

    class Meta:
        app_label = "channel_manager"
        ordering = ["order", "line", "wallet"]

    def __str__(self) -> str:
        return f"order {self.order_id} line {self.line_id}: wallet {self.wallet_id}"


class IssuanceSignal(models.Model):
    """A row here says "an issuance run has been asked for and not started yet".

    The orders table is the issuance queue (Scheduled orders, oldest first). Whoever schedules
    orders raises the signal after commit; only the one who raises it queues a run (a django-q
    task), and each run lowers it before it looks for due orders. So a burst of orders queues
    a handful of runs instead of a task per order, and no order is left without a run after it
    (see channel_manager.orders.scheduling)."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    raised_at = models.DateTimeField()

    class Meta:
        app_label = "channel_manager"

    def __str__(self) -> str:
        return f"issuance asked for at {self.raised_at:%H:%M:%S}"


class DeletedOrder(models.Model):
    """The tombstone of a Draft or Error order that was deleted.

    The contract removes such an order entirely (its partner reference becomes free again); this
    row keeps who deleted it, when and why, and what it held (the order as getOrder showed it),
    so that support and finance can still find it, a paymentReference included. Written by
    services.delete_order in the deleting transaction; kept TOMBSTONE_RETENTION_DAYS (400), then
    pruned by housekeeping. Issued → Cancelled keeps its row and writes none.
    """

    id = models.BigAutoField(primary_key=True)
    order_id = models.UUIDField("orderId", unique=True, editable=False)
    # The deleted order's internal key: it numbered buyFromOrderReference (CM-00000042).
    order_pk = models.BigIntegerField("order number")
    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="deleted_orders")
    livemode = models.BooleanField(default=True)
    sell_to_order_reference = models.CharField("sellToOrderReference", max_length=64)
    buy_from_order_reference = models.CharField("buyFromOrderReference", max_length=16)
    payment_reference = models.CharField("paymentReference", max_length=128, null=True, blank=True)
    status = models.CharField("status at deletion", max_length=16, choices=OrderStatus.choices)
    currency = models.CharField(max_length=3)
    total_amount = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    created_at = models.DateTimeField("order created at")
    actor = models.CharField(max_length=150, help_text="partner:<id> or staff:<username>")
    reason = models.TextField(blank=True)
    order_json = models.JSONField("order at deletion", help_text="The order as getOrder showed it.")
    deleted_at = models.DateTimeField(default=timezone.now)

    class Meta:
        app_label = "channel_manager"
        ordering = ["-deleted_at", "-id"]
        indexes = [
            models.Index(fields=["deleted_at"], name="deletedorder_deleted_at"),
            models.Index(fields=["partner", "sell_to_order_reference"], name="deletedorder_partner_ref"),
            models.Index(fields=["payment_reference"], name="deletedorder_payment_ref"),
        ]

    def __str__(self) -> str:
        return f"{self.buy_from_order_reference} (deleted {self.status})"


class OrderRedemption(models.Model):
    """An order whose assets were first used at the gate, and when: the row exists once per
    order, so `ota_cm_order_redeemed` is announced exactly once (channel_manager.orders.receivers).

    Its key is the order's pk without a foreign key constraint, on purpose: inserting it from a
    scan's transaction then takes no lock on the order's row, which a cancellation holds while
    it waits for the scanned asset's lock (a foreign key check would deadlock the two). A unique
    key under INSERT ... ON CONFLICT DO NOTHING settles concurrent scans: one inserts, the
    others find the row."""

    order_pk = models.BigIntegerField(primary_key=True)
    first_redeemed_at = models.DateTimeField(help_text="When the first scan that redeemed an asset of it was made.")
    recorded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        app_label = "channel_manager"

    def __str__(self) -> str:
        return f"order {self.order_pk} first used at {self.first_redeemed_at:%Y-%m-%d %H:%M}"

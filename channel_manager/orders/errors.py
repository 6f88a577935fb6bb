"""The refusals of order services, as domain errors (channel_manager.kernel.errors). The partner
API answers them as problem+json; the admin shows them as messages."""

from __future__ import annotations

import uuid

from channel_manager.kernel.errors import Conflict, DomainError, NotFound
from channel_manager.kernel.problems import register_titles

register_titles({
    "duplicate_order": "Duplicate order",
    "reference_in_use": "External reference already in use",
    "invalid_state": "Operation not allowed in the order's status",
    "already_redeemed": "Already used at the gate",
})


class InvalidState(Conflict):
    """The operation is not allowed in the order's status."""

    code = "invalid_state"

    def __init__(self, *, status: str, operation: str) -> None:
        super().__init__(f"Cannot {operation} an order in status {status}.", extra={"orderStatus": status})
        self.status = status


class DuplicateOrder(DomainError):
    """The partner already has an order with this sellToOrderReference."""

    code = "duplicate_order"

    def __init__(self, *, order_id: uuid.UUID, reference: str) -> None:
        super().__init__(
            f"An order with sellToOrderReference {reference} already exists; use replaceOrder to change it.",
            extra={"orderId": str(order_id)},
        )


class ReferenceInUse(DomainError):
    """External reference numbers already on a live wallet of another order of the partner."""

    code = "reference_in_use"


class OrderNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("No such order.")


class AlreadyRedeemed(Conflict):
    """Tickets or coupons of the order were used at the gate: not refunded through the API."""

    code = "already_redeemed"

    def __init__(self, *, redeemed: int, operation: str = "cancelled") -> None:
        super().__init__(
            f"{redeemed} ticket(s) or coupon(s) of this order were already used at the gate; "
            f"the order cannot be {operation}.",
            extra={"redeemedAssets": redeemed},
        )

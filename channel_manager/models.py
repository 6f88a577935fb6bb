"""The `channel_manager` app's models, as Django loads them: the kernel's partners and keys, and
the orders. Defined in channel_manager.kernel.models and channel_manager.orders.models."""

from channel_manager.kernel.models import ApiKey, IdempotencyRecord, Partner
from channel_manager.octo.models import OctoBooking
from channel_manager.orders.models import (
    DeletedOrder,
    IssuanceSignal,
    Order,
    OrderLine,
    OrderStatusChange,
    OrderWallet,
)

__all__ = [
    "ApiKey", "DeletedOrder", "IdempotencyRecord", "IssuanceSignal", "OctoBooking", "Order", "OrderLine",
    "OrderStatusChange", "OrderWallet", "Partner",
]

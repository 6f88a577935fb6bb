"""Request parsing and the documented shapes of the partner API (camelCase, as the contract)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from channel_manager.kernel.api import ProblemSerializer, StrictCharField
from channel_manager.orders.models import OrderStatus, TestScenario

# \Z, not $: `$` also matches before a trailing newline, which let "ACME-T-1\n" through.
REFERENCE_RE = re.compile(r"^[A-Za-z0-9._:\-]{1,64}\Z")
# C0 and C1 control characters and DEL: a partner's reference never needs one, and they hide in
# the admin, in exports and in logs (a reference is something staff read and search for).
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f]")


class StrictDateField(serializers.DateField):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("input_formats", ["%Y-%m-%d"])
        kwargs.setdefault("format", "%Y-%m-%d")
        super().__init__(**kwargs)

    def to_internal_value(self, value: Any) -> dt.date:
        if not isinstance(value, str):
            self.fail("invalid", format="YYYY-MM-DD")
        return super().to_internal_value(value)


class VisitTimeField(serializers.TimeField):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("input_formats", ["%H:%M"])
        kwargs.setdefault("format", "%H:%M")
        super().__init__(**kwargs)

    def to_internal_value(self, value: Any) -> dt.time:
        if not isinstance(value, str):
            self.fail("invalid", format="HH:MM")
        return super().to_internal_value(value)


class ReferenceField(StrictCharField):
    default_error_messages = {"invalid_reference": "Must be 1–64 characters of A-Z a-z 0-9 . _ : -"}

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 64)
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if not REFERENCE_RE.match(value):
            self.fail("invalid_reference")
        return value


class PartnerReferenceField(StrictCharField):
    """A reference the partner keeps for itself (sellToOrderReference, paymentReference): any
    text but control characters."""

    default_error_messages = {"control_characters": "Must not contain control characters."}

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if CONTROL_CHARACTERS.search(value):
            self.fail("control_characters")
        return value


class QuantityField(serializers.IntegerField):
    default_error_messages = {
        "invalid": "Must be between 1 and 500.",
        "max_value": "Must be between 1 and 500.",
        "min_value": "Must be between 1 and 500.",
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(min_value=1, max_value=500, **kwargs)

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


def _optional_text(max_length: int) -> StrictCharField:
    return StrictCharField(max_length=max_length, required=False, allow_null=True, allow_blank=True)


class CustomerSerializer(serializers.Serializer):
    firstName = _optional_text(100)
    lastName = _optional_text(100)
    email = serializers.EmailField(max_length=254, required=False, allow_null=True, allow_blank=True)
    phone = _optional_text(32)
    country = _optional_text(2)
    language = _optional_text(35)


class ComponentScheduleSerializer(serializers.Serializer):
    itemId = StrictCharField(max_length=64)
    visitDate = StrictDateField()
    visitTime = VisitTimeField(required=False, allow_null=True)


class LineWalletSerializer(serializers.Serializer):
    externalReferenceNumbers = serializers.ListField(
        child=ReferenceField(), required=False, allow_null=True, max_length=500
    )
    componentSchedule = serializers.ListField(
        child=ComponentScheduleSerializer(), required=False, allow_null=True, max_length=50
    )


class LineSerializer(serializers.Serializer):
    itemId = StrictCharField(max_length=64)
    quantity = QuantityField()
    visitDate = StrictDateField()
    visitTime = VisitTimeField(required=False, allow_null=True)
    wallet = LineWalletSerializer(required=False, allow_null=True)


# Request components are named without "Serializer" and get drf-spectacular's "Request" suffix
# (COMPONENT_SPLIT_REQUEST): OrderRequest, not OrderRequestRequest, in every generated client.
@extend_schema_serializer(component_name="Order")
class OrderRequestSerializer(serializers.Serializer):
    """The body of createOrder and replaceOrder."""

    # Identity and references are kept exactly as sent: no whitespace trimming.
    partnerId = StrictCharField(max_length=64, trim_whitespace=False)
    sellToOrderReference = PartnerReferenceField(min_length=1, max_length=64, trim_whitespace=False)
    paymentReference = PartnerReferenceField(
        max_length=128, required=False, allow_null=True, allow_blank=True, trim_whitespace=False
    )
    customer = CustomerSerializer(required=False, allow_null=True)
    items = serializers.ListField(child=LineSerializer(), min_length=1, max_length=50)
    testScenario = serializers.ChoiceField(
        choices=TestScenario.choices, required=False, allow_null=True,
        help_text='Test keys only (a live key gets 400 validation_error): "error" settles the order in Error '
        '(statusMessage names items[0]); "slow" keeps it in flight for about 10 s, then issues it normally.',
    )


@extend_schema_serializer(component_name="ReplaceOrder")
class ReplaceOrderRequestSerializer(OrderRequestSerializer):
    """replaceOrder may repeat the order's identity; when sent it must match."""

    orderId = StrictCharField(max_length=64, required=False)
    buyFromOrderReference = StrictCharField(max_length=64, required=False)


@extend_schema_serializer(component_name="ConfirmOrder")
class ConfirmRequestSerializer(serializers.Serializer):
    paymentReference = PartnerReferenceField(min_length=1, max_length=128)


class FindOrdersQuerySerializer(serializers.Serializer):
    sellToOrderReference = serializers.CharField(max_length=64, required=False)
    status = serializers.ChoiceField(choices=OrderStatus.choices, required=False)
    updatedSince = serializers.DateTimeField(required=False)
    cursor = serializers.CharField(max_length=200, required=False)
    limit = serializers.IntegerField(min_value=1, max_value=100, required=False)


# ---- Response shapes (documentation; the API renders with channel_manager.orders.presenters) -------


class AssetSerializer(serializers.Serializer):
    assetType = serializers.ChoiceField(choices=["ticket", "coupon"])
    assetNumber = serializers.CharField()
    itemId = serializers.CharField()
    name = serializers.CharField()
    visitDate = serializers.DateField()
    visitTime = serializers.CharField(allow_null=True, help_text="HH:MM")
    admits = serializers.IntegerField(required=False, help_text="Tickets only.")
    description = serializers.CharField(required=False, help_text="Coupons only.")
    validUntil = serializers.DateField(required=False, help_text="Coupons only.")
    redeemedAt = serializers.DateTimeField(allow_null=True, help_text="When it was used at the gate; null until then.")


class WalletSerializer(serializers.Serializer):
    walletReferenceNumber = serializers.CharField(allow_null=True)
    externalReferenceNumber = serializers.CharField(allow_null=True)
    assets = AssetSerializer(many=True)
    manifestUrl = serializers.URLField(allow_null=True)


class ComponentScheduleOutSerializer(serializers.Serializer):
    itemId = serializers.CharField()
    visitDate = serializers.DateField()
    visitTime = serializers.CharField(allow_null=True)


class LineWalletOutSerializer(serializers.Serializer):
    externalReferenceNumbers = serializers.ListField(child=serializers.CharField())
    componentSchedule = ComponentScheduleOutSerializer(many=True)


class LineOutSerializer(serializers.Serializer):
    lineNumber = serializers.IntegerField()
    itemId = serializers.CharField()
    itemType = serializers.ChoiceField(choices=["ticket", "group_ticket", "package"])
    quantity = serializers.IntegerField()
    visitDate = serializers.DateField()
    visitTime = serializers.CharField(allow_null=True)
    unitPrice = serializers.DecimalField(max_digits=12, decimal_places=2, allow_null=True)
    lineTotal = serializers.DecimalField(max_digits=14, decimal_places=2, allow_null=True)
    wallet = LineWalletOutSerializer()
    wallets = WalletSerializer(many=True)


class CustomerOutSerializer(serializers.Serializer):
    firstName = serializers.CharField(allow_null=True)
    lastName = serializers.CharField(allow_null=True)
    email = serializers.CharField(allow_null=True)
    phone = serializers.CharField(allow_null=True)
    country = serializers.CharField(allow_null=True)
    language = serializers.CharField(allow_null=True)


class OrderSerializer(serializers.Serializer):
    orderId = serializers.UUIDField()
    partnerId = serializers.CharField()
    sellToOrderReference = serializers.CharField()
    buyFromOrderReference = serializers.CharField()
    livemode = serializers.BooleanField(help_text="false for a test order (made with a test key).")
    status = serializers.ChoiceField(choices=OrderStatus.choices)
    statusMessage = serializers.CharField(allow_null=True)
    paymentReference = serializers.CharField(allow_null=True)
    customer = CustomerOutSerializer(allow_null=True)
    currency = serializers.CharField()
    totalAmount = serializers.DecimalField(max_digits=14, decimal_places=2, allow_null=True)
    createdAt = serializers.DateTimeField()
    updatedAt = serializers.DateTimeField()
    holdExpiresAt = serializers.DateTimeField(
        allow_null=True,
        help_text="A Draft order: when its hold on capacity expires (RFC 3339 UTC); it then settles Error "
        "with a statusMessage starting `hold expired`. null when the partnership's holds never expire, "
        "and for every other status.",
    )
    items = LineOutSerializer(many=True)


class OrderPageSerializer(serializers.Serializer):
    results = OrderSerializer(many=True)
    next = serializers.URLField(allow_null=True)


class OrderProblemSerializer(ProblemSerializer):
    """The problem+json of the order operations, with the members some of their codes add."""

    orderId = serializers.UUIDField(required=False, help_text="duplicate_order: the existing order.")
    orderStatus = serializers.CharField(required=False, help_text="invalid_state: the order's status.")
    redeemedAssets = serializers.IntegerField(
        required=False, help_text="already_redeemed: how many tickets or coupons were used at the gate."
    )

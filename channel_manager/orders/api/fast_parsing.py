"""The hot path's body parsing (createOrder, replaceOrder, confirmOrder), without DRF's per-request
set-up of nested serializers (every Serializer instance deep-copies its declared fields).

msgspec checks the body's shape, types, list sizes, number ranges and the lengths of the fields
kept as sent; a short pass then does what the DRF fields do to the rest (trimming, NUL and
surrogate characters, dates and times). It accepts a subset of what the serializers in
`.serializers` accept and then returns exactly their `validated_data`. Whenever it is not sure
it returns None, and `parse` asks the serializer, which also writes the error answer: field
paths, codes and messages stay the serializers' own. tests/test_fast_parsing.py checks with
generated bodies that both agree.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal, NotRequired, TypedDict

import msgspec
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from rest_framework import serializers

from channel_manager.kernel.api import parse_body
from channel_manager.orders.api import serializers as s

# What DRF's CharField validators refuse in any text (ProhibitNullCharacters, ProhibitSurrogates).
BAD_CHARACTERS = re.compile("[\x00\ud800-\udfff]")
# A subset of what strptime's %Y-%m-%d and %H:%M take ("2026-1-5", "9:05" are left to DRF).
DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
TIME_RE = re.compile(r"[0-9]{2}:[0-9]{2}\Z")


# Texts kept exactly as sent (trim_whitespace=False): their lengths are msgspec's to check.
KeptReference = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
KeptPaymentReference = Annotated[str, msgspec.Meta(max_length=128)]
# A reference as ReferenceField takes it (which ends its pattern with `\Z` too).
Reference = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9._:\-]{1,64}\Z")]


class Customer(TypedDict, total=False):
    firstName: str | None
    lastName: str | None
    email: str | None
    phone: str | None
    country: str | None
    language: str | None


class Visit(TypedDict):
    itemId: str
    visitDate: str
    visitTime: NotRequired[str | None]


class LineWallet(TypedDict, total=False):
    externalReferenceNumbers: Annotated[list[Reference], msgspec.Meta(max_length=500)] | None
    componentSchedule: Annotated[list[Visit], msgspec.Meta(max_length=50)] | None


class Line(TypedDict):
    itemId: str
    quantity: Annotated[int, msgspec.Meta(ge=1, le=500)]
    visitDate: str
    visitTime: NotRequired[str | None]
    wallet: NotRequired[LineWallet | None]


class OrderRequest(TypedDict):
    partnerId: KeptReference
    sellToOrderReference: KeptReference
    paymentReference: NotRequired[KeptPaymentReference | None]
    customer: NotRequired[Customer | None]
    items: Annotated[list[Line], msgspec.Meta(min_length=1, max_length=50)]
    testScenario: NotRequired[Literal["error", "slow"] | None]


class ReplaceOrderRequest(OrderRequest):
    orderId: NotRequired[str]
    buyFromOrderReference: NotRequired[str]


class ConfirmRequest(TypedDict):
    paymentReference: str


class Unsure(Exception):
    """The fast path cannot vouch for this value: the serializer decides."""


def _text(value: str, max_length: int, *, blank: bool = False) -> str:
    """A StrictCharField with trim_whitespace (DRF's default): blank after trimming is '' when
    allowed; the length is the trimmed text's."""
    if BAD_CHARACTERS.search(value):
        raise Unsure
    value = value.strip()
    if (not value and not blank) or len(value) > max_length:
        raise Unsure
    return value


def _date(value: str) -> dt.date:
    if not DATE_RE.match(value):
        raise Unsure
    try:
        return dt.date(int(value[:4]), int(value[5:7]), int(value[8:]))
    except ValueError:
        raise Unsure from None


def _time(value: str) -> dt.time:
    if not TIME_RE.match(value):
        raise Unsure
    try:
        return dt.time(int(value[:2]), int(value[3:]))
    except ValueError:
        raise Unsure from None


def _visit(visit: dict[str, Any]) -> None:
    """A line or a component visit, in place: itemId, visitDate and an optional visitTime."""
    visit["itemId"] = _text(visit["itemId"], 64)
    visit["visitDate"] = _date(visit["visitDate"])
    if visit.get("visitTime") is not None:
        visit["visitTime"] = _time(visit["visitTime"])


# CustomerSerializer: every member optional, nullable, blank allowed, trimmed; max lengths.
CUSTOMER_LENGTHS = {"firstName": 100, "lastName": 100, "email": 254, "phone": 32, "country": 2, "language": 35}


def _customer(customer: dict[str, Any]) -> None:
    for key, value in customer.items():
        if value is not None:
            customer[key] = value = _text(value, CUSTOMER_LENGTHS[key], blank=True)
            if key == "email" and value:
                try:
                    validate_email(value)  # what DRF's EmailField runs
                except ValidationError:
                    raise Unsure from None


def _order(data: dict[str, Any]) -> None:
    if BAD_CHARACTERS.search(data["partnerId"]):
        raise Unsure
    for text in (data["sellToOrderReference"], data.get("paymentReference")):
        # PartnerReferenceField refuses control characters as well.
        if text and (BAD_CHARACTERS.search(text) or s.CONTROL_CHARACTERS.search(text)):
            raise Unsure
    if data.get("customer") is not None:
        _customer(data["customer"])
    for line in data["items"]:
        _visit(line)
        wallet = line.get("wallet")
        for visit in (wallet or {}).get("componentSchedule") or ():
            _visit(visit)


def _replace_order(data: dict[str, Any]) -> None:
    _order(data)
    for key in ("orderId", "buyFromOrderReference"):
        if key in data:
            data[key] = _text(data[key], 64)


def _confirm(data: dict[str, Any]) -> None:
    data["paymentReference"] = _text(data["paymentReference"], 128)
    if s.CONTROL_CHARACTERS.search(data["paymentReference"]):  # PartnerReferenceField's refusal
        raise Unsure


# serializer class -> (the msgspec shape, the pass that finishes its values in place)
FAST_PATHS: dict[type[serializers.Serializer], tuple[Any, Callable[[dict[str, Any]], None]]] = {
    s.OrderRequestSerializer: (OrderRequest, _order),
    s.ReplaceOrderRequestSerializer: (ReplaceOrderRequest, _replace_order),
    s.ConfirmRequestSerializer: (ConfirmRequest, _confirm),
}


def fast_parse(serializer_class: type[serializers.Serializer], body: Any) -> dict[str, Any] | None:
    """What `serializer_class(data=body).validated_data` would be, or None when not sure."""
    if not isinstance(body, dict):
        return None
    shape, finish = FAST_PATHS[serializer_class]
    try:
        data = msgspec.convert(body, shape)
        finish(data)
    except (msgspec.ValidationError, Unsure, ValueError):  # ValueError: e.g. msgspec on a lone surrogate
        return None
    return data


def parse(serializer_class: type[serializers.Serializer], body: Any) -> dict[str, Any]:
    """The validated body; any refusal is the serializer's own problem+json answer."""
    data = fast_parse(serializer_class, body)
    if data is None:
        data = parse_body(serializer_class, body)
    return data

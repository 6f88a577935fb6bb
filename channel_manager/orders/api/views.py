"""The partner API: parse, authorize, call one service, render."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from channel_manager.kernel.api import IDEMPOTENCY_HEADER, problem_responses
from channel_manager.kernel.authentication import request_livemode
from channel_manager.kernel.cursors import CURSOR_ERROR, BadCursor, cursor_row_id, decode_cursor, encode_cursor
from channel_manager.kernel.models import Partner
from channel_manager.kernel.problems import Problem, flatten_errors, validation_problem
from channel_manager.orders import selectors, services
from channel_manager.orders.api import fast_parsing
from channel_manager.orders.api import serializers as s
from channel_manager.orders.models import Order
from channel_manager.orders.presenters import order_dict

PAGE_SIZE = 50

# The problems of every write with a body; 409: idempotency_in_progress (a repeat of an
# Idempotency-Key whose first request still runs), whatever else the operation answers.
COMMON_ERRORS = (400, 401, 403, 409, 413, 415, 422, 429)

LOCATION_HEADER = OpenApiParameter(
    "Location", OpenApiTypes.STR, OpenApiParameter.HEADER, response=[202],
    description="The new order's path: /channelManager/{orderId}.",
)


def order_problems(*codes: int) -> dict:
    """The documented problem answers of an order operation (with orderId / orderStatus)."""
    return problem_responses(*codes, serializer=s.OrderProblemSerializer)


# The customer's members, read once (a Serializer instance deep-copies its fields).
CUSTOMER_KEYS = tuple(s.CustomerSerializer().fields)


def order_input_from(data: dict[str, Any]) -> services.OrderInput:
    lines = []
    for line in data["items"]:
        wallet = line.get("wallet") or {}
        refs = wallet.get("externalReferenceNumbers")
        lines.append(
            services.LineInput(
                item_code=line["itemId"],
                quantity=line["quantity"],
                visit_date=line["visitDate"],
                visit_time=line.get("visitTime"),
                external_reference_numbers=tuple(refs) if refs is not None else None,
                component_schedule=tuple(
                    services.ComponentVisit(
                        item_code=v["itemId"], visit_date=v["visitDate"], visit_time=v.get("visitTime")
                    )
                    for v in (wallet.get("componentSchedule") or [])
                ),
            )
        )
    customer = data.get("customer")
    if customer is not None:
        customer = {key: customer.get(key) for key in CUSTOMER_KEYS}
    return services.OrderInput(
        sell_to_order_reference=data["sellToOrderReference"],
        payment_reference=data.get("paymentReference") or None,
        customer=customer,
        lines=tuple(lines),
        test_scenario=data.get("testScenario") or "",
    )


def check_partner(body: Any, partner: Partner) -> None:
    """The body's partnerId must be the key's partner."""
    if isinstance(body, dict) and isinstance(body.get("partnerId"), str) and body["partnerId"] != partner.partner_id:
        raise Problem(403, "partner_mismatch", "The body's partnerId is not the partner of this API key.")


class PartnerAPIView(APIView):
    # URL kwargs are named as the contract names them (orderId), hence the camelCase arguments.
    @property
    def partner(self) -> Partner:
        return self.request.user

    @property
    def livemode(self) -> bool:
        """False under a test key: it sees and makes test orders only (API.md, "Test mode")."""
        return request_livemode(self.request)

    def get_order(self, order_id: str, *, with_contents: bool = False) -> Order:
        order = selectors.get_partner_order(
            partner=self.partner, livemode=self.livemode, order_id=order_id, with_contents=with_contents
        )
        if order is None:
            raise Problem(404, "not_found", "No such order.")
        return order

    def render_order(self, order: Order, status_code: int = 200, headers: dict | None = None) -> Response:
        fresh = selectors.get_partner_order(partner=self.partner, livemode=self.livemode, order_id=str(order.order_id))
        return Response(order_dict(fresh), status=status_code, headers=headers)


class OrderCollectionView(PartnerAPIView):
    @extend_schema(
        operation_id="createOrder",
        summary="Submit an order",
        request=s.OrderRequestSerializer,
        parameters=[IDEMPOTENCY_HEADER, LOCATION_HEADER],
        responses={202: s.OrderSerializer, **order_problems(*COMMON_ERRORS)},
        description="Accepts the order as Submitted and returns at once; issuance runs in the background. "
        "A second submission of the same (partnerId, sellToOrderReference) answers 400 duplicate_order "
        "with the existing orderId.",
    )
    def post(self, request: Request) -> Response:
        body = request.data
        check_partner(body, self.partner)
        data = fast_parsing.parse(s.OrderRequestSerializer, body)
        order = services.create_order(partner=self.partner, order_input=order_input_from(data), livemode=self.livemode)
        # The service leaves the rows it wrote on the order: render them without reading back.
        location = f"/channelManager/{order.order_id}"
        return Response(order_dict(order), status=status.HTTP_202_ACCEPTED, headers={"Location": location})

    @extend_schema(
        operation_id="findOrders",
        summary="Find the partner's orders, newest first",
        parameters=[
            OpenApiParameter("sellToOrderReference", OpenApiTypes.STR),
            OpenApiParameter("status", OpenApiTypes.STR, enum=[c for c, _ in s.OrderStatus.choices]),
            OpenApiParameter("updatedSince", OpenApiTypes.DATETIME, description="RFC 3339"),
            OpenApiParameter("cursor", OpenApiTypes.STR, description="From the previous page's `next`."),
            OpenApiParameter("limit", OpenApiTypes.INT, description=(
                f"Page size, 1–100 (default {PAGE_SIZE}). A page also ends early, after at least one "
                "order, once it holds MAX_WALLETS_PER_PAGE (default 1000) wallets: it may hold fewer "
                "orders than `limit` while `next` is not null. Follow `next` until it is null."
            )),
        ],
        responses={200: s.OrderPageSerializer, **order_problems(400, 401, 403, 429)},
    )
    def get(self, request: Request) -> Response:
        query = s.FindOrdersQuerySerializer(data=request.query_params)
        if not query.is_valid():
            raise validation_problem(flatten_errors(query.errors))
        params = query.validated_data
        limit = params.get("limit", PAGE_SIZE)
        queryset = selectors.find_partner_orders(
            partner=self.partner,
            livemode=self.livemode,
            sell_to_order_reference=params.get("sellToOrderReference"),
            status=params.get("status"),
            updated_since=params.get("updatedSince"),
        )
        if "cursor" in params:
            queryset = queryset.filter(id__lt=decode_order_cursor(params["cursor"]))
        page = selectors.order_page(queryset, limit=limit)  # bounded by orders and by wallets
        next_url = None
        if page.next_after_pk is not None:
            query_params = {k: v for k, v in request.query_params.items() if k != "cursor"}
            query_params["cursor"] = encode_cursor(ORDER_CURSOR, page.next_after_pk)
            next_url = request.build_absolute_uri(request.path) + "?" + urlencode(query_params)
        return Response({"results": [order_dict(o) for o in page.orders], "next": next_url})


ORDER_CURSOR = "o"


def decode_order_cursor(cursor: str) -> int:
    try:
        (pk,) = decode_cursor(cursor, ORDER_CURSOR, 1)
        return cursor_row_id(pk)
    except BadCursor:
        raise validation_problem([CURSOR_ERROR]) from None


class OrderDetailView(PartnerAPIView):
    @extend_schema(
        operation_id="getOrder",
        summary="Get an order",
        responses={200: s.OrderSerializer, **order_problems(401, 403, 404, 429)},
    )
    def get(self, request: Request, orderId: str) -> Response:
        return Response(order_dict(self.get_order(orderId, with_contents=True)))

    @extend_schema(
        operation_id="replaceOrder",
        summary="Replace a Draft or Error order's contents and re-issue it",
        request=s.ReplaceOrderRequestSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses={202: s.OrderSerializer, **order_problems(*COMMON_ERRORS, 404, 409)},
        description="Only in Draft or Error (else 409 invalid_state). Identity fields (orderId, partnerId, "
        "sellToOrderReference, buyFromOrderReference) may be sent but must match. Destroys every wallet "
        "of the order and re-issues. 409 already_redeemed when a ticket or coupon of the order was used "
        "at the gate: used assets are never replaced.",
    )
    def put(self, request: Request, orderId: str) -> Response:
        body = request.data
        check_partner(body, self.partner)
        order = self.get_order(orderId)
        data = fast_parsing.parse(s.ReplaceOrderRequestSerializer, body)
        identity = {
            "orderId": str(order.order_id),
            "sellToOrderReference": order.sell_to_order_reference,
            "buyFromOrderReference": order.buy_from_order_reference,
        }
        mismatched = [
            {"field": field, "message": f"Must be {expected!r}: an order's identity never changes."}
            for field, expected in identity.items()
            if field in data and data[field] != expected
        ]
        if mismatched:
            raise validation_problem(mismatched)
        order = services.replace_order(order=order, order_input=order_input_from(data))
        # As for createOrder: the order as accepted (Submitted), from the rows just written.
        return Response(order_dict(order), status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        operation_id="deleteOrder",
        summary="Cancel an Issued order, or delete a Draft or Error order",
        parameters=[IDEMPOTENCY_HEADER],
        responses={
            200: OpenApiResponse(s.OrderSerializer, description="Issued → Cancelled, or already Cancelled."),
            204: OpenApiResponse(description="Draft or Error order deleted; its partner reference is free."),
            **order_problems(400, 401, 403, 404, 409, 422, 429),
        },
        description="409 invalid_state while the order is in flight; 409 already_redeemed when a ticket or "
        "coupon of the order was used at the gate (used tickets are not refunded through the API).",
    )
    def delete(self, request: Request, orderId: str) -> Response:
        order = self.get_order(orderId)
        kept = services.delete_order(order=order)
        if kept is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return self.render_order(kept)


class OrderConfirmView(PartnerAPIView):
    @extend_schema(
        operation_id="confirmOrder",
        summary="Confirm a Draft order with its paymentReference",
        request=s.ConfirmRequestSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses={200: s.OrderSerializer, **order_problems(*COMMON_ERRORS, 404, 409)},
        examples=[OpenApiExample("confirm", value={"paymentReference": "PAY-77812"}, request_only=True)],
        description="Draft → Issued. On an Issued order a no-op that returns the order unchanged.",
    )
    def post(self, request: Request, orderId: str) -> Response:
        order = self.get_order(orderId)
        data = fast_parsing.parse(s.ConfirmRequestSerializer, request.data)
        order = services.confirm_order(order=order, payment_reference=data["paymentReference"])
        return self.render_order(order)

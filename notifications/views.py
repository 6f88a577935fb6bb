"""The notifications API: parse, call one service or selector, render."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from channel_manager.kernel.api import IDEMPOTENCY_HEADER, parse_body, problem_responses
from channel_manager.kernel.authentication import request_livemode
from channel_manager.kernel.cursors import CURSOR_ERROR, BadCursor
from channel_manager.kernel.formats import rfc3339
from channel_manager.kernel.models import Partner
from channel_manager.kernel.problems import flatten_errors, validation_problem
from notifications import selectors, services
from notifications import serializers as s
from notifications.models import Event, Subscription, event_types

PAGE_SIZE = 50
# The example request subscribes to the first event type the outbox was told of.
EXAMPLE_EVENT_TYPE = next(iter(event_types()), "event_type")


WEBHOOK_DESCRIPTION = """
Each event is POSTed to the subscription's URL as
`{"eventId", "eventType", "createdAt", "livemode", "data": DATA}` with headers
`Content-Type: application/json`, `CM-Event-Id` and
`CM-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>`.
Any 2xx answer within 10 s is delivered; redirects are not followed. Anything else is retried
(after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h) and then marked failed. An endpoint
answering 410 Gone switches the subscription off. Delivery is at least once: deduplicate on
`eventId`, and use listEvents to catch up.
""".replace("DATA", s.SUBJECT["data"])


def subscription_dict(subscription: Subscription, *, with_secret: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "subscriptionId": str(subscription.subscription_id),
        "eventType": subscription.event_type,
        "url": subscription.url,
        "livemode": subscription.livemode,
        "active": subscription.active,
        "disabledReason": services.partner_disabled_reason(subscription.disabled_reason),
        "createdAt": rfc3339(subscription.created_at),
    }
    if with_secret:
        body["secret"] = subscription.secret
    return body


def event_dict(event: Event) -> dict[str, Any]:
    return {
        "eventId": str(event.event_id),
        "eventType": event.event_type,
        "createdAt": rfc3339(event.created_at),
        "livemode": event.livemode,
        s.SUBJECT["field"]: event.subject_id or None,
        "deliveryState": event.delivery_state,
    }


class NotificationsAPIView(APIView):
    @property
    def partner(self) -> Partner:
        return self.request.user

    @property
    def livemode(self) -> bool:
        """False under a test key: it sees and makes test subscriptions and events only."""
        return request_livemode(self.request)


class SubscriptionCollectionView(NotificationsAPIView):
    @extend_schema(
        operation_id="createSubscription",
        summary="Subscribe a webhook URL to an event type",
        request=s.SubscriptionCreateSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses={201: s.CreatedSubscriptionSerializer, **problem_responses(400, 401, 403, 409, 413, 415, 422, 429)},
        examples=[
            OpenApiExample(
                "subscribe",
                value={"eventType": EXAMPLE_EVENT_TYPE, "url": "https://hooks.example.com/channel-manager"},
                request_only=True,
            )
        ],
        description="The answer carries the signing `secret`, shown only here. An unknown eventType or a URL "
        "that may not receive webhooks answers 400 validation_error. A subscription made with a test key "
        "(`livemode` false) receives test events only; one made with a live key, live events only.\n"
        + WEBHOOK_DESCRIPTION,
    )
    def post(self, request: Request) -> Response:
        data = parse_body(s.SubscriptionCreateSerializer, request.data)
        subscription = services.create_subscription(
            partner=self.partner, event_type=data["eventType"], url=data["url"], livemode=self.livemode
        )
        return Response(
            subscription_dict(subscription, with_secret=True),
            status=status.HTTP_201_CREATED,
            headers={"Location": f"/notifications/subscriptions/{subscription.subscription_id}"},
        )

    @extend_schema(
        operation_id="listSubscriptions",
        summary="List the partner's subscriptions, newest first",
        responses={200: s.SubscriptionListSerializer, **problem_responses(401, 403, 429)},
        description="Secrets are not shown again.",
    )
    def get(self, request: Request) -> Response:
        subscriptions = selectors.partner_subscriptions(partner=self.partner, livemode=self.livemode)
        return Response({"results": [subscription_dict(sub) for sub in subscriptions]})


class SubscriptionDetailView(NotificationsAPIView):
    # The URL kwarg is named as the contract names it, hence the camelCase argument.
    @extend_schema(
        operation_id="deleteSubscription",
        summary="Delete a subscription",
        parameters=[IDEMPOTENCY_HEADER],
        responses={
            204: OpenApiResponse(description="Deleted: nothing more is sent to it."),
            **problem_responses(400, 401, 403, 404, 409, 422, 429),
        },
    )
    def delete(self, request: Request, subscriptionId: str) -> Response:
        services.delete_subscription(partner=self.partner, subscription_id=subscriptionId, livemode=self.livemode)
        return Response(status=status.HTTP_204_NO_CONTENT)


class EventCollectionView(NotificationsAPIView):
    @extend_schema(
        operation_id="listEvents",
        summary="List the partner's events of the last 30 days, oldest first",
        parameters=[
            OpenApiParameter("since", OpenApiTypes.DATETIME, description="RFC 3339; events created at or after it."),
            OpenApiParameter("cursor", OpenApiTypes.STR, description="From the previous page's `next`."),
            OpenApiParameter("limit", OpenApiTypes.INT, description=f"Page size, 1–100 (default {PAGE_SIZE})."),
        ],
        responses={200: s.EventPageSerializer, **problem_responses(400, 401, 403, 429)},
        description="So that a partner who missed a delivery can catch up: each event with its deliveryState. "
        "Follow `next` until it is null.",
    )
    def get(self, request: Request) -> Response:
        query = s.ListEventsQuerySerializer(data=request.query_params)
        if not query.is_valid():
            raise validation_problem(flatten_errors(query.errors))
        params = query.validated_data
        after = None
        if "cursor" in params:
            try:
                after = selectors.decode_event_cursor(params["cursor"])
            except BadCursor:
                raise validation_problem([CURSOR_ERROR]) from None
        limit = params.get("limit", PAGE_SIZE)
        page = list(selectors.partner_events(
            partner=self.partner, livemode=self.livemode, since=params.get("since"), after=after
        )[: limit + 1])
        next_url = None
        if len(page) > limit:
            page = page[:limit]
            query_params = {k: v for k, v in request.query_params.items() if k != "cursor"}
            query_params["cursor"] = selectors.encode_event_cursor(page[-1])
            next_url = request.build_absolute_uri(request.path) + "?" + urlencode(query_params)
        return Response({"results": [event_dict(event) for event in page], "next": next_url})

"""The staff back office for orders.

Orders are never edited as raw fields: the change form is read-only and every change goes
through the same services as the partner API (re-issue → replace_order, confirm → confirm_order,
delete → delete_order), recorded in the order's history as "staff:<username>" and in the admin
log. Each action has a confirmation step. Finance exports live here too (a view on the Order
admin, see channel_manager.orders.exports).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.filters import DateFieldListFilter
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ORDER_VAR, ChangeList
from django.core.exceptions import FieldDoesNotExist
from django.db.models import Case, Exists, F, IntegerField, OuterRef, Prefetch, Q, Value, When
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from catalog.selectors import venue_today
from channel_manager.kernel.admin import (
    ReadOnlyAdminMixin,
)
from channel_manager.orders.admin.actions import OrderActionsMixin
from channel_manager.orders.admin.exports import OrderExportMixin
from channel_manager.orders.models import (
    IN_FLIGHT,
    Order,
    OrderLine,
    OrderStatus,
    operation_allowed,
    operation_changes,
    parse_buy_from_reference,
)
from channel_manager.orders.presenters import CUSTOMER_FIELDS
from channel_manager.orders.selectors import parse_order_id
from notifications.models import Event
from wallets.models import Asset, Wallet
from wallets.selectors import manifest_url

# An order in flight untouched this long "needs attention" (issuance takes seconds).
LONG_IN_FLIGHT_SECONDS = getattr(settings, "ADMIN_LONG_IN_FLIGHT_SECONDS", 60)


class VisitDateFilter(admin.SimpleListFilter):
    """Orders with a line visiting on the chosen day(s) (the venue's today). Also takes
    ?visit_date=YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD."""

    title = "visit date"
    parameter_name = "visit_date"

    def lookups(self, request, model_admin):
        return [
            ("today", "Today"),
            ("tomorrow", "Tomorrow"),
            ("next7", "Next 7 days"),
            ("next30", "Next 30 days"),
            ("past", "In the past"),
        ]

    def date_range(self) -> tuple[dt.date | None, dt.date | None] | None:
        value = self.value()
        if not value:
            return None
        today = venue_today()
        ranges = {
            "today": (today, today),
            "tomorrow": (today + dt.timedelta(days=1), today + dt.timedelta(days=1)),
            "next7": (today, today + dt.timedelta(days=6)),
            "next30": (today, today + dt.timedelta(days=29)),
            "past": (None, today - dt.timedelta(days=1)),
        }
        if value in ranges:
            return ranges[value]
        start, _, end = value.partition("..")
        try:
            first = dt.date.fromisoformat(start)
            last = dt.date.fromisoformat(end) if end else first
        except ValueError:
            return None
        return first, last

    def queryset(self, request, queryset):
        bounds = self.date_range()
        if bounds is None:
            return queryset
        first, last = bounds
        lines = OrderLine.objects.filter(order=OuterRef("pk"))
        if first is not None:
            lines = lines.filter(visit_date__gte=first)
        if last is not None:
            lines = lines.filter(visit_date__lte=last)
        return queryset.filter(Exists(lines))


class ModeFilter(admin.SimpleListFilter):
    """Live orders by default: test orders (made with a test key) only when asked for."""

    title = "mode"
    parameter_name = "mode"

    def lookups(self, request, model_admin):
        return [("live", "Live"), ("test", "Test"), ("all", "All")]

    def chosen(self) -> str:
        return self.value() if self.value() in ("live", "test", "all") else "live"

    def choices(self, changelist):
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.chosen() == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request, queryset):
        chosen = self.chosen()
        if chosen == "all":
            return queryset
        return queryset.filter(livemode=chosen == "live")


# Test orders and keys are badged wherever staff see them (API.md, "Test mode").
TEST_BADGE = format_html(
    '<strong class="cm-test-badge" style="background: {}; color: #fff; padding: 1px 6px; '
    'border-radius: 3px; font-size: 0.8em">TEST</strong>',
    "#6a1b9a",
)


STATUS_COLOURS = {
    OrderStatus.ERROR: "#ba2121",
    OrderStatus.DRAFT: "#b36b00",
    OrderStatus.ISSUED: "#2e7d32",
    OrderStatus.CANCELLED: "#666",
}


def order_search_q(term: str) -> Q:
    """orderId, sellToOrderReference (contains), buyFromOrderReference (CM-00000042), an
    external or wallet reference number, or an asset number."""
    q = Q(sell_to_order_reference__icontains=term)
    order_uuid = parse_order_id(term)
    if order_uuid is not None:
        q |= Q(order_id=order_uuid)
    pk = parse_buy_from_reference(term)
    if pk is not None:
        q |= Q(pk=pk)
    q |= Q(pk__in=Wallet.objects.filter(wallet_reference_number=term).values("order_link__order_id"))
    q |= Q(pk__in=Wallet.objects.filter(external_reference_number=term).values("order_link__order_id"))
    q |= Q(pk__in=Asset.objects.filter(asset_number=term).values("wallet__order_link__order_id"))
    return q


def _has_related(model, name: str) -> bool:
    try:
        model._meta.get_field(name)
    except FieldDoesNotExist:
        return False
    return True


def order_events(order: Order) -> list[Event]:
    """The notification events about the order, with their deliveries when the outbox keeps
    them: two or three queries."""
    events = Event.objects.filter(subject_id=str(order.order_id)).order_by("created_at", "id")
    if _has_related(Event, "deliveries"):
        delivery_model = Event._meta.get_field("deliveries").related_model
        deliveries = delivery_model.objects.order_by("id")
        if _has_related(delivery_model, "subscription"):
            deliveries = deliveries.select_related("subscription")
        events = events.prefetch_related(Prefetch("deliveries", queryset=deliveries, to_attr="cm_deliveries"))
    return list(events)


@dataclass(frozen=True)
class Disclosure:
    """What of an order's secrets a member of staff may see on its page. Ticket numbers admit
    people at the gate, a manifest URL is the customer's tickets, a webhook URL is the partner's
    endpoint: each only with the view permission of what it belongs to (Support has the first
    two; Finance none)."""

    asset_numbers: bool = False
    manifest_urls: bool = False
    webhook_urls: bool = False

    @classmethod
    def for_user(cls, user) -> Disclosure:
        return cls(
            asset_numbers=user.has_perm("wallets.view_asset"),
            manifest_urls=user.has_perm("wallets.view_wallet"),
            webhook_urls=user.has_perm("notifications.view_subscription"),
        )


def order_sections(order: Order, *, shown: Disclosure) -> dict[str, Any]:
    """Everything the order page shows below its header, in a fixed number of queries: lines,
    wallets (live first) with their assets, the status history and the notification events;
    ticket numbers, manifest URLs and webhook URLs only as far as `shown` allows."""
    lines = list(order.lines.order_by("line_number"))
    line_numbers = {line.pk: line.line_number for line in lines}
    wallets = list(
        Wallet.objects.filter(order_link__order=order)
        .annotate(
            destroyed=Case(When(destroyed_at__isnull=True, then=Value(0)), default=Value(1)),
            line_pk=F("order_link__line_id"),
        )
        .order_by("destroyed", "line_pk", "position", "id")
        # With the device that redeemed each asset at the gate: a join, not a query per asset.
        .prefetch_related(Prefetch("assets", queryset=Asset.objects.select_related("redeemed_by")
                                   .order_by("position", "id")))
    )
    redeemed = 0
    for wallet in wallets:
        wallet.line_number = line_numbers.get(wallet.line_pk)
        redeemed += sum(1 for asset in wallet.assets.all() if asset.redeemed_at is not None)
        live = wallet.destroyed_at is None and wallet.manifest_token
        wallet.manifest = manifest_url(wallet.manifest_token) if live and shown.manifest_urls else None
    return {
        "cm_lines": lines,
        "cm_wallets": wallets,
        "cm_redeemed": redeemed,
        "cm_history": list(order.status_changes.order_by("at", "id")),
        "cm_events": order_events(order),
        "cm_event_admin": _event_admin_available(),
        "cm_shown": shown,
    }


def _event_admin_available() -> bool:
    try:
        reverse("admin:notifications_event_changelist")
    except NoReverseMatch:
        return False
    return True


class OrderChangeList(ChangeList):
    def get_ordering_field_columns(self):
        # The default ordering (attention first) is no column's: mark none as sorted.
        if ORDER_VAR not in self.params:
            return {}
        return super().get_ordering_field_columns()


@admin.register(Order)
class OrderAdmin(OrderActionsMixin, OrderExportMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "buy_from_reference", "sell_to_order_reference", "partner", "status_badge", "message_excerpt",
        "total_amount", "currency", "created_at", "updated_at",
    ]
    list_display_links = ["buy_from_reference", "sell_to_order_reference"]
    list_filter = [ModeFilter, "status", "partner", VisitDateFilter, ("created_at", DateFieldListFilter)]
    list_select_related = ["partner"]
    # get_search_results does the searching; a field here makes the admin show the search box.
    search_fields = ["sell_to_order_reference"]
    search_help_text = (
        "orderId, sellToOrderReference, buyFromOrderReference (CM-00000042), "
        "external reference number or asset number"
    )
    list_per_page = 50
    actions = ["reissue_orders", "confirm_orders", "delete_orders"]
    fieldsets = [
        (None, {"fields": [
            "buy_from_reference", "order_id", "partner", "sell_to_order_reference", "status_badge", "status_message",
        ]}),
        ("Payment and customer", {"fields": ["payment_reference", "customer_display", "currency", "total_amount"]}),
        ("Dates", {"fields": ["created_at", "updated_at", "issued_at", "cancelled_at", "issuance_attempts"]}),
        ("Test mode", {"fields": ["livemode", "test_scenario"]}),
    ]
    readonly_fields = [
        "buy_from_reference", "order_id", "partner", "sell_to_order_reference", "status_badge", "status_message",
        "payment_reference", "customer_display", "currency", "total_amount", "created_at", "updated_at",
        "issued_at", "cancelled_at", "issuance_attempts", "livemode", "test_scenario",
    ]

    # -- permissions: read-only form; changes only through the actions --------------------------

    def has_reissue_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("channel_manager.change_order")

    def has_confirm_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("channel_manager.change_order")

    def has_remove_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("channel_manager.delete_order")

    # -- list --------------------------------------------------------------------------------

    def get_queryset(self, request):
        """Annotated for the default ordering: Error first, then orders long in flight (oldest
        update first), then everything else newest first."""
        stuck_before = timezone.now() - dt.timedelta(seconds=LONG_IN_FLIGHT_SECONDS)
        return (
            super()
            .get_queryset(request)
            .select_related("partner")
            .annotate(
                attention=Case(
                    When(status=OrderStatus.ERROR, then=Value(0)),
                    When(status__in=list(IN_FLIGHT), updated_at__lt=stuck_before, then=Value(1)),
                    default=Value(2),
                    output_field=IntegerField(),
                )
            )
            .annotate(stuck_since=Case(When(attention=1, then=F("updated_at")), default=None))
        )

    def get_changelist(self, request, **kwargs):
        return OrderChangeList

    def get_ordering(self, request):
        return [F("attention").asc(), F("stuck_since").asc(nulls_last=True), F("id").desc()]

    def get_search_results(self, request, queryset, search_term):
        term = (search_term or "").strip()
        if not term:
            return queryset, False
        return queryset.filter(order_search_q(term)), False

    @admin.display(description="buyFromOrderReference", ordering="id")
    def buy_from_reference(self, order: Order) -> str:
        return order.buy_from_order_reference

    @admin.display(description="status", ordering="status")
    def status_badge(self, order: Order) -> str:
        colour = STATUS_COLOURS.get(order.status, "#205067")
        badge = format_html('<strong class="cm-status" style="color: {}">{}</strong>', colour, order.status)
        return badge if order.livemode else format_html("{} {}", TEST_BADGE, badge)

    @admin.display(description="statusMessage")
    def message_excerpt(self, order: Order) -> str:
        message = order.status_message or ""
        return message if len(message) <= 80 else message[:79] + "…"

    @admin.display(description="customer")
    def customer_display(self, order: Order) -> str:
        customer = order.customer or {}
        shown = [(key, customer[key]) for key in CUSTOMER_FIELDS if customer.get(key) not in (None, "")]
        if not shown:
            return "—"
        return format_html_join(", ", "{}: {}", shown)

    # -- the order page ----------------------------------------------------------------------

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("export/", wrap(self.export_view), name="channel_manager_order_export"),
            path("<path:object_id>/reissue/", wrap(self.reissue_view), name="channel_manager_order_reissue"),
            path("<path:object_id>/confirm-order/", wrap(self.confirm_view), name="channel_manager_order_confirm"),
            path("<path:object_id>/delete-order/", wrap(self.delete_order_view), name="channel_manager_order_remove"),
            *super().get_urls(),
        ]

    def order_tools(self, request, order: Order) -> list[tuple[str, str]]:
        tools = []
        if operation_allowed("replace", order.status) and self.has_reissue_permission(request, order):
            tools.append(("Re-issue…", reverse("admin:channel_manager_order_reissue", args=[order.pk])))
        if operation_changes("confirm", order.status) and self.has_confirm_permission(request, order):
            tools.append(("Confirm…", reverse("admin:channel_manager_order_confirm", args=[order.pk])))
        if operation_changes("delete", order.status) and self.has_remove_permission(request, order):
            label = "Cancel…" if order.status == OrderStatus.ISSUED else "Delete…"
            tools.append((label, reverse("admin:channel_manager_order_remove", args=[order.pk])))
        return tools

    def change_view(self, request, object_id, form_url="", extra_context=None):
        order = self.get_object(request, unquote(object_id))
        extra_context = dict(extra_context or {})
        if order is not None:
            extra_context.update(order_sections(order, shown=Disclosure.for_user(request.user)))
            extra_context["cm_object_tools"] = self.order_tools(request, order)
        return super().change_view(request, object_id, form_url, extra_context)

    def changelist_view(self, request, extra_context=None):
        extra_context = dict(extra_context or {})
        if self.has_export_permission(request):
            extra_context["cm_export_url"] = reverse("admin:channel_manager_order_export")
        return super().changelist_view(request, extra_context)

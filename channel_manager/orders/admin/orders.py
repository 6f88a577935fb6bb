"""The staff back office for orders.

Orders are never edited as raw fields: the change form is read-only and every change goes
through the same services as the partner API (re-issue → replace_order, confirm → confirm_order,
delete → delete_order), recorded in the order's history as "staff:<username>" and in the admin
log. Each action has a confirmation step. Finance exports live here too (a view on the Order
admin, see channel_manager.orders.exports).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.filters import DateFieldListFilter
from django.contrib.admin.models import CHANGE, DELETION
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ORDER_VAR, ChangeList
from django.core.exceptions import FieldDoesNotExist, PermissionDenied
from django.db import transaction
from django.db.models import Case, Exists, F, IntegerField, OuterRef, Prefetch, Q, Value, When
from django.http import Http404, HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from catalog.selectors import venue_today
from channel_manager.kernel.admin import (
    OBJECT_ACTION_TEMPLATE,
    ReadOnlyAdminMixin,
    admin_url,
    confirmation_page,
    log_action,
    staff_actor,
)
from channel_manager.kernel.errors import DomainError, ValidationFailed
from channel_manager.orders import services
from channel_manager.orders.admin.exports import OrderExportMixin
from channel_manager.orders.admin.forms import (
    ConfirmForm,
    DeleteForm,
    ReissueForm,
    same_content_input,
)
from channel_manager.orders.models import (
    IN_FLIGHT,
    Order,
    OrderLine,
    OrderStatus,
    is_no_op,
    operation_allowed,
    operation_changes,
    parse_buy_from_reference,
)
from channel_manager.orders.presenters import CUSTOMER_FIELDS
from channel_manager.orders.selectors import parse_order_id
from notifications.models import Event
from wallets.models import Asset, Wallet
from wallets.selectors import manifest_url

EXPORT_PERMISSION = "channel_manager.export_orders"
VIEW_API_KEYS = "channel_manager.view_apikey"

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


def order_sections(order: Order) -> dict[str, Any]:
    """Everything the order page shows below its header, in a fixed number of queries: lines,
    wallets (live first) with their assets, the status history and the notification events."""
    lines = list(order.lines.order_by("line_number"))
    line_numbers = {line.pk: line.line_number for line in lines}
    wallets = list(
        Wallet.objects.filter(order_link__order=order)
        .annotate(
            destroyed=Case(When(destroyed_at__isnull=True, then=Value(0)), default=Value(1)),
            line_pk=F("order_link__line_id"),
        )
        .order_by("destroyed", "line_pk", "position", "id")
        .prefetch_related(Prefetch("assets", queryset=Asset.objects.order_by("position", "id")))
    )
    for wallet in wallets:
        wallet.line_number = line_numbers.get(wallet.line_pk)
        live = wallet.destroyed_at is None and wallet.manifest_token
        wallet.manifest = manifest_url(wallet.manifest_token) if live else None
    return {
        "cm_lines": lines,
        "cm_wallets": wallets,
        "cm_history": list(order.status_changes.order_by("at", "id")),
        "cm_events": order_events(order),
        "cm_event_admin": _event_admin_available(),
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
class OrderAdmin(OrderExportMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "buy_from_reference", "sell_to_order_reference", "partner", "status_badge", "message_excerpt",
        "total_amount", "currency", "created_at", "updated_at",
    ]
    list_display_links = ["buy_from_reference", "sell_to_order_reference"]
    list_filter = ["status", "partner", VisitDateFilter, ("created_at", DateFieldListFilter)]
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
    ]
    readonly_fields = [
        "buy_from_reference", "order_id", "partner", "sell_to_order_reference", "status_badge", "status_message",
        "payment_reference", "customer_display", "currency", "total_amount", "created_at", "updated_at",
        "issued_at", "cancelled_at", "issuance_attempts",
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
        return format_html('<strong class="cm-status" style="color: {}">{}</strong>', colour, order.status)

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
            extra_context.update(order_sections(order))
            extra_context["cm_object_tools"] = self.order_tools(request, order)
        return super().change_view(request, object_id, form_url, extra_context)

    def changelist_view(self, request, extra_context=None):
        extra_context = dict(extra_context or {})
        if self.has_export_permission(request):
            extra_context["cm_export_url"] = reverse("admin:channel_manager_order_export")
        return super().changelist_view(request, extra_context)

    def _order_or_404(self, request, object_id) -> Order:
        order = self.get_object(request, unquote(object_id))
        if order is None:
            raise Http404("No such order.")
        return order

    def _action_page(self, request, order: Order, **context: Any) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": order,
            "cancel_url": admin_url(order),
            **context,
        }
        return TemplateResponse(request, OBJECT_ACTION_TEMPLATE, context)

    def _refuse(self, request, order: Order, operation: str) -> HttpResponseRedirect:
        self.message_user(request, f"Cannot {operation} an order in status {order.status}.", messages.ERROR)
        return HttpResponseRedirect(admin_url(order))

    def reissue_view(self, request, object_id):
        """Re-issue a Draft or Error order with its content as it is, or corrected: the form
        holds the items in the contract's request format; services.replace_order does it."""
        order = self._order_or_404(request, object_id)
        if not self.has_reissue_permission(request, order):
            raise PermissionDenied
        if not operation_allowed("replace", order.status):
            return self._refuse(request, order, "re-issue")
        form = ReissueForm(request.POST or None, order=order)
        if request.method == "POST" and form.is_valid():
            try:
                services.replace_order(order=order, order_input=form.order_input, actor=staff_actor(request))
            except DomainError as error:
                form.add_problem(error)
            else:
                log_action(request, order, CHANGE, "Re-issued (replace_order).")
                self.message_user(
                    request, f"{order.buy_from_order_reference} re-issued: it is Submitted and issues again.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(admin_url(order))
        return self._action_page(
            request, order, form=form, title=f"Re-issue {order.buy_from_order_reference}",
            intro="Destroys the order's wallets (freeing their capacity and references) and issues it again "
            "with the items below, exactly as the partner's replaceOrder would.",
            status_message=order.status_message, submit_label="Re-issue",
        )

    def confirm_view(self, request, object_id):
        order = self._order_or_404(request, object_id)
        if not self.has_confirm_permission(request, order):
            raise PermissionDenied
        if not operation_changes("confirm", order.status):
            return self._refuse(request, order, "confirm")
        form = ConfirmForm(request.POST or None, initial={"payment_reference": order.payment_reference or ""})
        if request.method == "POST" and form.is_valid():
            try:
                services.confirm_order(
                    order=order, payment_reference=form.cleaned_data["payment_reference"], actor=staff_actor(request)
                )
            except DomainError as error:
                form.add_problem(error)
            else:
                log_action(request, order, CHANGE, "Confirmed (confirm_order).")
                self.message_user(request, f"{order.buy_from_order_reference} confirmed: Issued.", messages.SUCCESS)
                return HttpResponseRedirect(admin_url(order))
        return self._action_page(
            request, order, form=form, title=f"Confirm {order.buy_from_order_reference}",
            intro="Draft → Issued with the partner's paymentReference: its wallets become valid.",
            submit_label="Confirm",
        )

    def delete_order_view(self, request, object_id):
        order = self._order_or_404(request, object_id)
        if not self.has_remove_permission(request, order):
            raise PermissionDenied
        if not operation_changes("delete", order.status):
            return self._refuse(request, order, "delete")
        form = DeleteForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                kept = remove_order(request, order, form.cleaned_data["reason"])
            except DomainError as error:
                form.add_problem(error)
            else:
                if kept is None:
                    self.message_user(request, f"{order.buy_from_order_reference} deleted.", messages.SUCCESS)
                    return HttpResponseRedirect(reverse("admin:channel_manager_order_changelist"))
                self.message_user(request, f"{order.buy_from_order_reference} cancelled.", messages.SUCCESS)
                return HttpResponseRedirect(admin_url(order))
        if order.status == OrderStatus.ISSUED:
            intro = ("The order becomes Cancelled: its wallets are destroyed (their manifests stop working, their "
                     "capacity is freed); the order stays for the record.")
            submit = "Cancel the order"
        else:
            intro = ("The order is removed entirely, with its wallets and history (the reason stays in the admin "
                     "log); its partner reference becomes free again.")
            submit = "Delete the order"
        return self._action_page(
            request, order, form=form, title=f"Delete {order.buy_from_order_reference}?", intro=intro,
            submit_label=submit, danger=True,
        )

    # -- changelist actions --------------------------------------------------------------------

    @admin.action(description="Re-issue the selected Draft/Error orders…", permissions=["reissue"])
    def reissue_orders(self, request, queryset):
        orders = list(queryset.select_related("partner").prefetch_related("lines"))
        if len(orders) == 1 and request.POST.get("post") != "yes":
            # One order: the page where its content can also be corrected.
            return HttpResponseRedirect(reverse("admin:channel_manager_order_reissue", args=[orders[0].pk]))
        if request.POST.get("post") != "yes":
            return confirmation_page(
                self, request, queryset=orders, action="reissue_orders",
                title="Re-issue these orders with their content unchanged?",
                intro="Each Draft or Error order is replaced with its own content and issued again; orders in "
                "other statuses are skipped.",
                submit_label="Yes, re-issue", rows=_eligibility(orders, "replace"),
            )
        done, failed = 0, []
        for order in orders:
            if not operation_allowed("replace", order.status):
                failed.append(f"{order.buy_from_order_reference}: cannot re-issue in status {order.status}")
                continue
            order_input, errors = same_content_input(order)
            try:
                if errors:
                    raise ValidationFailed(errors)
                services.replace_order(order=order, order_input=order_input, actor=staff_actor(request))
            except DomainError as error:
                failed.append(f"{order.buy_from_order_reference}: {'; '.join(error.messages())}")
                continue
            log_action(request, order, CHANGE, "Re-issued unchanged (replace_order).")
            done += 1
        if done:
            self.message_user(request, f"{done} order(s) re-issued.", messages.SUCCESS)
        for failure in failed:
            self.message_user(request, failure, messages.ERROR)
        return None

    @admin.action(description="Confirm the selected Draft order…", permissions=["confirm"])
    def confirm_orders(self, request, queryset):
        orders = list(queryset[:2])
        if len(orders) != 1:
            self.message_user(request, "Select exactly one Draft order to confirm.", messages.WARNING)
            return None
        return HttpResponseRedirect(reverse("admin:channel_manager_order_confirm", args=[orders[0].pk]))

    @admin.action(description="Delete / cancel the selected orders…", permissions=["remove"])
    def delete_orders(self, request, queryset):
        orders = list(queryset.select_related("partner"))
        form = DeleteForm(request.POST if request.POST.get("post") == "yes" else None)
        if not (form.is_bound and form.is_valid()):
            return confirmation_page(
                self, request, queryset=orders, action="delete_orders", form=form,
                title="Delete or cancel these orders?",
                intro="Issued orders become Cancelled (wallets destroyed, order kept); Draft and Error orders are "
                "removed entirely. Orders in flight are refused; Cancelled ones stay as they are.",
                submit_label="Yes, delete / cancel", rows=_eligibility(orders, "delete"),
            )
        reason = form.cleaned_data["reason"]
        deleted = cancelled = 0
        for order in orders:
            if is_no_op("delete", order.status):
                continue
            try:
                kept = remove_order(request, order, reason)
            except DomainError as error:
                self.message_user(
                    request, f"{order.buy_from_order_reference}: {'; '.join(error.messages())}", messages.ERROR
                )
                continue
            if kept is None:
                deleted += 1
            else:
                cancelled += 1
        self.message_user(request, f"{deleted} order(s) deleted, {cancelled} cancelled.", messages.SUCCESS)
        return None


def _eligibility(orders: list[Order], operation: str) -> list[dict[str, Any]]:
    return [
        {"order": order, "allowed": operation_allowed(operation, order.status) and order.status not in IN_FLIGHT}
        for order in orders
    ]


def remove_order(request: HttpRequest, order: Order, reason: str) -> Order | None:
    """services.delete_order with the staff member as actor and the reason in the history
    (Issued → Cancelled) and in the admin log (which is all that remains of a deleted order)."""
    with transaction.atomic():
        kept = services.delete_order(order=order, actor=staff_actor(request), reason=reason)
        if kept is None:
            log_action(request, order, DELETION, f"Deleted ({order.status}): {reason}")
        else:
            log_action(request, kept, CHANGE, f"Cancelled: {reason}")
    return kept

"""The order actions of the staff back office: re-issue (replace_order with the same or edited
contents), confirm and delete, one at a time from the order page or in bulk from the list, each
behind a confirmation step and through the same services as the partner API, recorded as
"staff:<username>" in the order's history and in the admin log."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, DELETION
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from channel_manager.kernel.admin import (
    OBJECT_ACTION_TEMPLATE,
    admin_url,
    confirmation_page,
    log_action,
    staff_actor,
)
from channel_manager.kernel.errors import DomainError, ValidationFailed
from channel_manager.orders import services
from channel_manager.orders.admin.forms import (
    ConfirmForm,
    DeleteForm,
    ReissueForm,
    same_content_input,
)
from channel_manager.orders.models import (
    IN_FLIGHT,
    Order,
    OrderStatus,
    is_no_op,
    operation_allowed,
    operation_changes,
)


class OrderActionsMixin:
    """The action views and changelist actions of the Order admin."""

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
    (Issued → Cancelled) or the deleted order's tombstone (Draft, Error), and in the admin log."""
    with transaction.atomic():
        kept = services.delete_order(order=order, actor=staff_actor(request), reason=reason)
        if kept is None:
            log_action(request, order, DELETION, f"Deleted ({order.status}): {reason}")
        else:
            log_action(request, kept, CHANGE, f"Cancelled: {reason}")
    return kept

"""Staff views of the outbox: subscriptions, events with their deliveries, delivery attempts,
and "Redeliver now"."""

from __future__ import annotations

import json

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db import transaction
from django.utils.html import format_html

from channel_manager.kernel.admin import ReadOnlyAdminMixin, staff_actor
from channel_manager.kernel.errors import DomainError
from notifications import delivery, services
from notifications.models import Delivery, DeliveryAttempt, Event, Subscription

# The service's field names (the partner API's) -> the admin form's.
FORM_FIELDS = {"eventType": "event_type", "url": "url", "": None}


def can_redeliver(request) -> bool:
    return request.user.has_perm("notifications.change_delivery")


def can_see_webhook_urls(request) -> bool:
    """A subscription's URL is the partner's endpoint: shown with the permission to view
    subscriptions only (elsewhere a subscription is named by its id)."""
    return request.user.has_perm("notifications.view_subscription")


def can_see_event_bodies(request) -> bool:
    """An event's body is what the publishing app put in it (an order with its ticket numbers
    and manifest URLs): shown with the permissions it names in NOTIFICATION_BODY_PERMISSIONS."""
    return request.user.has_perms(getattr(settings, "NOTIFICATION_BODY_PERMISSIONS", []))


def without_webhook_urls(names, request) -> list:
    """`names` (fields, columns, search fields) with the subscription, which shows its URL,
    swapped for its id when the user may not see webhook URLs."""
    if can_see_webhook_urls(request):
        return list(names)
    swapped = [("subscription_ref" if name == "subscription" else name) for name in names]
    return [name for name in swapped if "subscription__url" not in name]


class SubscriptionRefMixin:
    @admin.display(description="subscription")
    def subscription_ref(self, obj) -> str:
        subscription = obj.subscription
        return f"{subscription.partner_id} {subscription.event_type} {subscription.subscription_id}"


def add_service_error(form: forms.Form, error: DomainError) -> None:
    """Show a service's refusal on the form, on the field it names where the form has it."""
    for problem in error.errors or [{"field": "", "message": error.message}]:
        field = FORM_FIELDS.get(problem.get("field", ""))
        form.add_error(field if field in form.fields else None, problem["message"])


class SubscriptionAdminForm(forms.ModelForm):
    """Staff add and change subscriptions under the rules the partner API has: the form asks the
    services first (for a friendly error), and saving goes through them (the guarantee)."""

    url = forms.URLField(max_length=2000, assume_scheme="https")
    switch_off_reason = forms.CharField(
        max_length=200, required=False,
        help_text="When switching it off: why (kept here with who did it; the partner sees only "
        "\"switched off by the venue's staff\").",
    )

    class Meta:
        model = Subscription
        fields = ["partner", "event_type", "url", "active"]

    def clean(self) -> dict:
        data = super().clean()
        if self.errors:
            return data
        try:
            if self.instance.pk is None:
                services.check_subscription(
                    partner_pk=data["partner"].pk, event_type=data["event_type"], url=data["url"]
                )
            elif "url" in self.changed_data:
                services.check_subscription_url(url=data["url"])
        except DomainError as error:
            add_service_error(self, error)
        return data


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    """Every add, change, switch and delete goes through notifications.services: the limit per
    partner, the URL check, generated secrets and soft delete hold for staff as for partners."""

    form = SubscriptionAdminForm
    list_display = ["subscription_id", "partner", "event_type", "url", "active", "breaker", "disabled_reason",
                    "created_at", "deleted_at"]
    list_filter = ["active", "event_type", "partner", ("deleted_at", admin.EmptyFieldListFilter)]
    search_fields = ["url", "subscription_id", "partner__partner_id"]
    list_select_related = ["partner"]
    readonly_fields = ["subscription_id", "secret", "created_at", "disabled_reason", "deleted_at", "breaker"]
    actions = ["switch_off", "switch_on"]
    date_hierarchy = "created_at"

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "partner", "event_type"] if obj else self.readonly_fields

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["partner", "event_type", "url", "active"]
        return ["subscription_id", "partner", "event_type", "url", "active", "switch_off_reason", "disabled_reason",
                "breaker", "secret", "created_at", "deleted_at"]

    @admin.display(description="circuit breaker")
    def breaker(self, obj: Subscription) -> str:
        """closed; open until when (nothing is sent meanwhile; deliveries stay pending); or
        half-open (one probe at a time), with the failed attempts in a row."""
        state = delivery.breaker_state(obj)
        if state == "open":
            until = f"{obj.breaker_open_until:%Y-%m-%d %H:%M:%S}"
            return f"open until {until} ({obj.consecutive_failures} failures in a row)"
        if state == "half-open":
            return f"half-open: probing ({obj.consecutive_failures} failures in a row)"
        return f"closed ({obj.consecutive_failures} failures in a row)" if obj.consecutive_failures else "closed"

    def has_change_permission(self, request, obj=None) -> bool:
        # A deleted subscription is history: viewable, never switched on or edited again.
        return super().has_change_permission(request, obj) and not (obj and obj.deleted_at)

    def has_delete_permission(self, request, obj=None) -> bool:
        return super().has_delete_permission(request, obj) and not (obj and obj.deleted_at)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        with transaction.atomic():
            if not change:
                created = services.create_subscription(
                    partner=data["partner"], event_type=data["event_type"], url=data["url"]
                )
                # The admin goes on with (logs, redirects to) the row the service made.
                for field in Subscription._meta.concrete_fields:
                    setattr(obj, field.attname, getattr(created, field.attname))
                obj._state.adding = False
                if not data.get("active", True):
                    services.switch_off_subscription(subscription_pk=obj.pk, staff=staff_actor(request))
                return
            if "url" in form.changed_data:
                services.change_subscription_url(subscription_pk=obj.pk, url=data["url"])
            if "active" in form.changed_data:
                if data["active"]:
                    services.enable_subscription(subscription_pk=obj.pk)
                else:
                    services.switch_off_subscription(
                        subscription_pk=obj.pk, staff=staff_actor(request), reason=data.get("switch_off_reason", "")
                    )

    def get_deleted_objects(self, objs, request):
        # Deleting is a soft delete (the deliveries and their history stay), so the confirmation
        # lists the subscriptions only and needs no permission on deliveries.
        objs = list(objs)
        return [str(obj) for obj in objs], {Subscription._meta.verbose_name_plural: len(objs)}, set(), []

    def delete_model(self, request, obj):
        services.delete_subscription_as_staff(subscription_pk=obj.pk, staff=staff_actor(request))

    def delete_queryset(self, request, queryset):
        for pk in queryset.values_list("pk", flat=True):
            services.delete_subscription_as_staff(subscription_pk=pk, staff=staff_actor(request))

    @admin.action(description="Switch off (pending deliveries fail)", permissions=["change"])
    def switch_off(self, request, queryset):
        for pk in queryset.filter(active=True, deleted_at__isnull=True).values_list("pk", flat=True):
            services.switch_off_subscription(subscription_pk=pk, staff=staff_actor(request))
        self.message_user(request, "Switched off.", messages.SUCCESS)

    @admin.action(description="Switch on", permissions=["change"])
    def switch_on(self, request, queryset):
        for pk in queryset.values_list("pk", flat=True):
            services.enable_subscription(subscription_pk=pk)
        self.message_user(request, "Switched on (deleted subscriptions stay off).", messages.SUCCESS)


class DeliveryInline(SubscriptionRefMixin, ReadOnlyAdminMixin, admin.TabularInline):
    model = Delivery
    extra = 0
    show_change_link = True
    fields = ["subscription", "state", "attempt_count", "next_attempt_at", "last_status_code", "last_error",
              "delivered_at"]
    readonly_fields = [*fields, "subscription_ref"]

    def get_fields(self, request, obj=None):
        return without_webhook_urls(super().get_fields(request, obj), request)


class DeliveryAttemptInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    fields = ["at", "status_code", "duration_ms", "error", "response_excerpt"]
    readonly_fields = fields


class RedeliverMixin:
    def has_redeliver_permission(self, request) -> bool:
        return can_redeliver(request)


@admin.register(Event)
class EventAdmin(RedeliverMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Events; the body sent only to staff who may see what it holds (can_see_event_bodies)."""

    list_display = ["event_id", "event_type", "partner", "subject_id", "created_at", "delivery_state"]
    list_filter = ["delivery_state", "event_type", "partner"]
    search_fields = ["event_id", "subject_id"]
    list_select_related = ["partner"]
    date_hierarchy = "created_at"
    fields = ["event_id", "event_type", "partner", "subject_id", "created_at", "delivery_state", "pretty_body"]
    readonly_fields = fields
    inlines = [DeliveryInline]
    actions = ["redeliver_now"]

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        return fields if can_see_event_bodies(request) else [f for f in fields if f != "pretty_body"]

    @admin.display(description="Body sent")
    def pretty_body(self, obj: Event) -> str:
        try:
            text = json.dumps(json.loads(services.body_bytes(obj)), indent=2, ensure_ascii=False)
        except ValueError:
            text = obj.body
        return format_html("<pre style='white-space: pre-wrap'>{}</pre>", text)

    @admin.action(description="Redeliver now", permissions=["redeliver"])
    def redeliver_now(self, request, queryset):
        count = services.redeliver_events(event_pks=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{count} deliveries scheduled now (active subscriptions only).", messages.SUCCESS)


@admin.register(Delivery)
class DeliveryAdmin(SubscriptionRefMixin, RedeliverMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["pk", "event", "subscription", "state", "attempt_count", "next_attempt_at", "last_status_code",
                    "delivered_at"]
    list_filter = ["state", "subscription__partner"]
    search_fields = ["event__event_id", "event__subject_id", "subscription__url"]
    list_select_related = ["event", "subscription", "subscription__partner"]
    fields = ["event", "subscription", "state", "attempt_count", "next_attempt_at", "created_at", "last_attempt_at",
              "last_status_code", "last_error", "delivered_at"]
    readonly_fields = [*fields, "subscription_ref"]
    inlines = [DeliveryAttemptInline]
    actions = ["redeliver_now"]

    def get_list_display(self, request):
        return without_webhook_urls(super().get_list_display(request), request)

    def get_fields(self, request, obj=None):
        return without_webhook_urls(super().get_fields(request, obj), request)

    def get_search_fields(self, request):
        return without_webhook_urls(super().get_search_fields(request), request)

    @admin.action(description="Redeliver now", permissions=["redeliver"])
    def redeliver_now(self, request, queryset):
        count = services.redeliver_deliveries(delivery_pks=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{count} deliveries scheduled now (active subscriptions only).", messages.SUCCESS)

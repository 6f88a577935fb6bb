"""Staff views of the outbox: subscriptions, events with their deliveries, delivery attempts,
and "Redeliver now"."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.utils.html import format_html

from channel_manager.kernel.admin import ReadOnlyAdminMixin
from notifications import services
from notifications.models import Delivery, DeliveryAttempt, Event, Subscription
from notifications.signing import new_secret
from notifications.targets import UnsafeTarget, check_target


def can_redeliver(request) -> bool:
    return request.user.has_perm("notifications.change_delivery")


class SubscriptionAdminForm(forms.ModelForm):
    url = forms.URLField(max_length=2000, assume_scheme="https")

    class Meta:
        model = Subscription
        fields = ["partner", "event_type", "url", "active"]

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        try:
            check_target(url)
        except UnsafeTarget as error:
            raise forms.ValidationError(str(error)) from None
        return url


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    form = SubscriptionAdminForm
    list_display = ["subscription_id", "partner", "event_type", "url", "active", "disabled_reason", "created_at"]
    list_filter = ["active", "event_type", "partner"]
    search_fields = ["url", "subscription_id", "partner__partner_id"]
    list_select_related = ["partner"]
    readonly_fields = ["subscription_id", "secret", "created_at", "disabled_reason", "deleted_at"]
    actions = ["switch_off", "switch_on"]
    date_hierarchy = "created_at"

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "partner"] if obj else self.readonly_fields

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["partner", "event_type", "url", "active"]
        return ["subscription_id", "partner", "event_type", "url", "active", "disabled_reason", "secret",
                "created_at", "deleted_at"]

    def save_model(self, request, obj, form, change):
        if not obj.secret:
            obj.secret = new_secret()
        switched_off = change and "active" in form.changed_data and not obj.active
        switched_on = change and "active" in form.changed_data and obj.active
        if switched_on:
            obj.disabled_reason = ""
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            if switched_off:
                services.disable_subscription(subscription_pk=obj.pk, reason=f"switched off by {request.user}")

    def delete_model(self, request, obj):
        self.delete_queryset(request, Subscription.objects.filter(pk=obj.pk))

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            event_pks = list(Delivery.objects.filter(subscription__in=queryset).values_list("event_id", flat=True))
            queryset.delete()
            services.refresh_event_states(event_pks=event_pks)

    @admin.action(description="Switch off (pending deliveries fail)", permissions=["change"])
    def switch_off(self, request, queryset):
        for pk in queryset.filter(active=True).values_list("pk", flat=True):
            services.disable_subscription(subscription_pk=pk, reason=f"switched off by {request.user}")
        self.message_user(request, "Switched off.", messages.SUCCESS)

    @admin.action(description="Switch on", permissions=["change"])
    def switch_on(self, request, queryset):
        for pk in queryset.values_list("pk", flat=True):
            services.enable_subscription(subscription_pk=pk)
        self.message_user(request, "Switched on (deleted subscriptions stay off).", messages.SUCCESS)


class DeliveryInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Delivery
    extra = 0
    show_change_link = True
    fields = ["subscription", "state", "attempt_count", "next_attempt_at", "last_status_code", "last_error",
              "delivered_at"]
    readonly_fields = fields


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
    list_display = ["event_id", "event_type", "partner", "subject_id", "created_at", "delivery_state"]
    list_filter = ["delivery_state", "event_type", "partner"]
    search_fields = ["event_id", "subject_id"]
    list_select_related = ["partner"]
    date_hierarchy = "created_at"
    fields = ["event_id", "event_type", "partner", "subject_id", "created_at", "delivery_state", "pretty_body"]
    readonly_fields = fields
    inlines = [DeliveryInline]
    actions = ["redeliver_now"]

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
class DeliveryAdmin(RedeliverMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["pk", "event", "subscription", "state", "attempt_count", "next_attempt_at", "last_status_code",
                    "delivered_at"]
    list_filter = ["state", "subscription__partner"]
    search_fields = ["event__event_id", "event__subject_id", "subscription__url"]
    list_select_related = ["event", "subscription", "subscription__partner"]
    fields = ["event", "subscription", "state", "attempt_count", "next_attempt_at", "created_at", "last_attempt_at",
              "last_status_code", "last_error", "delivered_at"]
    readonly_fields = fields
    inlines = [DeliveryAttemptInline]
    actions = ["redeliver_now"]

    @admin.action(description="Redeliver now", permissions=["redeliver"])
    def redeliver_now(self, request, queryset):
        count = services.redeliver_deliveries(delivery_pks=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{count} deliveries scheduled now (active subscriptions only).", messages.SUCCESS)

"""The notifications admin goes through notifications.services: staff are held to the rules the
partner API has (the limit per partner, the URL check, soft delete), and the outbox takes its
event types from the settings."""

from __future__ import annotations

import pytest
from django.urls import reverse

from channel_manager.kernel.errors import ValidationFailed
from notifications import services
from notifications.models import Delivery, DeliveryState, Subscription
from tests.factories import SubscriptionFactory
from tests.test_notifications_delivery import ORDER_PROCESSED, publish

pytestmark = pytest.mark.django_db

ADD = reverse("admin:notifications_subscription_add")
CHANGELIST = reverse("admin:notifications_subscription_changelist")


def change_url(subscription: Subscription) -> str:
    return reverse("admin:notifications_subscription_change", args=[subscription.pk])


def change_form(subscription: Subscription, **changes) -> dict:
    data = {"url": subscription.url, "active": "on" if subscription.active else "", "switch_off_reason": ""}
    data.update(changes)
    return {k: v for k, v in data.items() if v != ""}


@pytest.fixture
def dev(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    return settings


def test_staff_cannot_add_a_subscription_beyond_the_partners_limit(admin_client, partner, dev):
    dev.WEBHOOK_MAX_SUBSCRIPTIONS = 20
    SubscriptionFactory.create_batch(20, partner=partner)
    response = admin_client.post(ADD, {
        "partner": partner.pk, "event_type": ORDER_PROCESSED, "url": "http://127.0.0.1:9/hook", "active": "on",
    })
    assert response.status_code == 200
    assert "At most 20 subscriptions per partner" in response.content.decode()
    assert Subscription.objects.filter(partner=partner).count() == 20

    # A soft-deleted one frees a place, as it does for the partner.
    services.delete_subscription_as_staff(subscription_pk=Subscription.objects.first().pk, staff="staff:test")
    response = admin_client.post(ADD, {
        "partner": partner.pk, "event_type": ORDER_PROCESSED, "url": "http://127.0.0.1:9/hook", "active": "on",
    })
    assert response.status_code == 302
    assert Subscription.objects.filter(partner=partner, deleted_at__isnull=True).count() == 20


def test_staff_adding_a_switched_off_subscription_get_it_with_a_secret_and_who_switched_it_off(
    admin_client, partner, dev
):
    response = admin_client.post(ADD, {
        "partner": partner.pk, "event_type": ORDER_PROCESSED, "url": "http://127.0.0.1:9/hook",
    })
    assert response.status_code == 302
    (subscription,) = Subscription.objects.all()
    assert subscription.secret.startswith("whsec_")
    assert not subscription.active and subscription.disabled_reason == "switched off by staff:admin"


def test_an_unsafe_url_is_refused_when_staff_change_a_subscription(admin_client, partner, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    subscription = SubscriptionFactory(partner=partner, url="https://93.184.215.14/cm")

    response = admin_client.post(change_url(subscription), change_form(subscription, url="https://10.0.0.5/cm"))

    assert response.status_code == 200 and "errorlist" in response.content.decode()
    subscription.refresh_from_db()
    assert subscription.url == "https://93.184.215.14/cm"


def test_staff_change_the_url_through_the_check_and_keep_the_secret(admin_client, partner, dev):
    subscription = SubscriptionFactory(partner=partner)
    response = admin_client.post(change_url(subscription), change_form(subscription, url="http://127.0.0.1:8/new"))
    assert response.status_code == 302
    after = Subscription.objects.get(pk=subscription.pk)
    assert after.url == "http://127.0.0.1:8/new" and after.secret == subscription.secret
    assert after.event_type == ORDER_PROCESSED and after.partner == partner


def test_switching_off_in_the_form_fails_pending_deliveries_and_keeps_the_reason(admin_client, partner, dev):
    subscription = SubscriptionFactory(partner=partner)
    event = publish(partner)

    response = admin_client.post(
        change_url(subscription), change_form(subscription, active="", switch_off_reason="endpoint moved")
    )

    assert response.status_code == 302
    subscription.refresh_from_db()
    assert not subscription.active
    assert subscription.disabled_reason == "switched off by staff:admin: endpoint moved"
    assert list(Delivery.objects.values_list("state", flat=True)) == [DeliveryState.FAILED]
    event.refresh_from_db()
    assert event.delivery_state == DeliveryState.FAILED


def test_deleting_in_the_admin_soft_deletes_like_the_partner_api(admin_client, client, partner, dev):
    subscription = SubscriptionFactory(partner=partner)
    publish(partner)
    delete = reverse("admin:notifications_subscription_delete", args=[subscription.pk])
    assert admin_client.get(delete).status_code == 200

    response = admin_client.post(delete, {"post": "yes"})

    assert response.status_code == 302
    subscription.refresh_from_db()  # the row stays, for its delivery history
    assert subscription.deleted_at is not None and not subscription.active
    assert subscription.disabled_reason == "deleted by staff:admin"
    assert list(Delivery.objects.values_list("state", flat=True)) == [DeliveryState.FAILED]
    assert client.get("/notifications/subscriptions").json()["results"] == []
    # History now: it can be looked at, not switched on or edited again.
    assert admin_client.get(change_url(subscription)).status_code == 200
    admin_client.post(CHANGELIST, {"action": "switch_on", "_selected_action": [subscription.pk]})
    assert not Subscription.objects.get(pk=subscription.pk).active
    before = Subscription.objects.get(pk=subscription.pk)
    admin_client.post(change_url(subscription), change_form(subscription, active="on"))
    assert Subscription.objects.get(pk=subscription.pk).active == before.active


def test_the_bulk_delete_action_soft_deletes_too(admin_client, partner, dev):
    subscriptions = SubscriptionFactory.create_batch(2, partner=partner)
    response = admin_client.post(CHANGELIST, {
        "action": "delete_selected", "_selected_action": [s.pk for s in subscriptions], "post": "yes",
    })
    assert response.status_code == 302
    assert Subscription.objects.count() == 2
    assert not Subscription.objects.filter(deleted_at__isnull=True).exists()


def test_the_outbox_takes_its_event_types_from_the_settings(partner, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    settings.NOTIFICATION_EVENT_TYPES = {"ota_cm_wallet_voided": "A wallet was voided"}

    services.create_subscription(partner=partner, event_type="ota_cm_wallet_voided", url="http://127.0.0.1:9/h")
    with pytest.raises(ValidationFailed) as refused:
        services.create_subscription(partner=partner, event_type=ORDER_PROCESSED, url="http://127.0.0.1:9/h")

    assert refused.value.errors == [{"field": "eventType", "message": "Must be one of: ota_cm_wallet_voided."}]


def test_the_partner_never_sees_which_member_of_staff_switched_a_subscription_off(admin_client, client, partner, dev):
    by_form, by_action, gone = SubscriptionFactory.create_batch(3, partner=partner)
    admin_client.post(change_url(by_form), change_form(by_form, active="", switch_off_reason="admin says: moved"))
    admin_client.post(CHANGELIST, {"action": "switch_off", "_selected_action": [by_action.pk]})
    services.disable_subscription(subscription_pk=gone.pk, reason="endpoint answered 410 Gone at 2026-01-01T00:00:00Z")
    # The admin keeps who and why.
    assert Subscription.objects.get(pk=by_form.pk).disabled_reason == "switched off by staff:admin: admin says: moved"
    assert Subscription.objects.get(pk=by_action.pk).disabled_reason == "switched off by staff:admin"
    assert "staff:admin" in admin_client.get(change_url(by_form)).content.decode()

    listed = client.get("/notifications/subscriptions")
    reasons = {item["subscriptionId"]: item["disabledReason"] for item in listed.json()["results"]}
    assert reasons == {
        str(by_form.subscription_id): "switched off by the venue's staff",
        str(by_action.subscription_id): "switched off by the venue's staff",
        str(gone.subscription_id): "endpoint answered 410 Gone at 2026-01-01T00:00:00Z",
    }
    assert "admin" not in listed.content.decode()

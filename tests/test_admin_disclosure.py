"""Least privilege in the admin: ticket numbers (asset numbers), manifest URLs and webhook URLs
show only to staff with the view permission of what they belong to (wallets.view_asset,
wallets.view_wallet, notifications.view_subscription). Finance has none of them; Support has the
first two. Checked on every page that shows them: the order page, the wallets and assets, the
events (their body holds the order) and the deliveries."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from notifications.models import Delivery, Event
from tests.factories import SubscriptionFactory, staff_user, submit_order
from tests.payloads import line, order_body
from wallets.models import Asset, Wallet

pytestmark = pytest.mark.django_db

WEBHOOK_URL = "https://hooks.partner.example/secret-endpoint-7f3a"


@pytest.fixture
def issued(catalog, partner):
    """An Issued order with two wallets, announced to a webhook subscription."""
    SubscriptionFactory(partner=partner, url=WEBHOOK_URL)
    order = submit_order(partner, order_body(items=[line("DAY-ADULT", 2)]))
    assert order.status == "Issued"
    assert Delivery.objects.filter(event__subject_id=str(order.order_id)).exists()
    return order


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def user_with(username: str, *perms: str):
    user = staff_user(username)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return user


def secrets_of(order) -> dict[str, list[str]]:
    wallets = list(Wallet.objects.filter(order_link__order=order))
    return {
        "asset_numbers": list(Asset.objects.filter(wallet__in=wallets).values_list("asset_number", flat=True)),
        "manifest_tokens": [w.manifest_token for w in wallets if w.manifest_token],
        "webhook_urls": [WEBHOOK_URL],
    }


def shown(html: str, order) -> dict[str, bool]:
    return {kind: any(value in html for value in values) for kind, values in secrets_of(order).items()}


def order_page(client: Client, order) -> str:
    response = client.get(reverse("admin:channel_manager_order_change", args=[order.pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_finance_sees_the_order_without_ticket_numbers_manifests_or_webhook_urls(issued):
    secrets = secrets_of(issued)
    assert secrets["asset_numbers"] and secrets["manifest_tokens"]
    html = order_page(login(staff_user("fran", "Finance")), issued)
    assert issued.buy_from_order_reference in html and "DAY-ADULT" in html  # the order itself shows
    assert shown(html, issued) == {"asset_numbers": False, "manifest_tokens": False, "webhook_urls": False}
    assert "number hidden" in html


def test_support_sees_ticket_numbers_and_manifests_but_not_webhook_urls(issued):
    html = order_page(login(staff_user("sam", "Support")), issued)
    assert shown(html, issued) == {"asset_numbers": True, "manifest_tokens": True, "webhook_urls": False}
    (subscription_id,) = Delivery.objects.values_list("subscription__subscription_id", flat=True)
    assert str(subscription_id) in html  # the delivery is still named, by the subscription's id


@pytest.mark.parametrize(
    ("perms", "expected"),
    [
        (["wallets.view_asset"], {"asset_numbers": True, "manifest_tokens": False, "webhook_urls": False}),
        (["wallets.view_wallet"], {"asset_numbers": False, "manifest_tokens": True, "webhook_urls": False}),
        (["notifications.view_subscription"], {"asset_numbers": False, "manifest_tokens": False,
                                               "webhook_urls": True}),
    ],
)
def test_each_secret_on_the_order_page_follows_its_own_permission(issued, perms, expected):
    user = user_with("vera", "channel_manager.view_order", *perms)
    assert shown(order_page(login(user), issued), issued) == expected


def test_a_superuser_sees_everything_on_the_order_page(issued, admin_client):
    assert shown(order_page(admin_client, issued), issued) == dict.fromkeys(
        ("asset_numbers", "manifest_tokens", "webhook_urls"), True
    )


def test_the_wallet_page_shows_ticket_numbers_only_with_the_permission_to_view_assets(issued):
    wallet = Wallet.objects.filter(order_link__order=issued).first()
    number = wallet.assets.first().asset_number
    page = reverse("admin:wallets_wallet_change", args=[wallet.pk])
    changelist = reverse("admin:wallets_wallet_changelist")

    wallets_only = login(user_with("wanda", "wallets.view_wallet"))
    assert number not in wallets_only.get(page).content.decode()
    # Nor can a ticket number be tried against the wallet search.
    assert wallets_only.get(changelist, {"q": number}).context["cl"].result_count == 0

    support = login(staff_user("sam", "Support"))
    assert number in support.get(page).content.decode()
    assert support.get(changelist, {"q": number}).context["cl"].result_count == 1
    assert login(staff_user("fran", "Finance")).get(page).status_code == 403


def test_an_events_body_shows_only_to_staff_who_may_see_what_it_holds(issued):
    event = Event.objects.get(subject_id=str(issued.order_id))
    page = reverse("admin:notifications_event_change", args=[event.pk])

    events_only = login(user_with("eve", "notifications.view_event", "notifications.view_delivery"))
    html = events_only.get(page).content.decode()
    assert str(event.event_id) in html
    assert shown(html, issued) == {"asset_numbers": False, "manifest_tokens": False, "webhook_urls": False}

    html = login(staff_user("sam", "Support")).get(page).content.decode()
    assert shown(html, issued)["asset_numbers"] and shown(html, issued)["manifest_tokens"]
    assert not shown(html, issued)["webhook_urls"]


def test_deliveries_name_their_subscription_by_id_without_the_permission_to_view_subscriptions(issued):
    delivery = Delivery.objects.get()
    viewer = login(user_with("dora", "notifications.view_delivery"))
    changelist = reverse("admin:notifications_delivery_changelist")
    listed = viewer.get(changelist).content.decode()
    assert str(delivery.subscription.subscription_id) in listed and WEBHOOK_URL not in listed
    detail = viewer.get(reverse("admin:notifications_delivery_change", args=[delivery.pk])).content.decode()
    assert WEBHOOK_URL not in detail
    # Searching by URL is no way round it.
    assert viewer.get(changelist, {"q": "secret-endpoint"}).context["cl"].result_count == 0

    allowed = login(user_with("otto", "notifications.view_delivery", "notifications.view_subscription"))
    assert WEBHOOK_URL in allowed.get(changelist).content.decode()
    assert allowed.get(changelist, {"q": "secret-endpoint"}).context["cl"].result_count == 1

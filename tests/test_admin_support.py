"""The support back office, through the admin views: the order list (default ordering, search,
filters), the read-only order page, the staff actions (re-issue, confirm, delete) with their
confirmation steps and history, partners and API keys, the catalog, and who may do what."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from catalog.models import Capacity
from catalog.selectors import venue_today
from channel_manager.kernel.authentication import partner_for_key
from channel_manager.kernel.models import ApiKey, Partner
from channel_manager.orders.issuance import issue_order
from channel_manager.orders.models import Order, OrderStatus, OrderStatusChange
from notifications.models import Event, Subscription
from tests.factories import PartnerFactory, staff_user, submit_order
from tests.payloads import line, order_body, visit_date
from wallets.models import Asset, Wallet

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:channel_manager_order_changelist"


def change_url(order: Order) -> str:
    return reverse("admin:channel_manager_order_change", args=[order.pk])


def action_url(order: Order, name: str) -> str:
    return reverse(f"admin:channel_manager_order_{name}", args=[order.pk])


@pytest.fixture
def support_user(db):
    return staff_user("sam", "Support")


@pytest.fixture
def support(support_user) -> Client:
    client = Client()
    client.force_login(support_user)
    return client


def error_order(partner, **overrides) -> Order:
    """Settles in Error: SHOW-EVENING has no 18:00 slot."""
    body = order_body(items=[line("DAY-ADULT", 1), line("SHOW-EVENING", 2, visitTime="18:00")], **overrides)
    order = submit_order(partner, body)
    assert order.status == OrderStatus.ERROR
    return order


def draft_order(partner, **overrides) -> Order:
    order = submit_order(partner, order_body(paymentReference=None, **overrides))
    assert order.status == OrderStatus.DRAFT
    return order


def issued_order(partner, **overrides) -> Order:
    order = submit_order(partner, order_body(**overrides))
    assert order.status == OrderStatus.ISSUED
    return order


def listed(response) -> list[int]:
    assert response.status_code == 200
    return [o.pk for o in response.context["cl"].result_list]


def history(order: Order) -> list[tuple[str, str, str, str]]:
    return list(
        OrderStatusChange.objects.filter(order=order).order_by("at", "id").values_list(
            "from_status", "to_status", "actor", "message"
        )
    )


# ---------------------------------------------------------------------------------------------
# Groups and permissions
# ---------------------------------------------------------------------------------------------


def test_migrate_creates_the_staff_groups_with_only_what_each_needs():
    def perms(name):
        return {
            f"{p.content_type.app_label}.{p.codename}"
            for p in Group.objects.get(name=name).permissions.select_related("content_type")
        }

    support, finance = perms("Support"), perms("Finance")
    assert {"channel_manager.view_order", "channel_manager.change_order", "channel_manager.delete_order",
            "channel_manager.view_partner", "catalog.view_capacity", "wallets.view_wallet"} <= support
    assert finance == {"channel_manager.view_order", "channel_manager.view_partner", "channel_manager.export_orders"}
    for name, granted in (("Support", support), ("Finance", finance)):
        assert not any(p.startswith("django_q.") for p in granted), name
        assert not any(p.endswith("_apikey") for p in granted), name
        assert "channel_manager.add_order" not in granted
    assert "channel_manager.export_orders" not in support
    assert "notifications.view_subscription" not in support  # its page shows the signing secret


def test_the_group_migration_can_run_again_without_duplicates():
    import importlib

    from django.apps import apps

    migration = importlib.import_module("channel_manager.migrations.0003_staff_groups")
    before = {g.name: g.permissions.count() for g in Group.objects.all()}
    migration.create_staff_groups(apps)
    assert {g.name: g.permissions.count() for g in Group.objects.all()} == before


def test_support_cannot_see_api_keys(support, catalog, partner):
    assert support.get(reverse("admin:channel_manager_apikey_changelist")).status_code == 403
    key = ApiKey.objects.get(partner=partner)
    assert support.get(reverse("admin:channel_manager_apikey_change", args=[key.pk])).status_code == 403
    page = support.get(reverse("admin:channel_manager_partner_change", args=[partner.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert partner.partner_id in html
    assert key.prefix not in html and key.digest not in html
    assert "Issue a new API key" not in html
    # Nor can support issue or revoke keys.
    assert support.get(reverse("admin:channel_manager_partner_issue_key", args=[partner.pk])).status_code == 403
    assert support.post(reverse("admin:channel_manager_partner_revoke_key", args=[partner.pk, key.pk])).status_code \
        == 403
    assert ApiKey.objects.get(pk=key.pk).revoked_at is None


def test_support_cannot_create_partners_or_reach_the_task_queue(support):
    assert support.get(reverse("admin:channel_manager_partner_add")).status_code == 403
    assert support.get(reverse("admin:django_q_schedule_changelist")).status_code == 403
    assert support.get(reverse("admin:django_q_ormq_changelist")).status_code == 403
    index = support.get(reverse("admin:index")).content.decode()
    assert "django_q" not in index


def test_orders_cannot_be_added_edited_or_deleted_as_raw_rows(support, admin_client, catalog, partner):
    order = draft_order(partner)
    for client in (support, admin_client):
        assert client.get(reverse("admin:channel_manager_order_add")).status_code == 403
        page = client.get(change_url(order))
        assert page.status_code == 200
        assert 'name="_save"' not in page.content.decode()
        assert client.post(change_url(order), {"status": "Issued"}).status_code == 403
        assert client.post(reverse("admin:channel_manager_order_delete", args=[order.pk]), {"post": "yes"}) \
            .status_code == 403
        actions = dict(client.get(reverse(CHANGELIST)).context["action_form"].fields["action"].choices)
        assert "delete_selected" not in actions
    assert Order.objects.get(pk=order.pk).status == OrderStatus.DRAFT


# ---------------------------------------------------------------------------------------------
# The order list
# ---------------------------------------------------------------------------------------------


def test_the_list_opens_on_errors_then_long_in_flight_then_newest(support, catalog, partner):
    old_issued = issued_order(partner)
    first_error = error_order(partner)
    stuck_long = submit_order(partner, order_body(), settle=False)
    stuck_longer = submit_order(partner, order_body(), settle=False)
    fresh_in_flight = submit_order(partner, order_body(), settle=False)
    second_error = error_order(partner)
    newest_draft = draft_order(partner)
    now = timezone.now()
    Order.objects.filter(pk=stuck_long.pk).update(updated_at=now - dt.timedelta(minutes=10))
    Order.objects.filter(pk=stuck_longer.pk).update(updated_at=now - dt.timedelta(minutes=30))

    assert listed(support.get(reverse(CHANGELIST))) == [
        second_error.pk, first_error.pk,  # Error, newest first
        stuck_longer.pk, stuck_long.pk,  # long in flight, oldest update first
        newest_draft.pk, fresh_in_flight.pk, old_issued.pk,  # the rest, newest first
    ]
    # A column header still sorts as asked.
    assert listed(support.get(reverse(CHANGELIST), {"o": "1"}))[0] == old_issued.pk


def test_the_list_takes_a_fixed_number_of_queries(support, catalog, partner):
    issued_order(partner)

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert support.get(reverse(CHANGELIST)).status_code == 200
        return len(queries)

    few = count()
    other = PartnerFactory(partner_id="other-travel")
    for _ in range(6):
        issued_order(other, partnerId="other-travel")
        error_order(partner)
    assert count() == few


@pytest.fixture
def searchable(catalog, partner):
    target = submit_order(
        partner,
        order_body(sellToOrderReference="ACME-FIND-ME", items=[
            line("DAY-ADULT", 2, wallet={"externalReferenceNumbers": ["EXT-FIND-1", "EXT-FIND-2"]}),
            line("FAMILY-GROUP", 3),
        ]),
    )
    others = [issued_order(partner), draft_order(partner), error_order(partner)]
    return target, others


@pytest.mark.parametrize("key", ["orderId", "sellTo", "sellToPart", "buyFrom", "buyFromLower", "external",
                                 "asset", "wallet"])
def test_search_finds_the_order_by_each_of_its_keys(support, searchable, key):
    target, _ = searchable
    asset = Asset.objects.filter(wallet__order_link__order=target).order_by("id").first()
    minted = Wallet.objects.filter(order_link__order=target, external_reference_number__isnull=True).get()
    assert minted.wallet_reference_number
    term = {
        "orderId": str(target.order_id),
        "sellTo": "ACME-FIND-ME",
        "sellToPart": "find-me",
        "buyFrom": target.buy_from_order_reference,
        "buyFromLower": " " + target.buy_from_order_reference.lower() + " ",
        "external": "EXT-FIND-2",
        "asset": asset.asset_number,
        "wallet": minted.wallet_reference_number,
    }[key]
    assert listed(support.get(reverse(CHANGELIST), {"q": term})) == [target.pk]


def test_search_with_an_unknown_key_finds_nothing(support, searchable):
    assert listed(support.get(reverse(CHANGELIST), {"q": "CM-99999999"})) == []
    assert listed(support.get(reverse(CHANGELIST), {"q": "NO-SUCH-ASSET"})) == []


def test_filters_by_status_partner_visit_date_and_created_date(support, catalog, partner):
    other = PartnerFactory(partner_id="other-travel")
    error = error_order(partner)
    today = venue_today()
    near = issued_order(partner, items=[line("DAY-ADULT", 1, visitDate=(today + dt.timedelta(days=1)).isoformat())])
    far_day = (today + dt.timedelta(days=60)).isoformat()
    far = issued_order(other, partnerId="other-travel", items=[line("DAY-ADULT", 1, visitDate=far_day)])
    Order.objects.filter(pk=far.pk).update(created_at=timezone.now() - dt.timedelta(days=40))
    url = reverse(CHANGELIST)

    assert listed(support.get(url, {"status__exact": "Error"})) == [error.pk]
    assert set(listed(support.get(url, {"partner__id__exact": other.pk}))) == {far.pk}
    assert listed(support.get(url, {"visit_date": "tomorrow"})) == [near.pk]
    assert listed(support.get(url, {"visit_date": far_day})) == [far.pk]
    assert set(listed(support.get(url, {"visit_date": "next7"}))) == {near.pk}
    assert set(listed(support.get(url, {"visit_date": f"{today.isoformat()}..{far_day}"}))) == {
        near.pk, far.pk, error.pk}
    # As the filter's own links put them: aware timestamps.
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    week_ago = str(today - dt.timedelta(days=7))
    tomorrow = str(today + dt.timedelta(days=1))
    recent = listed(support.get(url, {"created_at__gte": week_ago, "created_at__lt": tomorrow}))
    assert set(recent) == {error.pk, near.pk}
    assert listed(support.get(url, {"created_at__lt": week_ago})) == [far.pk]


# ---------------------------------------------------------------------------------------------
# The order page
# ---------------------------------------------------------------------------------------------


def test_the_order_page_shows_the_error_message_first_then_lines_wallets_history_and_events(
    support, catalog, partner
):
    order = error_order(partner)
    html = support.get(change_url(order)).content.decode()
    box = re.search(r'<div class="cm-status-box" id="cm-status-message">(.*?)</div>', html, re.S)
    assert box is not None
    assert "items[1]: SHOW-EVENING has no 18:00 slot" in box.group(1)
    assert html.index("cm-status-message") < html.index('id="cm-lines"')
    for section in ("cm-lines", "cm-wallets", "cm-history", "cm-events"):
        assert f'id="{section}"' in html
    assert "SHOW-EVENING" in html and "partner:acme-travel" in html and "worker" in html
    event = Event.objects.get(subject_id=str(order.order_id))
    assert str(event.event_id) in html
    # Actions offered for an Error order: re-issue and delete, not confirm.
    assert action_url(order, "reissue") in html and action_url(order, "remove") in html
    assert action_url(order, "confirm") not in html


def test_the_order_page_shows_the_deliveries_of_its_events(support, catalog, partner):
    from tests.factories import SubscriptionFactory

    SubscriptionFactory(partner=partner, url="https://hooks.acme.example/cm")
    order = error_order(partner)
    html = support.get(change_url(order)).content.decode()
    assert "ota_cm_order_processed" in html
    if hasattr(Event, "deliveries"):
        # Support may not view subscriptions: the delivery names its subscription by id, not URL.
        subscription = Subscription.objects.get()
        assert f"subscription {subscription.subscription_id} — pending" in html
        assert "hooks.acme.example" not in html


def test_the_order_page_shows_minted_assets(support, catalog, partner):
    order = issued_order(partner, items=[line("PARK-AND-SHOW", 1, wallet={"componentSchedule": [
        {"itemId": "SHOW-EVENING", "visitDate": visit_date(), "visitTime": "21:00"}]})])
    html = support.get(change_url(order)).content.decode()
    numbers = list(Asset.objects.filter(wallet__order_link__order=order).values_list("asset_number", flat=True))
    assert len(numbers) == 3  # two component tickets and a coupon
    for number in numbers:
        assert number in html
    assert "10% off food and drinks" in html and "21:00" in html


def test_the_order_page_takes_a_fixed_number_of_queries(support, catalog, partner):
    small = issued_order(partner, items=[line("DAY-ADULT", 1)])
    schedule = {"componentSchedule": [{"itemId": "SHOW-EVENING", "visitDate": visit_date(), "visitTime": "19:30"}]}
    large = issued_order(partner, items=[
        line("DAY-ADULT", 20), line("PARK-AND-SHOW", 10, wallet=schedule), line("FAMILY-GROUP", 4),
    ])

    def count(order) -> int:
        with CaptureQueriesContext(connection) as queries:
            assert support.get(change_url(order)).status_code == 200
        return len(queries)

    assert count(large) == count(small)


# ---------------------------------------------------------------------------------------------
# Re-issue
# ---------------------------------------------------------------------------------------------


def reissue_form(client, order) -> dict[str, str]:
    page = client.get(action_url(order, "reissue"))
    assert page.status_code == 200
    form = page.context["form"]
    return {"items": form.initial["items"], "payment_reference": form.initial["payment_reference"]}


def test_reissue_prefills_the_items_in_the_contracts_request_format(support, catalog, partner):
    refs = ["ACME-R-1", "ACME-R-2"]
    order = draft_order(partner, items=[
        line("DAY-ADULT", 2, wallet={"externalReferenceNumbers": refs}),
        line("SHOW-EVENING", 1, visitTime="19:30"),
    ])
    items = json.loads(reissue_form(support, order)["items"])
    assert items == [
        {"itemId": "DAY-ADULT", "quantity": 2, "visitDate": visit_date(), "visitTime": None,
         "wallet": {"externalReferenceNumbers": refs}},
        {"itemId": "SHOW-EVENING", "quantity": 1, "visitDate": visit_date(), "visitTime": "19:30"},
    ]


def test_reissue_with_the_same_content(support, catalog, partner):
    order = draft_order(partner, items=[line("DAY-ADULT", 2, wallet={"externalReferenceNumbers": ["R-1", "R-2"]})])
    old_wallets = set(Wallet.objects.filter(order_link__order=order).values_list("pk", flat=True))
    response = support.post(action_url(order, "reissue"), reissue_form(support, order))
    assert response.status_code == 302 and response["Location"] == change_url(order)
    order.refresh_from_db()
    assert order.status == OrderStatus.SCHEDULED  # re-submitted and queued again
    assert not Wallet.objects.filter(pk__in=old_wallets, destroyed_at__isnull=True).exists()
    assert history(order)[-2] == (OrderStatus.DRAFT, OrderStatus.SUBMITTED, "staff:sam", "replaced")
    assert issue_order(order_pk=order.pk) == OrderStatus.DRAFT
    live = Wallet.objects.filter(order_link__order=order, destroyed_at__isnull=True)
    assert sorted(live.values_list("external_reference_number", flat=True)) == ["R-1", "R-2"]


def test_reissue_with_corrected_content_settles_the_error_order(support, catalog, partner):
    order = error_order(partner)
    form = reissue_form(support, order)
    assert '"visitTime": "18:00"' in form["items"]
    form["items"] = form["items"].replace('"visitTime": "18:00"', '"visitTime": "21:00"')
    response = support.post(action_url(order, "reissue"), form)
    assert response.status_code == 302
    order.refresh_from_db()
    assert order.status == OrderStatus.SCHEDULED and order.status_message is None
    assert history(order)[-2][:3] == (OrderStatus.ERROR, OrderStatus.SUBMITTED, "staff:sam")
    assert issue_order(order_pk=order.pk) == OrderStatus.ISSUED
    assert order.lines.get(line_number=2).visit_time == dt.time(21, 0)
    page = support.get(change_url(order)).content.decode()
    assert "cm-status-message" not in page and "Issued" in page


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ("not json [", "Not valid JSON"),
        ('{"itemId": "DAY-ADULT"}', "Must be a JSON list"),
        ("[]", "items: Ensure this field has at least 1"),
        ('[{"itemId": "DAY-ADULT", "quantity": 0, "visitDate": "2099-01-01"}]', "items[0].quantity"),
        ('[{"itemId": "NO-SUCH", "quantity": 1, "visitDate": "2099-01-01"}]', "items[0].itemId"),
        ('[{"itemId": "DAY-ADULT", "quantity": 1, "visitDate": "2000-01-01"}]', "items[0].visitDate"),
    ],
)
def test_reissue_refuses_invalid_content_and_changes_nothing(support, catalog, partner, items, expected):
    order = error_order(partner)
    response = support.post(action_url(order, "reissue"), {"items": items, "payment_reference": ""})
    assert response.status_code == 200
    assert expected in response.content.decode()
    order.refresh_from_db()
    assert order.status == OrderStatus.ERROR and history(order)[-1][2] == "worker"


def test_reissue_refuses_a_reference_live_on_another_order(support, catalog, partner):
    issued_order(partner, items=[line("DAY-ADULT", 1, wallet={"externalReferenceNumbers": ["TAKEN-1"]})])
    order = error_order(partner)
    items = json.dumps([line("DAY-ADULT", 1, wallet={"externalReferenceNumbers": ["TAKEN-1"]})])
    response = support.post(action_url(order, "reissue"), {"items": items, "payment_reference": ""})
    assert response.status_code == 200 and "TAKEN-1 is already in use" in response.content.decode()
    assert Order.objects.get(pk=order.pk).status == OrderStatus.ERROR


def test_reissue_is_refused_outside_draft_and_error(support, catalog, partner):
    order = issued_order(partner)
    response = support.get(action_url(order, "reissue"))
    assert response.status_code == 302
    assert support.post(action_url(order, "reissue"), {"items": "[]"}).status_code == 302
    assert Order.objects.get(pk=order.pk).status == OrderStatus.ISSUED


def test_bulk_reissue_asks_for_confirmation_then_reissues_the_same_content(support, catalog, partner):
    drafts = [draft_order(partner), draft_order(partner)]
    issued = issued_order(partner)
    selected = [o.pk for o in [*drafts, issued]]
    url = reverse(CHANGELIST)
    page = support.post(url, {"action": "reissue_orders", "_selected_action": selected, "index": 0})
    assert page.status_code == 200 and "Re-issue these orders" in page.content.decode()
    assert all(Order.objects.get(pk=o.pk).status == OrderStatus.DRAFT for o in drafts)

    done = support.post(url, {"action": "reissue_orders", "_selected_action": selected, "post": "yes"}, follow=True)
    assert "2 order(s) re-issued" in done.content.decode()
    for order in drafts:
        assert Order.objects.get(pk=order.pk).status == OrderStatus.SCHEDULED
        assert history(order)[-2][2] == "staff:sam"
    assert Order.objects.get(pk=issued.pk).status == OrderStatus.ISSUED


def test_the_reissue_action_on_one_order_opens_its_reissue_page(support, catalog, partner):
    order = error_order(partner)
    response = support.post(reverse(CHANGELIST), {"action": "reissue_orders", "_selected_action": [order.pk],
                                                  "index": 0})
    assert response.status_code == 302 and response["Location"] == action_url(order, "reissue")


# ---------------------------------------------------------------------------------------------
# Confirm
# ---------------------------------------------------------------------------------------------


def test_confirm_a_draft_with_a_payment_reference(support, catalog, partner):
    order = draft_order(partner)
    assert support.get(action_url(order, "confirm")).status_code == 200
    assert support.post(action_url(order, "confirm"), {"payment_reference": ""}).status_code == 200
    assert Order.objects.get(pk=order.pk).status == OrderStatus.DRAFT

    response = support.post(action_url(order, "confirm"), {"payment_reference": "PAY-STAFF-1"})
    assert response.status_code == 302
    order.refresh_from_db()
    assert order.status == OrderStatus.ISSUED and order.payment_reference == "PAY-STAFF-1"
    assert order.issued_at is not None
    assert history(order)[-1] == (OrderStatus.DRAFT, OrderStatus.ISSUED, "staff:sam", "confirmed")


def test_confirm_is_refused_outside_draft(support, catalog, partner):
    order = error_order(partner)
    assert support.post(action_url(order, "confirm"), {"payment_reference": "PAY-1"}).status_code == 302
    assert Order.objects.get(pk=order.pk).status == OrderStatus.ERROR


def test_the_confirm_action_opens_the_confirm_page_of_one_order(support, catalog, partner):
    order = draft_order(partner)
    response = support.post(reverse(CHANGELIST), {"action": "confirm_orders", "_selected_action": [order.pk],
                                                  "index": 0})
    assert response.status_code == 302 and response["Location"] == action_url(order, "confirm")


# ---------------------------------------------------------------------------------------------
# Delete
# ---------------------------------------------------------------------------------------------


def test_delete_needs_a_reason(support, catalog, partner):
    order = draft_order(partner)
    response = support.post(action_url(order, "remove"), {"reason": "   "})
    assert response.status_code == 200 and "errorlist" in response.content.decode()
    assert Order.objects.filter(pk=order.pk).exists()


def test_deleting_a_draft_removes_it_and_logs_the_reason(support, support_user, catalog, partner):
    order = draft_order(partner)
    response = support.post(action_url(order, "remove"), {"reason": "Partner asked by phone (ticket #123)"})
    assert response.status_code == 302 and response["Location"] == reverse(CHANGELIST)
    assert not Order.objects.filter(pk=order.pk).exists()
    entry = LogEntry.objects.get(object_id=str(order.pk), action_flag=DELETION)
    assert entry.user == support_user
    assert "Partner asked by phone (ticket #123)" in entry.change_message
    # The partner reference is free again.
    submit_order(partner, order_body(sellToOrderReference=order.sell_to_order_reference))


def test_deleting_an_issued_order_cancels_it_with_the_reason_in_its_history(support, catalog, partner):
    order = issued_order(partner)
    assert support.get(action_url(order, "remove")).status_code == 200
    response = support.post(action_url(order, "remove"), {"reason": "Duplicate booking"})
    assert response.status_code == 302 and response["Location"] == change_url(order)
    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELLED and order.cancelled_at is not None
    assert history(order)[-1] == (OrderStatus.ISSUED, OrderStatus.CANCELLED, "staff:sam", "Duplicate booking")
    assert not Wallet.objects.filter(order_link__order=order, destroyed_at__isnull=True).exists()
    html = support.get(change_url(order)).content.decode()
    assert "Duplicate booking" in html and "staff:sam" in html


def test_delete_is_refused_while_in_flight(support, catalog, partner):
    order = submit_order(partner, order_body(), settle=False)
    assert support.post(action_url(order, "remove"), {"reason": "x"}).status_code == 302
    assert Order.objects.get(pk=order.pk).status == OrderStatus.SCHEDULED


def test_bulk_delete_asks_for_a_reason_then_deletes_and_cancels(support, catalog, partner):
    draft, error, issued = draft_order(partner), error_order(partner), issued_order(partner)
    in_flight = submit_order(partner, order_body(), settle=False)
    selected = [draft.pk, error.pk, issued.pk, in_flight.pk]
    url = reverse(CHANGELIST)
    page = support.post(url, {"action": "delete_orders", "_selected_action": selected, "index": 0})
    assert page.status_code == 200 and 'name="reason"' in page.content.decode()
    again = support.post(url, {"action": "delete_orders", "_selected_action": selected, "post": "yes", "reason": ""})
    assert again.status_code == 200 and Order.objects.filter(pk__in=selected).count() == 4

    done = support.post(url, {"action": "delete_orders", "_selected_action": selected, "post": "yes",
                              "reason": "Test bookings"}, follow=True)
    text = done.content.decode()
    assert "2 order(s) deleted, 1 cancelled" in text and "Cannot delete an order in status Scheduled" in text
    assert set(Order.objects.filter(pk__in=selected).values_list("pk", flat=True)) == {issued.pk, in_flight.pk}
    assert history(issued)[-1][2:] == ("staff:sam", "Test bookings")


# ---------------------------------------------------------------------------------------------
# Partners and API keys (superuser)
# ---------------------------------------------------------------------------------------------

KEY_RE = re.compile(r'<code class="cm-key"[^>]*>(cmk_[A-Za-z0-9_\-]+)</code>')


def test_creating_a_partner_shows_its_key_once_and_stores_only_its_hash(admin_client, catalog):
    url = reverse("admin:channel_manager_partner_add")
    assert admin_client.get(url).status_code == 200
    response = admin_client.post(url, {"partner_id": "new-travel", "name": "New Travel",
                                       "active_from": "2026-01-01 00:00:00"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    raw = KEY_RE.findall(response.content.decode())
    assert len(raw) == 1
    partner = Partner.objects.get(partner_id="new-travel")
    assert partner.name == "New Travel" and partner.enabled
    assert partner_for_key(raw[0]) == partner
    key = ApiKey.objects.get(partner=partner)
    assert key.digest != raw[0] and raw[0].startswith(key.prefix)
    # Shown once: the partner page and the key list carry the prefix, never the key or digest.
    for page in (admin_client.get(reverse("admin:channel_manager_partner_change", args=[partner.pk])),
                 admin_client.get(reverse("admin:channel_manager_apikey_changelist")),
                 admin_client.get(reverse("admin:channel_manager_apikey_change", args=[key.pk]))):
        html = page.content.decode()
        assert key.prefix in html and raw[0] not in html and key.digest not in html
    assert raw[0] not in str(dict(admin_client.session))


def test_creating_a_partner_refuses_a_taken_or_invalid_id(admin_client, partner):
    url = reverse("admin:channel_manager_partner_add")
    for partner_id in ("acme-travel", "bad id!"):
        response = admin_client.post(url, {"partner_id": partner_id, "name": "X", "active_from": "2026-01-01 00:00"})
        assert response.status_code == 200 and not KEY_RE.findall(response.content.decode())
    assert Partner.objects.count() == 1


def test_issue_and_revoke_a_key(admin_client, partner, api_key):
    issue = reverse("admin:channel_manager_partner_issue_key", args=[partner.pk])
    response = admin_client.post(issue, {"label": "second"})
    raw = KEY_RE.findall(response.content.decode())[0]
    new_key = ApiKey.objects.get(partner=partner, label="second")
    assert partner_for_key(raw) == partner

    revoke = reverse("admin:channel_manager_partner_revoke_key", args=[partner.pk, new_key.pk])
    assert "Revoke API key" in admin_client.get(revoke).content.decode()
    assert ApiKey.objects.get(pk=new_key.pk).revoked_at is None
    assert admin_client.post(revoke).status_code == 302
    assert ApiKey.objects.get(pk=new_key.pk).revoked_at is not None
    assert partner_for_key(raw) is None
    assert partner_for_key(api_key) == partner


def test_revoke_keys_from_the_key_list_after_confirmation(admin_client, partner, api_key):
    key = ApiKey.objects.get(partner=partner)
    url = reverse("admin:channel_manager_apikey_changelist")
    page = admin_client.post(url, {"action": "revoke_keys", "_selected_action": [key.pk], "index": 0})
    assert page.status_code == 200 and ApiKey.objects.get(pk=key.pk).revoked_at is None
    admin_client.post(url, {"action": "revoke_keys", "_selected_action": [key.pk], "post": "yes"})
    assert partner_for_key(api_key) is None


def test_disable_after_confirmation_and_enable(admin_client, partner, client):
    url = reverse("admin:channel_manager_partner_changelist")
    page = admin_client.post(url, {"action": "disable_partners", "_selected_action": [partner.pk], "index": 0})
    assert page.status_code == 200 and Partner.objects.get(pk=partner.pk).enabled
    admin_client.post(url, {"action": "disable_partners", "_selected_action": [partner.pk], "post": "yes"})
    assert not Partner.objects.get(pk=partner.pk).enabled
    assert client.get("/channelManager").json()["code"] == "partnership_disabled"
    admin_client.post(url, {"action": "enable_partners", "_selected_action": [partner.pk], "index": 0})
    assert Partner.objects.get(pk=partner.pk).enabled
    # Partnerships are switched off, never deleted.
    assert admin_client.post(reverse("admin:channel_manager_partner_delete", args=[partner.pk]),
                             {"post": "yes"}).status_code == 403


def test_issue_keys_action_shows_each_new_key(admin_client, partner):
    other = PartnerFactory(partner_id="other-travel")
    url = reverse("admin:channel_manager_partner_changelist")
    page = admin_client.post(url, {"action": "issue_keys", "_selected_action": [partner.pk, other.pk], "index": 0})
    assert page.status_code == 200 and not KEY_RE.findall(page.content.decode())
    done = admin_client.post(url, {"action": "issue_keys", "_selected_action": [partner.pk, other.pk],
                                   "post": "yes", "label": "bulk"})
    keys = KEY_RE.findall(done.content.decode())
    assert len(keys) == 2
    assert {partner_for_key(k) for k in keys} == {partner, other}


# ---------------------------------------------------------------------------------------------
# Catalog
# ---------------------------------------------------------------------------------------------


def test_items_show_components_coupons_and_slots(support, catalog):
    package = catalog["PARK-AND-SHOW"]
    html = support.get(reverse("admin:catalog_item_change", args=[package.pk])).content.decode()
    assert "FNB10" in html and "DAY-ADULT" in html and "SHOW-EVENING" in html
    show = catalog["SHOW-EVENING"]
    html = support.get(reverse("admin:catalog_item_change", args=[show.pk])).content.decode()
    assert "19:30" in html and "21:00" in html


def test_capacity_lists_sold_and_remaining_per_date_and_slot(support, catalog, partner):
    issued_order(partner, items=[line("SHOW-EVENING", 3, visitTime="19:30"), line("DAY-ADULT", 2)])
    url = reverse("admin:catalog_capacity_changelist")
    response = support.get(url, {"item__id__exact": catalog["SHOW-EVENING"].pk})
    rows = list(response.context["cl"].result_list)
    assert [(r.item.item_id, r.visit_time, r.capacity, r.sold, r.remaining) for r in rows] == [
        ("SHOW-EVENING", dt.time(19, 30), 200, 3, 197)
    ]
    html = response.content.decode()
    assert "197" in html
    day = dt.date.fromisoformat(visit_date())
    by_date = support.get(url, {"visit_date__gte": day.isoformat(),
                                "visit_date__lt": (day + dt.timedelta(days=1)).isoformat()})
    assert {r.item.item_id for r in by_date.context["cl"].result_list} == {"SHOW-EVENING", "DAY-ADULT"}
    assert Capacity.objects.get(item=catalog["DAY-ADULT"]).sold == 2
    assert support.get(reverse("admin:catalog_capacity_add")).status_code == 403


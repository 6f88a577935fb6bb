"""createOrder: 202 + Location, the Order shape, wallet shells, and every validation rule."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from channel_manager.kernel import partners
from channel_manager.orders.models import Order, OrderLine, OrderStatus
from tests.payloads import contract_example_body, line, order_body, visit_date
from tests.test_api_auth import assert_problem
from wallets.models import Wallet

pytestmark = pytest.mark.django_db


def post(client, body):
    return client.post("/channelManager", body, format="json")


def field_errors(response) -> dict[str, str]:
    return {e["field"]: e["message"] for e in response.json()["errors"]}


def test_create_answers_202_submitted_with_location(client, catalog):
    response = post(client, contract_example_body())
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "Submitted"
    assert response["Location"] == f"/channelManager/{body['orderId']}"


def test_created_order_echoes_the_request(client, catalog):
    request = contract_example_body()
    body = post(client, request).json()
    assert body["partnerId"] == "acme-travel"
    assert body["sellToOrderReference"] == request["sellToOrderReference"]
    assert body["paymentReference"] == "PAY-77812"
    assert body["customer"] == request["customer"]
    assert body["currency"] == "EUR"
    assert body["totalAmount"] is None
    assert body["statusMessage"] is None
    assert [i["itemId"] for i in body["items"]] == ["DAY-ADULT", "FAMILY-GROUP", "PARK-AND-SHOW"]
    assert [i["lineNumber"] for i in body["items"]] == [1, 2, 3]
    assert [i["itemType"] for i in body["items"]] == ["ticket", "group_ticket", "package"]
    first = body["items"][0]
    assert first["quantity"] == 2 and first["visitDate"] == request["items"][0]["visitDate"]
    assert first["visitTime"] is None and first["unitPrice"] is None and first["lineTotal"] is None
    assert body["items"][2]["wallet"]["componentSchedule"] == request["items"][2]["wallet"]["componentSchedule"]


def test_buy_from_order_reference_is_present_and_unique(client, catalog):
    a = post(client, order_body()).json()["buyFromOrderReference"]
    b = post(client, order_body()).json()["buyFromOrderReference"]
    assert a.startswith("CM-") and b.startswith("CM-") and a != b


def test_timestamps_are_rfc3339_utc(client, catalog):
    body = post(client, order_body()).json()
    for field in ("createdAt", "updatedAt"):
        assert body[field].endswith("Z")
        dt.datetime.fromisoformat(body[field].replace("Z", "+00:00"))


def test_wallet_shells_exist_from_submission_with_partner_references(client, catalog):
    body = post(client, contract_example_body()).json()
    tickets, group, package = body["items"]
    assert [w["walletReferenceNumber"] for w in tickets["wallets"]] == ["ACME-T-1", "ACME-T-2"]
    assert [w["externalReferenceNumber"] for w in tickets["wallets"]] == ["ACME-T-1", "ACME-T-2"]
    assert tickets["wallet"]["externalReferenceNumbers"] == ["ACME-T-1", "ACME-T-2"]
    assert len(group["wallets"]) == 1 and group["wallets"][0]["walletReferenceNumber"] == "ACME-G-1"
    assert package["wallets"] == [
        {"walletReferenceNumber": None, "externalReferenceNumber": None, "assets": [], "manifestUrl": None}
    ]
    assert all(w["assets"] == [] and w["manifestUrl"] is None for w in tickets["wallets"])


@pytest.mark.parametrize(
    ("item_id", "quantity", "wallets"),
    [("DAY-ADULT", 3, 3), ("FAMILY-GROUP", 4, 1), ("PARK-AND-SHOW", 2, 2)],
)
def test_wallets_per_line_follow_the_item_type(client, catalog, item_id, quantity, wallets):
    body = post(client, order_body(items=[line(item_id, quantity)])).json()
    assert len(body["items"][0]["wallets"]) == wallets


def test_customer_and_payment_reference_are_optional(client, catalog):
    request = order_body()
    del request["customer"], request["paymentReference"]
    body = post(client, request).json()
    assert body["customer"] is None and body["paymentReference"] is None


def test_second_submission_of_the_same_reference_is_400_duplicate_order(client, catalog):
    request = order_body()
    first = post(client, request).json()
    again = post(client, {**request, "paymentReference": "other"})
    problem = assert_problem(again, 400, "duplicate_order")
    assert problem["orderId"] == first["orderId"]
    assert Order.objects.count() == 1


def test_the_same_reference_under_another_partner_is_a_different_order(client, catalog, anon_client):
    from tests.factories import PartnerFactory

    other = PartnerFactory(partner_id="other-travel")
    _, key = partners.issue_api_key(partner=other)
    anon_client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert post(client, order_body(sellToOrderReference="SAME-1")).status_code == 202
    assert post(anon_client, order_body("other-travel", sellToOrderReference="SAME-1")).status_code == 202


def test_reference_live_on_another_order_is_400_reference_in_use(client, catalog):
    post(client, order_body(items=[line(wallet={"externalReferenceNumbers": ["REF-1"]})]))
    response = post(client, order_body(items=[line(), line(wallet={"externalReferenceNumbers": ["REF-1"]})]))
    problem = assert_problem(response, 400, "reference_in_use")
    assert problem["errors"] == [
        {"field": "items[1].wallet.externalReferenceNumbers[0]", "message": "REF-1 is already in use."}
    ]
    assert Order.objects.count() == 1


def test_a_failed_create_changes_nothing(client, catalog):
    post(client, order_body(items=[line(quantity=0)]))
    assert (Order.objects.count(), OrderLine.objects.count(), Wallet.objects.count()) == (0, 0, 0)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b.pop("partnerId"), "partnerId"),
        (lambda b: b.pop("sellToOrderReference"), "sellToOrderReference"),
        (lambda b: b.update(sellToOrderReference=""), "sellToOrderReference"),
        (lambda b: b.update(sellToOrderReference="x" * 65), "sellToOrderReference"),
        (lambda b: b.update(paymentReference="p" * 129), "paymentReference"),
        (lambda b: b.pop("items"), "items"),
        (lambda b: b.update(items=[]), "items"),
        (lambda b: b.update(items=[line() for _ in range(51)]), "items"),
        (lambda b: b.update(customer={"email": "not-an-email"}), "customer.email"),
        (lambda b: b.update(customer="Ada"), "customer"),
        (lambda b: b["items"][0].pop("itemId"), "items[0].itemId"),
        (lambda b: b["items"][0].update(itemId="NO-SUCH-ITEM"), "items[0].itemId"),
        (lambda b: b["items"][0].update(quantity=0), "items[0].quantity"),
        (lambda b: b["items"][0].update(quantity=501), "items[0].quantity"),
        (lambda b: b["items"][0].update(quantity="two"), "items[0].quantity"),
        (lambda b: b["items"][0].update(quantity=1.5), "items[0].quantity"),
        (lambda b: b["items"][0].update(quantity=True), "items[0].quantity"),
        (lambda b: b["items"][0].pop("visitDate"), "items[0].visitDate"),
        (lambda b: b["items"][0].update(visitDate="24/12/2026"), "items[0].visitDate"),
        (lambda b: b["items"][0].update(visitDate=20261224), "items[0].visitDate"),
        (lambda b: b["items"][0].update(visitTime="7pm"), "items[0].visitTime"),
        (lambda b: b["items"][0].update(visitTime="25:00"), "items[0].visitTime"),
    ],
)
def test_schema_violations_are_400_validation_error_naming_the_field(client, catalog, mutate, field):
    body = order_body()
    mutate(body)
    response = post(client, body)
    assert_problem(response, 400, "validation_error")
    assert field in field_errors(response)


def test_quantity_error_message_is_the_contracts(client, catalog):
    response = post(client, order_body(items=[line(), line(quantity=0)]))
    assert field_errors(response) == {"items[1].quantity": "Must be between 1 and 500."}


def test_every_invalid_field_is_reported_at_once(client, catalog):
    response = post(client, order_body(sellToOrderReference="", items=[line(quantity=0, visitDate="nope")]))
    problem = assert_problem(response, 400, "validation_error")
    assert set(field_errors(response)) == {"sellToOrderReference", "items[0].quantity", "items[0].visitDate"}
    assert problem["detail"] == "3 fields are invalid"


def test_visit_date_before_the_venues_today_is_rejected(client, catalog):
    yesterday = (timezone.localdate() - dt.timedelta(days=2)).isoformat()
    response = post(client, order_body(items=[line(visitDate=yesterday)]))
    assert_problem(response, 400, "validation_error")
    assert "items[0].visitDate" in field_errors(response)


def test_visit_date_today_is_accepted(client, catalog):
    from catalog.selectors import venue_today

    assert post(client, order_body(items=[line(visitDate=venue_today().isoformat())])).status_code == 202


@pytest.mark.parametrize(
    ("wallet", "field"),
    [
        ({"externalReferenceNumbers": ["A-1"]}, "items[0].wallet.externalReferenceNumbers"),
        ({"externalReferenceNumbers": ["A-1", "A-2", "A-3"]}, "items[0].wallet.externalReferenceNumbers"),
        ({"externalReferenceNumbers": ["A-1", "A-1"]}, "items[0].wallet.externalReferenceNumbers[1]"),
        ({"externalReferenceNumbers": ["A 1", "A-2"]}, "items[0].wallet.externalReferenceNumbers[0]"),
        ({"externalReferenceNumbers": ["", "A-2"]}, "items[0].wallet.externalReferenceNumbers[0]"),
        ({"externalReferenceNumbers": ["x" * 65, "A-2"]}, "items[0].wallet.externalReferenceNumbers[0]"),
        ({"externalReferenceNumbers": "A-1"}, "items[0].wallet.externalReferenceNumbers"),
        ({"componentSchedule": [{"itemId": "DAY-ADULT", "visitDate": visit_date()}]},
         "items[0].wallet.componentSchedule"),
    ],
)
def test_wallet_rules_are_400_validation_error(client, catalog, wallet, field):
    response = post(client, order_body(items=[line("DAY-ADULT", 2, wallet=wallet)]))
    assert_problem(response, 400, "validation_error")
    assert field in field_errors(response)


def test_reference_repeated_across_lines_of_one_order_is_rejected(client, catalog):
    response = post(client, order_body(items=[
        line(wallet={"externalReferenceNumbers": ["R-1"]}),
        line(wallet={"externalReferenceNumbers": ["R-1"]}),
    ]))
    assert "items[1].wallet.externalReferenceNumbers[0]" in field_errors(response)


def test_component_schedule_must_name_a_component_of_the_package(client, catalog):
    response = post(client, order_body(items=[line("PARK-AND-SHOW", 1, wallet={"componentSchedule": [
        {"itemId": "FAMILY-GROUP", "visitDate": visit_date(), "visitTime": "19:30"}]})]))
    assert "items[0].wallet.componentSchedule[0].itemId" in field_errors(response)


def test_group_larger_than_max_group_size_is_rejected(client, catalog):
    response = post(client, order_body(items=[line("FAMILY-GROUP", 7)]))
    assert "items[0].quantity" in field_errors(response)


def test_order_issuing_more_wallets_than_the_limit_is_rejected(client, catalog, settings):
    settings.MAX_WALLETS_PER_ORDER = 10
    response = post(client, order_body(items=[line(quantity=6), line(quantity=5)]))
    assert "items" in field_errors(response)
    assert post(client, order_body(items=[line(quantity=5), line(quantity=5)])).status_code == 202


def test_create_records_submitted_in_the_status_history(client, catalog, partner):
    order_id = post(client, order_body()).json()["orderId"]
    order = Order.objects.get(order_id=order_id)
    submitted, scheduled = order.status_changes.order_by("id")
    assert (submitted.from_status, submitted.to_status, submitted.actor) == ("", "Submitted", "partner:acme-travel")
    assert (scheduled.from_status, scheduled.to_status) == ("Submitted", "Scheduled")


def test_create_queues_issuance_in_the_same_transaction_and_kicks_a_run_after_commit(
    client, catalog, django_capture_on_commit_callbacks
):
    from django_q.models import OrmQ

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = post(client, order_body())
    assert response.json()["status"] == "Submitted"
    order = Order.objects.get(order_id=response.json()["orderId"])
    # On the queue (the orders table) with the order itself; the run is asked for after commit.
    assert order.status == OrderStatus.SCHEDULED
    assert [c.to_status for c in order.status_changes.order_by("id")] == ["Submitted", "Scheduled"]
    assert OrmQ.objects.count() == 0
    assert [callback.__name__ for callback in callbacks] == ["kick"]
    callbacks[0]()
    assert OrmQ.objects.count() == 1


def test_a_burst_of_orders_queues_one_run_until_a_run_starts(client, catalog, django_capture_on_commit_callbacks):
    from django_q.models import OrmQ

    from channel_manager.orders import scheduling

    with django_capture_on_commit_callbacks(execute=True):
        for n in range(5):
            assert post(client, order_body(sellToOrderReference=f"BURST-{n}")).status_code == 202
    assert OrmQ.objects.count() == 1
    scheduling.lower_signal()  # a run starts: the next order asks for another
    with django_capture_on_commit_callbacks(execute=True):
        post(client, order_body(sellToOrderReference="BURST-5"))
    assert OrmQ.objects.count() == 2


def test_a_create_that_fails_queues_nothing(client, catalog):
    from django_q.models import OrmQ

    post(client, order_body(items=[line(quantity=0)]))
    assert OrmQ.objects.count() == 0


def test_create_costs_a_fixed_number_of_queries_whatever_the_wallet_count(
    client, catalog, django_assert_max_num_queries
):
    post(client, order_body())  # warm the per-process catalog snapshot
    # The API key, then the order (already Scheduled), its two history rows in one INSERT, the
    # queue row, its lines and its wallet shells (inside the test's transaction, as a
    # savepoint: two more statements): nothing read back.
    with django_assert_max_num_queries(8) as small:
        assert post(client, order_body(items=[line(quantity=1)])).status_code == 202
    with django_assert_max_num_queries(len(small.captured_queries)) as large:
        assert post(client, order_body(items=[line(quantity=250), line("PARK-AND-SHOW", 250)])).status_code == 202
    assert len(large.captured_queries) == len(small.captured_queries)

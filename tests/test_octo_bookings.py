"""OCTO bookings end to end over the order services; every answer checked against octo-types'
openapi.yaml (tests/octo_schema.py)."""

from __future__ import annotations

import datetime as dt
import threading
import uuid

import pytest
from django.db import connection, transaction
from django.utils import timezone

from catalog.models import Capacity, TimeSlot
from channel_manager.octo.models import OctoBooking
from channel_manager.orders import services as order_services
from channel_manager.orders.models import DeletedOrder, Order, OrderStatus
from channel_manager.orders.services import expire_draft_holds
from notifications.models import Event
from tests.octo_helpers import OctoClient, availability_id, reserve_body, visit_day
from wallets.gate import signing
from wallets.models import Asset

pytestmark = pytest.mark.django_db


@pytest.fixture
def octo(client, catalog) -> OctoClient:
    return OctoClient(client)


def reserve(octo: OctoClient, **kwargs) -> dict:
    status, booking = octo.post("/octo/bookings", reserve_body(**kwargs))
    assert status == 200, booking
    return booking


def sold(catalog, item="SHOW-EVENING", time=dt.time(19, 30)) -> int:
    row = Capacity.objects.filter(item=catalog[item], visit_date=visit_day(), visit_time=time).first()
    return row.sold if row else 0


def test_reserve_confirm_with_changed_units_get_list_and_cancel(octo, catalog):
    booking_uuid = str(uuid.uuid4())
    booking = reserve(octo, uuid=booking_uuid, resellerReference="RES-1", expirationMinutes=30)
    assert (booking["uuid"], booking["status"], booking["resellerReference"]) == (booking_uuid, "ON_HOLD", "RES-1")
    assert booking["utcExpiresAt"] is not None and booking["voucher"] is None
    assert len({u["uuid"] for u in booking["unitItems"]}) == 2
    assert sold(catalog) == 2

    status, extended = octo.post(f"/octo/bookings/{booking_uuid}/extend", {"expirationMinutes": 60})
    assert status == 200 and extended["status"] == "ON_HOLD"
    assert extended["utcExpiresAt"] > booking["utcExpiresAt"]

    new_units = [{"unitId": "UNIT", "uuid": str(uuid.uuid4())} for _ in range(3)]
    status, confirmed = octo.post(f"/octo/bookings/{booking_uuid}/confirm", {
        "contact": {"fullName": "Ada Lovelace", "emailAddress": "ada@example.com"}, "unitItems": new_units})
    assert status == 200, confirmed
    assert confirmed["status"] == "CONFIRMED" and confirmed["utcConfirmedAt"]
    assert [u["uuid"] for u in confirmed["unitItems"]] == [u["uuid"] for u in new_units]
    assert sold(catalog) == 3
    tickets = [u["ticket"] for u in confirmed["unitItems"]]
    assert all(t and t["deliveryOptions"][0]["deliveryFormat"] == "QRCODE" for t in tickets)
    order = Order.objects.get(order_id=OctoBooking.objects.get(uuid=booking_uuid).order_id)
    live = Asset.objects.filter(wallet__order_link__order=order, wallet__destroyed_at__isnull=True)
    numbers = set(live.values_list("asset_number", flat=True))
    # Each QRCODE is the asset's signed payload (as on its manifest): it names a real asset, none made up.
    signed = [t["deliveryOptions"][0]["deliveryValue"] for t in tickets]
    assert {signing.verify(code)["a"] for code in signed} == numbers
    assert confirmed["contact"]["firstName"] == "Ada" and confirmed["contact"]["emailAddress"] == "ada@example.com"

    status, read = octo.get(f"/octo/bookings/{booking_uuid}")
    assert status == 200 and read["status"] == "CONFIRMED"
    status, listed = octo.get("/octo/bookings?resellerReference=RES-1")
    assert [b["uuid"] for b in listed] == [booking_uuid]
    status, listed = octo.get(f"/octo/bookings?supplierReference={read['supplierReference']}")
    assert [b["uuid"] for b in listed] == [booking_uuid]

    status, cancelled = octo.post(f"/octo/bookings/{booking_uuid}/cancel", {"reason": "customer changed plans"})
    assert status == 200
    assert cancelled["status"] == "CANCELLED"
    assert cancelled["cancellation"]["reason"] == "customer changed plans"
    assert sold(catalog) == 0
    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELLED


def test_the_supplier_makes_the_uuids_when_none_are_sent(octo):
    booking = reserve(octo)
    uuid.UUID(booking["uuid"])
    assert all(uuid.UUID(u["uuid"]) for u in booking["unitItems"])


def test_a_retried_reservation_with_the_same_uuid_answers_the_same_booking(octo, catalog):
    booking_uuid = str(uuid.uuid4())
    first = reserve(octo, uuid=booking_uuid)
    again = reserve(octo, uuid=booking_uuid)
    assert again["supplierReference"] == first["supplierReference"]
    assert sold(catalog) == 2


def test_a_cancelled_on_hold_booking_stays_readable_through_its_tombstone(octo, catalog):
    booking = reserve(octo)
    status, cancelled = octo.post(f"/octo/bookings/{booking['uuid']}/cancel")
    assert status == 200 and cancelled["status"] == "CANCELLED"
    assert DeletedOrder.objects.filter(order_id=OctoBooking.objects.get(uuid=booking["uuid"]).order_id).exists()
    status, read = octo.get(f"/octo/bookings/{booking['uuid']}")
    assert status == 200
    assert read["status"] == "CANCELLED" and read["supplierReference"] == booking["supplierReference"]
    assert sold(catalog) == 0


def test_a_sold_out_slot_is_unprocessable_and_leaves_no_booking(octo, catalog):
    TimeSlot.objects.filter(item=catalog["SHOW-EVENING"], time=dt.time(19, 30)).update(capacity=2)
    status, body = octo.post("/octo/bookings", reserve_body(units=3))
    assert status == 400
    assert body["error"] == "UNPROCESSABLE_ENTITY" and "sold out" in body["errorMessage"]
    assert not OctoBooking.objects.exists() and not Order.objects.exists()
    assert DeletedOrder.objects.get().reason.startswith("OCTO reservation refused")


def test_empty_unit_items_are_unprocessable(octo):
    status, body = octo.post("/octo/bookings", reserve_body(units=0))
    assert status == 400 and body["error"] == "UNPROCESSABLE_ENTITY"


@pytest.mark.parametrize(
    ("change", "error", "field"),
    [
        ({"productId": "NOPE"}, "INVALID_PRODUCT_ID", "productId"),
        ({"optionId": "VIP"}, "INVALID_OPTION_ID", "optionId"),
        ({"unitItems": [{"unitId": "CHILD"}]}, "INVALID_UNIT_ID", "unitId"),
        ({"availabilityId": "2030-01-01T18:00:00+01:00"}, "INVALID_AVAILABILITY_ID", "availabilityId"),
        ({"availabilityId": "not a date"}, "INVALID_AVAILABILITY_ID", "availabilityId"),
        ({"uuid": "not-a-uuid"}, "BAD_REQUEST", None),
        ({"unitItems": "two"}, "BAD_REQUEST", None),
        ({"contact": {"emailAddress": "nope"}}, "BAD_REQUEST", None),
    ],
)
def test_a_reservation_refuses_each_invalid_id(octo, change, error, field):
    status, body = octo.post("/octo/bookings", {**reserve_body(), **change})
    assert status == 400
    assert body["error"] == error
    if field:
        assert field in body
    assert not Order.objects.exists()


def test_a_past_date_is_an_invalid_availability_id(octo):
    status, body = octo.post("/octo/bookings", reserve_body(day=visit_day(-2)))
    assert status == 400 and body["error"] == "INVALID_AVAILABILITY_ID"


@pytest.mark.parametrize("path", ["/octo/bookings/{u}", "/octo/bookings/{u}/confirm", "/octo/bookings/{u}/cancel",
                                  "/octo/bookings/{u}/extend"])
def test_an_unknown_booking_uuid_is_invalid_booking_uuid(octo, path):
    target = path.format(u=uuid.uuid4())
    status, body = octo.get(target) if target.count("/") == 3 else octo.post(target, {"contact": {}})
    assert status == 400
    assert body["error"] == "INVALID_BOOKING_UUID" and "uuid" in body


def test_another_partners_booking_is_an_invalid_booking_uuid(octo, catalog):
    from rest_framework.test import APIClient

    from channel_manager.kernel import partners
    from tests.factories import PartnerFactory

    booking = reserve(octo)
    other = APIClient()
    _, key = partners.issue_api_key(partner=PartnerFactory(partner_id="other"))
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    status, body = OctoClient(other).get(f"/octo/bookings/{booking['uuid']}")
    assert status == 400 and body["error"] == "INVALID_BOOKING_UUID"


def test_an_expired_hold_is_expired_and_cannot_be_confirmed(octo, catalog):
    booking = reserve(octo)
    Order.objects.update(hold_expires_at=timezone.now() - dt.timedelta(minutes=1))
    _, read = octo.get(f"/octo/bookings/{booking['uuid']}")
    assert read["status"] == "EXPIRED" and read["utcExpiresAt"] is None
    status, body = octo.post(f"/octo/bookings/{booking['uuid']}/confirm", {"contact": {}})
    assert status == 400 and body["error"] == "UNPROCESSABLE_ENTITY"


def test_a_hold_expired_by_the_schedule_reads_expired(octo, catalog):
    booking = reserve(octo)
    Order.objects.update(hold_expires_at=timezone.now() - dt.timedelta(minutes=1))
    assert expire_draft_holds() == 1
    _, read = octo.get(f"/octo/bookings/{booking['uuid']}")
    assert read["status"] == "EXPIRED"
    assert sold(catalog) == 0
    status, body = octo.post(f"/octo/bookings/{booking['uuid']}/extend", {"expirationMinutes": 10})
    assert status == 400 and body["error"] == "UNPROCESSABLE_ENTITY"


def test_used_tickets_read_redeemed_and_cannot_be_cancelled(octo, catalog):
    booking = reserve(octo)
    octo.post(f"/octo/bookings/{booking['uuid']}/confirm", {"contact": {}})
    Asset.objects.filter(pk=Asset.objects.order_by("pk").first().pk).update(redeemed_at=timezone.now())
    _, read = octo.get(f"/octo/bookings/{booking['uuid']}")
    assert read["status"] == "REDEEMED" and read["utcRedeemedAt"]
    assert sorted(u["status"] for u in read["unitItems"]) == ["CONFIRMED", "REDEEMED"]
    status, body = octo.post(f"/octo/bookings/{booking['uuid']}/cancel")
    assert status == 400 and body["error"] == "UNPROCESSABLE_ENTITY"


def test_a_group_unit_books_one_group_of_its_size(octo, catalog):
    booking = reserve(octo, product="FAMILY-GROUP", units=1, unit_id="GROUP", time=None)
    order = Order.objects.get()
    assert [(line.item_code, line.quantity) for line in order.lines.all()] == [("FAMILY-GROUP", 6)]
    assert booking["unitItems"][0]["unitId"] == "GROUP"


def test_a_package_books_its_timed_component_at_the_slot(octo, catalog):
    reserve(octo, product="PARK-AND-SHOW", units=1, time=dt.time(21, 0))
    assert sold(catalog, time=dt.time(21, 0)) == 1
    assert sold(catalog, item="DAY-ADULT", time=None) == 1


def test_patch_changes_references_and_what_an_on_hold_booking_books(octo, catalog):
    booking = reserve(octo)
    status, patched = octo.patch(f"/octo/bookings/{booking['uuid']}", {
        "resellerReference": "RES-9", "notes": "window seat",
        "availabilityId": availability_id(visit_day(), dt.time(21, 0))})
    assert status == 200, patched
    assert (patched["resellerReference"], patched["notes"], patched["status"]) == ("RES-9", "window seat", "ON_HOLD")
    assert patched["availabilityId"] == availability_id(visit_day(), dt.time(21, 0))
    assert (sold(catalog), sold(catalog, time=dt.time(21, 0))) == (0, 2)


def test_patch_cannot_change_what_a_confirmed_booking_books(octo, catalog):
    booking = reserve(octo)
    octo.post(f"/octo/bookings/{booking['uuid']}/confirm", {"contact": {}})
    status, body = octo.patch(f"/octo/bookings/{booking['uuid']}", {"unitItems": [{"unitId": "UNIT"}]})
    assert status == 400 and body["error"] == "UNPROCESSABLE_ENTITY"


def test_octo_orders_are_orders_like_any_other(octo, catalog, client):
    booking = reserve(octo)
    octo.post(f"/octo/bookings/{booking['uuid']}/confirm", {"contact": {"firstName": "Ada"}})
    order = Order.objects.get()
    answer = client.get(f"/channelManager/{order.order_id}").json()
    assert answer["status"] == "Issued" and answer["buyFromOrderReference"] == booking["supplierReference"]
    assert Event.objects.filter(subject_id=str(order.order_id), event_type="ota_cm_order_processed").exists()


@pytest.mark.parametrize("body", [[], "x", {"productId": 7}, {"productId": ["a"], "optionId": {}},
                                  {"expirationMinutes": -1}, {"unitItems": [{"unitId": "UNIT", "uuid": 5}]},
                                  {"resellerReference": "a\x00b"}])
def test_hostile_reservations_are_refused_in_octos_words(octo, body):
    if isinstance(body, dict) and "productId" not in body:
        body = {**reserve_body(), **body}
    status, answer = octo.post("/octo/bookings", body)
    assert status == 400 and answer["error"] in {"BAD_REQUEST", "INVALID_PRODUCT_ID", "INVALID_OPTION_ID"}


def test_malformed_json_is_bad_request(octo):
    response = octo.client.post("/octo/bookings", data="{", content_type="application/json")
    assert response.status_code == 400 and response.json()["error"] == "BAD_REQUEST"


def test_past_the_inline_bound_octo_answers_an_error_not_a_ticket(transactional_db, octo, catalog, monkeypatch,
                                                                  settings):
    """A worker holding the order longer than OCTO_INLINE_ISSUANCE_SECONDS: the reservation is
    answered with OCTO's error, and the booking reads PENDING (no ticket) until it settles."""
    if connection.vendor != "postgresql":
        pytest.fail("the inline bound is PostgreSQL's lock_timeout")
    settings.OCTO_INLINE_ISSUANCE_SECONDS = 1
    real = order_services.issue_order

    def issued_while_a_worker_holds_it(*, order_pk):
        ready, release = threading.Event(), threading.Event()

        def worker():
            try:
                with transaction.atomic():
                    Order.objects.select_for_update().get(pk=order_pk)
                    ready.set()
                    release.wait(10)
            finally:
                connection.close()

        thread = threading.Thread(target=worker)
        thread.start()
        ready.wait(10)
        try:
            return real(order_pk=order_pk)
        finally:
            release.set()
            thread.join()

    monkeypatch.setattr(order_services, "issue_order", issued_while_a_worker_holds_it)
    booking_uuid = str(uuid.uuid4())
    status, body = octo.post("/octo/bookings", reserve_body(uuid=booking_uuid))
    assert status == 400
    assert body["error"] == "UNPROCESSABLE_ENTITY" and body["uuid"] == booking_uuid
    _, read = octo.get(f"/octo/bookings/{booking_uuid}")
    assert read["status"] == "PENDING" and all(u["ticket"] is None for u in read["unitItems"])
    assert Order.objects.get().status in (OrderStatus.SUBMITTED, OrderStatus.SCHEDULED, OrderStatus.PROCESSING)


def test_reading_bookings_takes_a_fixed_number_of_queries(octo, catalog, django_assert_max_num_queries):
    for n in range(3):
        booking = reserve(octo, resellerReference="SAME", units=n + 1)
        octo.post(f"/octo/bookings/{booking['uuid']}/confirm", {"contact": {}})
    with django_assert_max_num_queries(14):
        status, listed = octo.get("/octo/bookings?resellerReference=SAME")
    assert status == 200 and len(listed) == 3
    with django_assert_max_num_queries(14):
        octo.get(f"/octo/bookings/{booking['uuid']}")


def test_with_octo_pricing_a_booking_carries_its_issued_prices(octo, catalog):
    status, booking = octo.post("/octo/bookings", reserve_body(units=3), HTTP_OCTO_CAPABILITIES="octo/pricing")
    assert status == 200
    assert booking["pricing"]["retail"] == 6000
    assert [u["pricing"]["retail"] for u in booking["unitItems"]] == [2000, 2000, 2000]


@pytest.mark.parametrize("query", ["supplierReference=CM-99999999999999999999999", "resellerReference=a%00b",
                                   "supplierReference=nonsense", ""])
def test_odd_booking_filters_answer_an_empty_list_or_bad_request(octo, query):
    status, body = octo.get(f"/octo/bookings?{query}")
    assert (status, body) == (200, []) or (status == 400 and body["error"] == "BAD_REQUEST")

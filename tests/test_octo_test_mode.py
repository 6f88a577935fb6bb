"""OCTO in test mode (API.md, "Test mode (partners)"; issue [2.7] "the key's mode sets testMode"):
a test key's bookings are test orders on the test pool, and neither mode ever sees the other's
bookings. Every answer is checked against octo-types' openapi.yaml (tests/octo_helpers.OctoClient)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from rest_framework.test import APIClient

from catalog.models import Capacity, TimeSlot
from channel_manager.kernel import partners
from channel_manager.octo.models import OctoBooking
from channel_manager.orders.models import Order, OrderStatus
from tests.octo_helpers import OctoClient, availability_id, reserve_body, visit_day
from wallets.gate import signing

pytestmark = pytest.mark.django_db

EVENING = dt.time(19, 30)


@pytest.fixture
def live(client, catalog) -> OctoClient:
    return OctoClient(client)


@pytest.fixture
def test(partner, catalog) -> OctoClient:
    _, raw = partners.issue_api_key(partner=partner, label="test", livemode=False)
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return OctoClient(c)


def reserve(octo: OctoClient, **kwargs) -> dict:
    status, booking = octo.post("/octo/bookings", reserve_body(**kwargs))
    assert status == 200, booking
    return booking


def sold(catalog, *, livemode: bool) -> int:
    row = Capacity.objects.filter(item=catalog["SHOW-EVENING"], visit_date=visit_day(), visit_time=EVENING,
                                  livemode=livemode).first()
    return row.sold if row else 0


def slot(octo: OctoClient, path: str = "/octo/availability") -> dict:
    body = {"productId": "SHOW-EVENING", "optionId": "DEFAULT", "localDate": visit_day().isoformat()}
    status, answer = octo.post(path, body)
    assert status == 200, answer
    if path.endswith("calendar"):
        return answer[0]
    return next(a for a in answer if a["id"] == availability_id(visit_day(), EVENING))


@pytest.mark.parametrize("mode", ["live", "test"])
def test_test_mode_in_booking_answers_is_the_keys_mode(request, mode):
    octo = request.getfixturevalue(mode)
    booking = reserve(octo)
    assert booking["testMode"] is (mode == "test")
    _, confirmed = octo.post(f"/octo/bookings/{booking['uuid']}/confirm", {"contact": {}})
    assert confirmed["testMode"] is (mode == "test")
    _, listed = octo.get(f"/octo/bookings?supplierReference={booking['supplierReference']}")
    assert [b["testMode"] for b in listed] == [mode == "test"]


def test_a_test_keys_booking_is_a_test_order(test):
    booking = reserve(test)
    assert Order.objects.get().livemode is False
    assert OctoBooking.objects.get(uuid=booking["uuid"]).livemode is False


@pytest.mark.parametrize(("maker", "reader"), [("live", "test"), ("test", "live")])
@pytest.mark.parametrize(
    "call",
    [
        ("GET", "/octo/bookings/{u}", None),
        ("POST", "/octo/bookings/{u}/confirm", {"contact": {}}),
        ("POST", "/octo/bookings/{u}/cancel", {}),
        ("POST", "/octo/bookings/{u}/extend", {"expirationMinutes": 10}),
        ("PATCH", "/octo/bookings/{u}", {"notes": "x"}),
    ],
)
def test_the_other_modes_booking_is_an_invalid_booking_uuid(request, maker, reader, call):
    booking = reserve(request.getfixturevalue(maker))
    method, path, body = call
    octo = request.getfixturevalue(reader)
    target = path.format(u=booking["uuid"])
    status, answer = octo.get(target) if method == "GET" else octo.call(method, target, body)
    assert status == 400 and answer["error"] == "INVALID_BOOKING_UUID"
    # and nothing changed on the other side
    _, read = request.getfixturevalue(maker).get(f"/octo/bookings/{booking['uuid']}")
    assert read["status"] == "ON_HOLD" and read["notes"] is None


@pytest.mark.parametrize(("maker", "reader"), [("live", "test"), ("test", "live")])
def test_listing_never_shows_the_other_modes_bookings(request, maker, reader):
    booking = reserve(request.getfixturevalue(maker), resellerReference="RES-1")
    octo = request.getfixturevalue(reader)
    _, by_reseller = octo.get("/octo/bookings?resellerReference=RES-1")
    _, by_supplier = octo.get(f"/octo/bookings?supplierReference={booking['supplierReference']}")
    assert (by_reseller, by_supplier) == ([], [])


def test_the_same_uuid_in_both_modes_makes_two_bookings_that_never_meet(live, test, catalog):
    """A test key retrying with a live booking's uuid neither reads that booking nor is refused
    for it: uuids are the partner's own per mode, as references are."""
    booking_uuid = str(uuid.uuid4())
    live_booking = reserve(live, uuid=booking_uuid, resellerReference="LIVE")
    test_booking = reserve(test, uuid=booking_uuid, resellerReference="TEST")
    assert test_booking["uuid"] == live_booking["uuid"] == booking_uuid
    assert test_booking["supplierReference"] != live_booking["supplierReference"]
    assert (test_booking["testMode"], test_booking["resellerReference"]) == (True, "TEST")
    test.post(f"/octo/bookings/{booking_uuid}/cancel")
    _, read = live.get(f"/octo/bookings/{booking_uuid}")
    assert (read["status"], read["resellerReference"], read["testMode"]) == ("ON_HOLD", "LIVE", False)
    assert (sold(catalog, livemode=True), sold(catalog, livemode=False)) == (2, 0)


def test_a_test_keys_reservation_draws_on_the_test_pool_only(live, test, catalog):
    before = slot(live)
    reserve(test, units=3)
    assert (sold(catalog, livemode=True), sold(catalog, livemode=False)) == (0, 3)
    assert slot(live) == before
    assert slot(test)["vacancies"] == before["vacancies"] - 3
    assert slot(test, "/octo/availability/calendar")["vacancies"] == (
        slot(live, "/octo/availability/calendar")["vacancies"] - 3
    )


def test_a_test_key_can_sell_out_the_test_pool_while_live_still_sells(live, test, catalog):
    TimeSlot.objects.filter(item=catalog["SHOW-EVENING"], time=EVENING).update(capacity=2)
    reserve(test, units=2)
    assert slot(test)["status"] == "SOLD_OUT"
    status, body = test.post("/octo/bookings", reserve_body(units=1))
    assert status == 400 and body["error"] == "UNPROCESSABLE_ENTITY"
    assert slot(live)["status"] != "SOLD_OUT"
    assert reserve(live, units=2)["status"] == "ON_HOLD"


def test_a_confirmed_test_booking_carries_test_codes(test):
    booking = reserve(test)
    _, confirmed = test.post(f"/octo/bookings/{booking['uuid']}/confirm", {"contact": {}})
    assert confirmed["status"] == "CONFIRMED" and confirmed["testMode"] is True
    codes = [u["ticket"]["deliveryOptions"][0]["deliveryValue"] for u in confirmed["unitItems"]]
    assert [signing.verify(code)["test"] for code in codes] == [True, True]  # a gate offline refuses them
    order = Order.objects.get()
    assert order.livemode is False and order.status == OrderStatus.ISSUED

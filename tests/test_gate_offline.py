"""The gate offline (API.md, "Gate admission", Offline): GET /gate/sync (voided and redeemed
deltas since a cursor, never skipping a change that commits late) and POST /gate/scans/batch
(uploads where the earliest scannedAt wins and conflicts are reported); per-item admission
windows of timed tickets.

The sync tests run with real commits (transaction=True): the feed only gives changes whose
transaction has ended, and a test's own rolled-back transaction never ends."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from django.db import connection, transaction
from django.urls import reverse

from catalog.loading import load_catalog
from catalog.models import Item
from catalog.selectors import clear_catalog_cache
from catalog.specs import CatalogInvalid
from channel_manager.kernel.cursors import encode_cursor
from tests.payloads import contract_example_body, line, order_body
from tests.test_api_auth import assert_problem
from tests.test_gate import DAY, NOON, VENUE_TZ, assets_of, gate_client, place, rfc, scan, ticket
from wallets.gate import changes, services
from wallets.gate.devices import create_gate_device
from wallets.models import Asset, GateChange, GateChangeKind, GateScan, Wallet

pytestmark = pytest.mark.django_db



@pytest.fixture
def device_and_token(catalog) -> tuple:
    return create_gate_device(name="North entrance 1")


@pytest.fixture
def gate(device_and_token):
    return gate_client(device_and_token[1])


@pytest.fixture
def order(client, catalog):
    """The contract's example order, Issued, its visit day moved to DAY (as in test_gate)."""
    placed = place(client, contract_example_body())
    assets_of(placed).update(visit_date=DAY)
    return placed


def upload(gate, *scans: tuple[str, dt.datetime]) -> list[dict]:
    response = gate.post(
        "/gate/scans/batch", {"scans": [{"code": code, "scannedAt": rfc(at)} for code, at in scans]}, format="json"
    )
    assert response.status_code == 200, response.content
    return response.json()["results"]


def sync(gate, cursor: str | None = None) -> dict:
    response = gate.get("/gate/sync", {"cursor": cursor} if cursor else {})
    assert response.status_code == 200, response.content
    return response.json()


def issued_order(client, quantity: int = 1, item_id: str = "DAY-ADULT"):
    placed = place(client, order_body(items=[line(item_id, quantity=quantity)]))
    assets_of(placed).update(visit_date=DAY)
    return placed


# ---- GET /gate/sync ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_sync_gives_redeemed_then_voided_codes_since_the_cursor_and_nothing_twice(client, catalog):
    _, token = create_gate_device(name="Offline 1")
    gate = gate_client(token)
    used, cancelled = issued_order(client), issued_order(client, quantity=2)
    start = sync(gate)
    assert start["voided"] == [] and start["redeemed"] == []

    redeemed_asset = assets_of(used).get()
    assert scan(gate, redeemed_asset.asset_number)["result"] == "accepted"
    after_scan = sync(gate, start["next"])
    assert after_scan["redeemed"] == [{"assetNumber": redeemed_asset.asset_number, "at": rfc(NOON)}]
    assert after_scan["voided"] == []

    assert client.delete(f"/channelManager/{cancelled.order_id}").status_code == 200
    after_cancel = sync(gate, after_scan["next"])
    assert sorted(after_cancel["voided"]) == sorted(assets_of(cancelled).values_list("asset_number", flat=True))
    assert after_cancel["redeemed"] == []

    caught_up = sync(gate, after_cancel["next"])
    assert caught_up == {"voided": [], "redeemed": [], "next": after_cancel["next"]}


@pytest.mark.django_db(transaction=True)
def test_a_deleted_drafts_assets_stay_voided_in_the_feed(client, catalog):
    _, token = create_gate_device(name="Offline 1")
    draft = place(client, order_body(paymentReference=None))
    numbers = list(assets_of(draft).values_list("asset_number", flat=True))
    assert client.delete(f"/channelManager/{draft.order_id}").status_code == 204
    assert not Asset.objects.filter(asset_number__in=numbers).exists()
    assert sync(gate_client(token))["voided"] == numbers


@pytest.mark.django_db(transaction=True)
def test_a_device_limited_to_some_items_syncs_only_theirs(client, catalog):
    _, all_token = create_gate_device(name="Main gate")
    _, show_token = create_gate_device(name="Show door", items=[catalog["SHOW-EVENING"]])
    day = issued_order(client)
    placed = place(client, order_body(items=[line("SHOW-EVENING", visitTime="19:30")]))
    show = assets_of(placed).get()
    assert client.delete(f"/channelManager/{day.order_id}").status_code == 200
    assert client.delete(f"/channelManager/{placed.order_id}").status_code == 200
    assert sync(gate_client(show_token))["voided"] == [show.asset_number]
    assert len(sync(gate_client(all_token))["voided"]) == 2


@pytest.mark.django_db(transaction=True)
def test_a_day_offline_catches_up_in_one_call_per_ten_thousand_changes(catalog):
    _, token = create_gate_device(name="Offline 1")
    gate = gate_client(token)
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    item = catalog["DAY-ADULT"]
    GateChange.objects.bulk_create(
        GateChange(kind=GateChangeKind.REDEEMED, asset_number=f"A{n:09d}", item=item, at=at) for n in range(10_001)
    )
    started = time.perf_counter()
    first = sync(gate)
    seconds = time.perf_counter() - started
    assert len(first["redeemed"]) == changes.SYNC_PAGE_SIZE == 10_000
    assert first["redeemed"][0]["assetNumber"] == "A000000000"
    second = sync(gate, first["next"])
    assert second["redeemed"] == [{"assetNumber": "A000010000", "at": "2026-01-01T00:00:00Z"}]
    assert sync(gate, second["next"])["next"] == second["next"]
    print(f"\nsync of 10,000 changes: {seconds * 1000:.0f} ms")


@pytest.mark.django_db(transaction=True)
def test_a_change_committed_late_is_held_back_never_skipped(client, catalog):
    """T1 redeems A and stays open; B is redeemed and committed after it (a later id, committed
    first). A feed cursored on ids would hand out B, move past A's id, and never give A. Ours
    holds B back until T1 has ended, then gives both."""
    if connection.vendor != "postgresql":
        pytest.fail("this test needs PostgreSQL (make test provides it)")
    _, token = create_gate_device(name="Offline 1")
    gate = gate_client(token)
    # Two orders: the first use of one order waits for another scan of the same order to end.
    first, second = assets_of(issued_order(client)).get(), assets_of(issued_order(client)).get()
    start = sync(gate)["next"]
    written, finish = threading.Event(), threading.Event()
    device = create_gate_device(name="Slow gate")[0]
    device.admitted_item_ids = frozenset()

    def slow_scan() -> None:
        try:
            with transaction.atomic():
                services.scan_code(device=device, code=first.asset_number, scanned_at=NOON)
                written.set()
                finish.wait(timeout=30)
        finally:
            connection.close()

    thread = threading.Thread(target=slow_scan)
    thread.start()
    try:
        assert written.wait(timeout=30)
        assert scan(gate, second.asset_number)["result"] == "accepted"  # committed first
        assert GateChange.objects.filter(asset_number=second.asset_number).exists()
        assert not GateChange.objects.filter(asset_number=first.asset_number).exists()  # not committed yet
        while_open = sync(gate, start)
        assert while_open["redeemed"] == []  # B waits behind the open transaction
    finally:
        finish.set()
        thread.join()
    late, early = (GateChange.objects.get(asset_number=a.asset_number) for a in (first, second))
    assert late.id < early.id  # A took the earlier id and committed last
    after = sync(gate, while_open["next"])
    assert [r["assetNumber"] for r in after["redeemed"]] == [first.asset_number, second.asset_number]


@pytest.mark.django_db(transaction=True)
def test_a_redemption_moved_to_an_earlier_scan_comes_again_with_its_new_time(client, catalog):
    _, late_token = create_gate_device(name="Late")
    _, early_token = create_gate_device(name="Early")
    asset = assets_of(issued_order(client)).get()
    upload(gate_client(late_token), (asset.asset_number, NOON))
    upload(gate_client(early_token), (asset.asset_number, NOON - dt.timedelta(minutes=30)))
    assert sync(gate_client(late_token))["redeemed"] == [
        {"assetNumber": asset.asset_number, "at": rfc(NOON)},
        {"assetNumber": asset.asset_number, "at": rfc(NOON - dt.timedelta(minutes=30))},
    ]


@pytest.mark.parametrize("cursor", [
    "not-a-cursor", "%%%", encode_cursor("orders", 5), encode_cursor("gate-sync", 1, -2),
    encode_cursor("gate-sync", 1, 2**63),
])
def test_a_bad_cursor_is_400_validation_error(gate, catalog, cursor):
    body = assert_problem(gate.get("/gate/sync", {"cursor": cursor}), 400, "validation_error")
    assert body["errors"] == [{"field": "cursor", "message": "Not a cursor this API returned."}]


def test_sync_needs_a_device_token(anon_client, client, catalog):
    assert_problem(anon_client.get("/gate/sync"), 401, "not_authenticated")
    assert_problem(client.get("/gate/sync"), 403, "partner_key_refused")


# ---- POST /gate/scans/batch --------------------------------------------------------------------


def test_a_batch_answers_one_result_per_scan_in_the_order_uploaded(gate, order):
    day, show = ticket(order, "DAY-ADULT"), ticket(order, "SHOW-EVENING")
    results = upload(gate, ("NOT-A-CODE", NOON), (day.asset_number, NOON), (show.asset_number, NOON),
                     (day.asset_number, NOON + dt.timedelta(minutes=1)))
    assert [(r["result"], r["reason"]) for r in results] == [
        ("rejected", "unknown_code"), ("accepted", None), ("rejected", "not_valid_yet"),
        ("rejected", "already_redeemed"),
    ]
    assert results[1] == {
        "result": "accepted", "reason": None, "redeemedAt": rfc(NOON), "previousRedemption": None, "conflict": None,
        "asset": {"assetNumber": day.asset_number, "assetType": "ticket", "itemId": "DAY-ADULT", "name": day.name,
                  "visitDate": DAY.isoformat(), "visitTime": None, "admits": 1},
    }
    assert GateScan.objects.count() == 4


def test_a_batch_checks_each_scan_at_its_scanned_at(gate, order):
    day = ticket(order, "DAY-ADULT")
    results = upload(gate, (day.asset_number, NOON - dt.timedelta(days=1)), (day.asset_number, NOON))
    assert [r["reason"] for r in results] == ["wrong_date", None]


def test_within_one_batch_the_earliest_scan_of_an_asset_wins_whatever_its_place(gate, order):
    day = ticket(order, "DAY-ADULT")
    results = upload(gate, (day.asset_number, NOON + dt.timedelta(minutes=5)), (day.asset_number, NOON))
    assert [r["result"] for r in results] == ["rejected", "accepted"]
    assert results[0]["previousRedemption"]["at"] == rfc(NOON)


@pytest.mark.parametrize("earlier_uploads_first", [True, False])
def test_two_devices_offline_the_earliest_scanned_at_wins_whoever_uploads_first(order, catalog, earlier_uploads_first):
    early_device, early_token = create_gate_device(name="North")
    late_device, late_token = create_gate_device(name="South")
    asset = ticket(order, "DAY-ADULT")
    early = (gate_client(early_token), (asset.asset_number, NOON))
    late = (gate_client(late_token), (asset.asset_number, NOON + dt.timedelta(minutes=10)))
    first, second = (early, late) if earlier_uploads_first else (late, early)
    (first_result,) = upload(first[0], first[1])
    (second_result,) = upload(second[0], second[1])
    asset.refresh_from_db()
    assert asset.redeemed_at == NOON and asset.redeemed_by == early_device
    if earlier_uploads_first:
        assert first_result["result"] == "accepted" and first_result["conflict"] is None
        assert second_result["reason"] == "already_redeemed"
        assert second_result["previousRedemption"] == {"at": rfc(NOON), "deviceId": str(early_device.device_id)}
        assert not GateScan.objects.filter(superseded_by__isnull=False).exists()
    else:
        assert first_result["result"] == "accepted"
        assert second_result["result"] == "accepted" and second_result["redeemedAt"] == rfc(NOON)
        assert second_result["conflict"] == {
            "at": rfc(NOON + dt.timedelta(minutes=10)), "deviceId": str(late_device.device_id)
        }
        superseded = GateScan.objects.get(device=late_device)
        assert superseded.superseded_by == GateScan.objects.get(device=early_device)


def test_an_earlier_offline_scan_also_takes_over_an_online_redemption(gate, device_and_token, order, catalog):
    asset = ticket(order, "DAY-ADULT")
    scan(gate, asset.asset_number, at=NOON)
    offline_device, token = create_gate_device(name="Offline")
    (result,) = upload(gate_client(token), (asset.asset_number, NOON - dt.timedelta(minutes=1)))
    assert result["conflict"] == {"at": rfc(NOON), "deviceId": str(device_and_token[0].device_id)}
    assert GateScan.objects.get(device=device_and_token[0]).superseded_by.device == offline_device


def test_an_online_scan_never_moves_a_redemption(gate, order, catalog):
    asset = ticket(order, "DAY-ADULT")
    scan(gate, asset.asset_number, at=NOON)
    _, token = create_gate_device(name="Another")
    earlier = NOON - dt.timedelta(minutes=1)
    assert scan(gate_client(token), asset.asset_number, at=earlier)["reason"] == "already_redeemed"


def test_a_wallet_reference_uploaded_offline_takes_an_unused_ticket_before_moving_a_used_one(gate, order):
    package_wallet = Wallet.objects.filter(order_link__order=order, assets__item_code="SHOW-EVENING").get()
    package_wallet.assets.filter(item_code="SHOW-EVENING").update(visit_time=dt.time(12, 0))
    code = package_wallet.wallet_reference_number
    online = scan(gate, code, at=NOON)
    (offline,) = upload(gate, (code, NOON - dt.timedelta(minutes=5)))
    assert online["asset"]["itemId"] == "DAY-ADULT"
    assert offline["result"] == "accepted" and offline["conflict"] is None
    assert offline["asset"]["itemId"] == "SHOW-EVENING"


def test_uploading_the_same_batch_again_answers_as_the_first_time_and_moves_nothing(gate, order):
    day = ticket(order, "DAY-ADULT")
    assert upload(gate, (day.asset_number, NOON))[0]["result"] == "accepted"
    again = upload(gate, (day.asset_number, NOON))
    assert again[0]["result"] == "accepted" and again[0]["conflict"] is None
    assert GateChange.objects.filter(asset_number=day.asset_number).count() == 1


@pytest.mark.parametrize(("body", "field"), [
    ({"scans": []}, "scans"),
    ({}, "scans"),
    ({"scans": [{"code": "X"}]}, "scans[0].scannedAt"),
    ({"scans": [{"code": "X", "scannedAt": "yesterday"}]}, "scans[0].scannedAt"),
    ({"scans": [{"code": 7, "scannedAt": "2026-01-01T00:00:00Z"}]}, "scans[0].code"),
    ({"scans": "X"}, "scans"),
])
def test_a_malformed_batch_is_400_validation_error(gate, catalog, body, field):
    problem = assert_problem(gate.post("/gate/scans/batch", body, format="json"), 400, "validation_error")
    assert field in [error["field"] for error in problem["errors"]]
    assert not GateScan.objects.exists()


def test_a_batch_holds_at_most_500_scans(gate, order):
    code = ticket(order, "DAY-ADULT").asset_number
    scans = [{"code": code, "scannedAt": rfc(NOON)}] * 501
    problem = assert_problem(gate.post("/gate/scans/batch", {"scans": scans}, format="json"), 400, "validation_error")
    assert problem["errors"][0]["field"] == "scans"
    assert not GateScan.objects.exists()


def test_a_batch_of_500_is_answered_in_full(gate, order):
    codes = [f"UNKNOWN-{n}" for n in range(499)] + [ticket(order, "DAY-ADULT").asset_number]
    started = time.perf_counter()
    results = upload(gate, *[(code, NOON) for code in codes])
    print(f"\nbatch of 500 scans: {(time.perf_counter() - started) * 1000:.0f} ms")
    assert len(results) == 500 and results[-1]["result"] == "accepted"
    assert {r["reason"] for r in results[:-1]} == {"unknown_code"}


def test_a_scan_from_the_future_in_a_batch_is_400_naming_it(gate, order):
    future = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    problem = assert_problem(gate.post("/gate/scans/batch", {"scans": [
        {"code": "X", "scannedAt": rfc(NOON)}, {"code": "Y", "scannedAt": rfc(future)}]}, format="json"),
        400, "validation_error")
    assert problem["errors"] == [{"field": "scans[1].scannedAt", "message": "Must not be in the future."}]


# ---- admission windows per item ----------------------------------------------------------------


def timed_show(order, at: dt.time = dt.time(15, 0)) -> Asset:
    show = ticket(order, "SHOW-EVENING")
    Asset.objects.filter(pk=show.pk).update(visit_time=at)
    return show


@pytest.mark.parametrize(("minutes", "reason"), [
    (-16, "not_valid_yet"), (-15, None), (90, None), (91, "outside_slot"),
])
def test_a_timed_ticket_admits_within_its_items_window(gate, order, catalog, minutes, reason):
    Item.objects.filter(item_id="SHOW-EVENING").update(admit_before_minutes=15, admit_after_minutes=90)
    clear_catalog_cache()
    show = timed_show(order)
    at = dt.datetime.combine(DAY, dt.time(15, 0), tzinfo=VENUE_TZ) + dt.timedelta(minutes=minutes)
    body = scan(gate, show.asset_number, at=at)
    assert body["reason"] == reason


def test_without_a_window_of_its_own_a_timed_item_admits_an_hour_either_side(catalog):
    assert (catalog["SHOW-EVENING"].admit_before_minutes, catalog["SHOW-EVENING"].admit_after_minutes) == (60, 60)


def catalog_file(**extra) -> str:
    import json

    item = {"itemId": "LATE-SHOW", "name": "Late show", "type": "ticket", "price": "10.00",
            "timeSlots": [{"time": "22:00", "capacity": 10}], **extra}
    return json.dumps({"items": [item]})


def test_the_catalog_file_sets_an_items_admission_window(db):
    load_catalog(text=catalog_file(admitBeforeMinutes=30, admitAfterMinutes=0))
    item = Item.objects.get(item_id="LATE-SHOW")
    assert (item.admit_before_minutes, item.admit_after_minutes) == (30, 0)
    load_catalog(text=catalog_file())
    item.refresh_from_db()
    assert (item.admit_before_minutes, item.admit_after_minutes) == (60, 60)


@pytest.mark.parametrize("value", [-1, 1441, "30", 1.5, True])
def test_an_admission_window_must_be_whole_minutes_up_to_a_day(db, value):
    with pytest.raises(CatalogInvalid) as refused:
        load_catalog(text=catalog_file(admitBeforeMinutes=value))
    assert refused.value.problems == [
        "items[0].admitBeforeMinutes: must be a whole number of minutes from 0 to 1440"
    ]


def test_the_scan_log_lists_superseded_scans_as_conflicts(admin_client, order, catalog):
    asset = ticket(order, "DAY-ADULT")
    late_device, late_token = create_gate_device(name="Late")
    upload(gate_client(late_token), (asset.asset_number, NOON))
    upload(gate_client(create_gate_device(name="Early")[1]), (asset.asset_number, NOON - dt.timedelta(minutes=1)))
    response = admin_client.get(reverse("admin:wallets_gatescan_changelist"), {"superseded_by__isempty": "0"})
    assert response.status_code == 200
    assert [scan.device for scan in response.context["cl"].result_list] == [late_device]

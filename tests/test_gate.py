"""Gate admission, online (API.md, "Gate admission"): devices, POST /gate/scans, exactly once,
and what partners see of it (redeemedAt, deleteOrder 409 already_redeemed)."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse
from rest_framework.test import APIClient

from channel_manager.kernel.models import IdempotencyRecord
from channel_manager.orders.issuance import issue_order
from channel_manager.orders.models import Order, OrderStatus
from tests.payloads import contract_example_body, line, order_body
from tests.test_api_auth import assert_problem
from wallets.gate.devices import create_gate_device, revoke_gate_device
from wallets.models import Asset, GateDevice, GateScan, Wallet, WalletValidity

pytestmark = pytest.mark.django_db

VENUE_TZ = ZoneInfo("Europe/Amsterdam")  # tests.factories.VenueFactory
# Scans happen at a fixed instant in the past (a device may report when it scanned); the tests
# move the tickets' visit day to it rather than the clock.
DAY = dt.date.today() - dt.timedelta(days=5)
NOON = dt.datetime.combine(DAY, dt.time(12, 0), tzinfo=VENUE_TZ)


def rfc(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def gate_client(token: str) -> APIClient:
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return c


@pytest.fixture
def device_and_token(catalog) -> tuple[GateDevice, str]:
    return create_gate_device(name="North entrance 1")


@pytest.fixture
def gate(device_and_token) -> APIClient:
    return gate_client(device_and_token[1])


def scan(gate: APIClient, code: str, at: dt.datetime | None = NOON) -> dict:
    body = {"code": code} if at is None else {"code": code, "scannedAt": rfc(at)}
    response = gate.post("/gate/scans", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def place(client, body: dict) -> Order:
    response = client.post("/channelManager", body, format="json")
    assert response.status_code == 202, response.content
    order = Order.objects.get(order_id=response.json()["orderId"])
    issue_order(order_pk=order.pk)
    order.refresh_from_db()
    return order


def assets_of(order: Order):
    return Asset.objects.filter(wallet__order_link__order=order).order_by("wallet_id", "position")


@pytest.fixture
def order(client, catalog) -> Order:
    """The contract's example order, Issued, its visit day moved to DAY."""
    placed = place(client, contract_example_body())
    assert placed.status == OrderStatus.ISSUED
    assets_of(placed).update(visit_date=DAY)
    return placed


def ticket(order: Order, item_id: str) -> Asset:
    return assets_of(order).filter(item_code=item_id, asset_type="ticket").first()


# ---- accepted, then already redeemed --------------------------------------------------------


def test_an_asset_number_is_accepted_once_then_already_redeemed_with_the_previous_redemption(
    gate, device_and_token, order
):
    asset = ticket(order, "DAY-ADULT")
    first = scan(gate, asset.asset_number)
    assert first == {
        "result": "accepted", "reason": None, "redeemedAt": rfc(NOON), "previousRedemption": None,
        "asset": {"assetNumber": asset.asset_number, "assetType": "ticket", "itemId": "DAY-ADULT",
                  "name": asset.name, "visitDate": DAY.isoformat(), "visitTime": None, "admits": 1},
    }
    again = scan(gate, asset.asset_number, at=NOON + dt.timedelta(minutes=5))
    assert again["result"] == "rejected" and again["reason"] == "already_redeemed"
    assert again["redeemedAt"] is None
    assert again["previousRedemption"] == {"at": rfc(NOON), "deviceId": str(device_and_token[0].device_id)}
    asset.refresh_from_db()
    assert asset.redeemed_at == NOON and asset.redeemed_by == device_and_token[0]


def test_a_hand_typed_lower_case_asset_number_is_the_same_code(gate, order):
    assert scan(gate, ticket(order, "DAY-ADULT").asset_number.lower())["result"] == "accepted"


def test_a_wallet_reference_redeems_its_first_unused_ticket_then_the_next(gate, order):
    package_wallet = Wallet.objects.filter(order_link__order=order, assets__item_code="SHOW-EVENING").get()
    Asset.objects.filter(wallet=package_wallet, item_code="SHOW-EVENING").update(visit_time=dt.time(12, 30))
    tickets = [a.asset_number for a in package_wallet.assets.filter(asset_type="ticket").order_by("position")]
    assert len(tickets) == 2
    first = scan(gate, package_wallet.wallet_reference_number)
    second = scan(gate, package_wallet.wallet_reference_number)
    third = scan(gate, package_wallet.wallet_reference_number)
    assert [first["asset"]["assetNumber"], second["asset"]["assetNumber"]] == tickets
    assert first["result"] == second["result"] == "accepted"
    assert third["result"] == "rejected" and third["reason"] == "already_redeemed"


def test_an_external_reference_number_admits_its_wallet(gate, order):
    body = scan(gate, "ACME-T-2")
    assert body["result"] == "accepted"
    wallet = Wallet.objects.get(external_reference_number="ACME-T-2")
    assert body["asset"]["assetNumber"] == wallet.assets.get().asset_number


def test_a_wallet_reference_skips_tickets_this_device_does_not_admit(order, catalog):
    _, token = create_gate_device(name="Show door", items=[catalog["SHOW-EVENING"]])
    package_wallet = Wallet.objects.filter(order_link__order=order, assets__item_code="SHOW-EVENING").get()
    package_wallet.assets.filter(item_code="SHOW-EVENING").update(visit_time=dt.time(12, 0))
    body = scan(gate_client(token), package_wallet.wallet_reference_number)
    assert body["result"] == "accepted" and body["asset"]["itemId"] == "SHOW-EVENING"


def test_a_group_ticket_admits_its_whole_group_in_one_scan(gate, order):
    group = ticket(order, "FAMILY-GROUP")
    body = scan(gate, "ACME-G-1")
    assert body["result"] == "accepted"
    assert body["asset"]["assetNumber"] == group.asset_number and body["asset"]["admits"] == 4
    assert scan(gate, "ACME-G-1")["reason"] == "already_redeemed"


def test_a_scan_without_scanned_at_is_now(gate, order):
    asset = ticket(order, "DAY-ADULT")
    Asset.objects.filter(pk=asset.pk).update(visit_date=dt.datetime.now(VENUE_TZ).date())
    body = scan(gate, asset.asset_number, at=None)
    assert body["result"] == "accepted" and body["redeemedAt"]


# ---- every rejection reason ------------------------------------------------------------------


def rejected(body: dict, reason: str) -> dict:
    assert body["result"] == "rejected", body
    assert body["reason"] == reason, body
    assert body["redeemedAt"] is None
    return body


def test_an_unknown_code_is_unknown_code(gate, order):
    body = rejected(scan(gate, "NOT-A-CODE"), "unknown_code")
    assert body["asset"] is None and body["previousRedemption"] is None


def test_a_drafts_ticket_is_not_valid_yet(client, gate, catalog):
    draft = place(client, order_body(paymentReference=None))
    assert draft.status == OrderStatus.DRAFT
    asset = assets_of(draft).get()
    Asset.objects.filter(pk=asset.pk).update(visit_date=DAY)
    rejected(scan(gate, asset.asset_number), "not_valid_yet")


def test_a_cancelled_orders_ticket_is_void(client, gate, order):
    asset = ticket(order, "DAY-ADULT")
    assert client.delete(f"/channelManager/{order.order_id}").status_code == 200
    rejected(scan(gate, asset.asset_number), "void")
    rejected(scan(gate, "ACME-T-1"), "void")


def test_a_ticket_for_another_day_is_wrong_date(gate, order):
    asset = ticket(order, "DAY-ADULT")
    rejected(scan(gate, asset.asset_number, at=NOON - dt.timedelta(days=1)), "wrong_date")
    rejected(scan(gate, asset.asset_number, at=NOON + dt.timedelta(days=1)), "wrong_date")


def test_the_venues_time_zone_decides_the_day(gate, order):
    """00:30 in Amsterdam is still the previous day in UTC: the venue's day counts."""
    asset = ticket(order, "DAY-ADULT")
    just_after_midnight = dt.datetime.combine(DAY, dt.time(0, 30), tzinfo=VENUE_TZ)
    assert just_after_midnight.astimezone(dt.UTC).date() != DAY
    assert scan(gate, asset.asset_number, at=just_after_midnight)["result"] == "accepted"


@pytest.mark.parametrize(("minutes", "reason"), [(-61, "not_valid_yet"), (-60, None), (60, None), (61, "outside_slot")])
def test_a_timed_ticket_admits_from_an_hour_before_to_an_hour_after_its_time(gate, order, minutes, reason):
    show = ticket(order, "SHOW-EVENING")
    Asset.objects.filter(pk=show.pk).update(visit_time=dt.time(15, 0))
    at = dt.datetime.combine(DAY, dt.time(15, 0), tzinfo=VENUE_TZ) + dt.timedelta(minutes=minutes)
    body = scan(gate, show.asset_number, at=at)
    if reason is None:
        assert body["result"] == "accepted" and body["asset"]["visitTime"] == "15:00"
    else:
        rejected(body, reason)


def test_a_coupon_is_valid_from_its_visit_date_until_valid_until(gate, order):
    coupon = assets_of(order).get(asset_type="coupon")
    Asset.objects.filter(pk=coupon.pk).update(valid_until=DAY + dt.timedelta(days=1))
    rejected(scan(gate, coupon.asset_number, at=NOON - dt.timedelta(days=1)), "wrong_date")
    rejected(scan(gate, coupon.asset_number, at=NOON + dt.timedelta(days=2)), "wrong_date")
    body = scan(gate, coupon.asset_number, at=NOON + dt.timedelta(days=1))
    assert body["result"] == "accepted" and body["asset"]["assetType"] == "coupon"


def test_an_item_the_device_does_not_admit_is_not_admitted_here(order, catalog):
    _, token = create_gate_device(name="Show door", items=[catalog["SHOW-EVENING"]])
    rejected(scan(gate_client(token), ticket(order, "DAY-ADULT").asset_number), "not_admitted_here")


def test_a_refused_scan_redeems_nothing(gate, order):
    asset = ticket(order, "DAY-ADULT")
    scan(gate, asset.asset_number, at=NOON + dt.timedelta(days=1))
    assert scan(gate, asset.asset_number)["result"] == "accepted"


# ---- the scan log ----------------------------------------------------------------------------


def test_every_scan_is_logged_with_device_time_result_and_reason(gate, device_and_token, order):
    asset = ticket(order, "DAY-ADULT")
    scan(gate, asset.asset_number)
    scan(gate, asset.asset_number)
    scan(gate, "X" * 500)
    log = list(GateScan.objects.order_by("id").values_list("device", "scanned_at", "result", "reason", "asset", "code"))
    device = device_and_token[0].pk
    assert log == [
        (device, NOON, "accepted", None, asset.pk, asset.asset_number),
        (device, NOON, "rejected", "already_redeemed", asset.pk, asset.asset_number),
        (device, NOON, "rejected", "unknown_code", None, "X" * 200),
    ]


# ---- malformed requests ---------------------------------------------------------------------


@pytest.mark.parametrize("body", [
    {}, {"code": 12}, {"code": "A", "scannedAt": "yesterday"}, {"code": "A", "scannedAt": "2026-01-01T10:00:00"}, [],
    # A body of a code alone skips the serializer (wallets.gate.api._plain_scan) only when valid:
    {"code": ""}, {"code": None}, {"code": True}, {"code": "A" * 4001}, {"code": "A\x00B"},
])
def test_a_malformed_body_is_400_validation_error(gate, order, body):
    assert_problem(gate.post("/gate/scans", body, format="json"), 400, "validation_error")
    assert not GateScan.objects.exists()


def test_a_scan_from_the_future_is_400(gate, order):
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    assert_problem(gate.post("/gate/scans", {"code": "A", "scannedAt": rfc(later)}, format="json"),
                   400, "validation_error")


def test_broken_json_is_400_problem(gate, order):
    response = gate.post("/gate/scans", data=b"{not json", content_type="application/json")
    assert response.status_code == 400 and response["Content-Type"] == "application/problem+json"


def test_an_idempotency_key_keeps_no_record_at_the_gate(gate, order):
    asset = ticket(order, "DAY-ADULT")
    body = {"code": asset.asset_number, "scannedAt": rfc(NOON)}
    first = gate.post("/gate/scans", body, format="json", HTTP_IDEMPOTENCY_KEY="k1").json()
    second = gate.post("/gate/scans", body, format="json", HTTP_IDEMPOTENCY_KEY="k1").json()
    assert (first["result"], second["reason"]) == ("accepted", "already_redeemed")
    assert not IdempotencyRecord.objects.exists()


# ---- device authentication ------------------------------------------------------------------


def test_no_token_is_401(anon_client, catalog):
    response = anon_client.post("/gate/scans", {"code": "A"}, format="json")
    assert_problem(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"]


def test_a_revoked_device_token_is_401(device_and_token, gate, order):
    revoke_gate_device(device=device_and_token[0])
    assert_problem(gate.post("/gate/scans", {"code": "A"}, format="json"), 401, "not_authenticated")


def test_a_partner_api_key_is_refused_at_the_gate_with_403(client, catalog):
    assert_problem(client.post("/gate/scans", {"code": "A"}, format="json"), 403, "partner_key_refused")


def test_a_device_token_is_refused_on_the_partner_api(gate, order):
    assert_problem(gate.get(f"/channelManager/{order.order_id}"), 401, "not_authenticated")
    assert_problem(gate.post("/channelManager", order_body(), format="json"), 401, "not_authenticated")


def test_a_device_token_is_redacted_from_log_lines(device_and_token):
    from channel_manager.kernel.logs import redact

    token = device_and_token[1]
    assert token not in redact(f"rejected token {token} at the gate")


def test_the_token_is_stored_only_as_a_digest(device_and_token):
    device, token = device_and_token
    assert token.startswith("cmg_") and device.prefix == token[:10]
    assert token not in json.dumps(list(GateDevice.objects.values("name", "prefix", "digest")))


# ---- create_gate_device ----------------------------------------------------------------------


def test_create_gate_device_json_prints_one_line_with_the_device_id_and_token(catalog):
    out = StringIO()
    call_command("create_gate_device", "South gate", "--items", "SHOW-EVENING,DAY-ADULT", "--json", stdout=out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    printed = json.loads(lines[0])
    assert set(printed) == {"deviceId", "token"}
    device = GateDevice.objects.get(device_id=printed["deviceId"])
    assert device.name == "South gate"
    assert sorted(device.items.values_list("item_id", flat=True)) == ["DAY-ADULT", "SHOW-EVENING"]
    response = gate_client(printed["token"]).post("/gate/scans", {"code": "NOPE"}, format="json")
    assert response.json()["reason"] == "unknown_code"


def test_create_gate_device_refuses_an_unknown_item(catalog):
    with pytest.raises(CommandError, match="NOPE"):
        call_command("create_gate_device", "South gate", "--items", "NOPE", stdout=StringIO())
    assert not GateDevice.objects.exists()


# ---- partners see it -------------------------------------------------------------------------


def test_get_order_shows_redeemed_at_on_every_asset(client, gate, order):
    assets = lambda: [a for i in client.get(f"/channelManager/{order.order_id}").json()["items"]  # noqa: E731
                      for w in i["wallets"] for a in w["assets"]]
    before = assets()
    assert before and all(a["redeemedAt"] is None for a in before)
    used = ticket(order, "DAY-ADULT").asset_number
    scan(gate, used)
    after = {a["assetNumber"]: a["redeemedAt"] for a in assets()}
    assert after.pop(used) == rfc(NOON)
    assert set(after.values()) == {None}


def test_get_order_with_redeemed_assets_costs_no_more_queries(client, gate, order, django_assert_max_num_queries):
    with django_assert_max_num_queries(6) as before:
        client.get(f"/channelManager/{order.order_id}")
    queries = len(before.captured_queries)  # read now: the next request resets the query log
    for asset in assets_of(order).filter(asset_type="ticket"):
        scan(gate, asset.asset_number, at=dt.datetime.combine(DAY, asset.visit_time or dt.time(12), tzinfo=VENUE_TZ))
    assert assets_of(order).filter(redeemed_at__isnull=False).count() == 5
    with django_assert_max_num_queries(queries):
        client.get(f"/channelManager/{order.order_id}")


def test_delete_of_an_issued_order_with_a_used_ticket_is_409_already_redeemed(client, gate, order):
    scan(gate, "ACME-T-1")
    body = assert_problem(client.delete(f"/channelManager/{order.order_id}"), 409, "already_redeemed")
    assert body["redeemedAssets"] == 1
    order.refresh_from_db()
    assert order.status == OrderStatus.ISSUED
    assert not Wallet.objects.filter(order_link__order=order).exclude(validity=WalletValidity.VALID).exists()
    assert scan(gate, "ACME-T-2")["result"] == "accepted"


def test_delete_of_an_issued_order_without_used_tickets_still_cancels(client, gate, catalog):
    placed = place(client, order_body(items=[line(quantity=1)]))
    assert client.delete(f"/channelManager/{placed.order_id}").status_code == 200


# ---- exactly once ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_twenty_devices_scanning_one_code_at_once_admit_it_exactly_once(catalog, partner_and_key):
    if connection.vendor != "postgresql":
        pytest.fail("this test needs PostgreSQL (make test provides it)")
    partner_client = gate_client(partner_and_key[1])
    placed = place(partner_client, order_body(items=[line(quantity=1)]))
    asset = assets_of(placed).get()
    Asset.objects.filter(pk=asset.pk).update(visit_date=DAY)
    tokens = [create_gate_device(name=f"Gate {n}")[1] for n in range(20)]
    start = threading.Barrier(20)
    results: list[dict] = []
    lock = threading.Lock()

    def run(token: str) -> None:
        try:
            c = gate_client(token)
            start.wait()
            response = c.post("/gate/scans", {"code": asset.asset_number, "scannedAt": rfc(NOON)}, format="json")
            with lock:
                results.append(response.json())
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(token,)) for token in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 20
    assert sorted(r["result"] for r in results).count("accepted") == 1
    assert {r["reason"] for r in results if r["result"] == "rejected"} == {"already_redeemed"}
    assert GateScan.objects.filter(result="accepted").count() == 1
    assert GateScan.objects.count() == 20


@pytest.mark.django_db(transaction=True)
def test_a_scan_waiting_on_a_cancellation_sees_its_ticket_void(catalog, partner_and_key):
    if connection.vendor != "postgresql":
        pytest.fail("this test needs PostgreSQL (make test provides it)")
    from django.db import transaction

    from wallets.gate.services import assets_redeemed

    placed = place(gate_client(partner_and_key[1]), order_body(items=[line(quantity=1)]))
    asset = assets_of(placed).get()
    Asset.objects.filter(pk=asset.pk).update(visit_date=DAY)
    token = create_gate_device(name="North entrance 1")[1]
    answers: list[dict] = []

    def run() -> None:
        try:
            answers.append(gate_client(token).post(
                "/gate/scans", {"code": asset.asset_number, "scannedAt": rfc(NOON)}, format="json").json())
        finally:
            connection.close()

    scanner = threading.Thread(target=run)
    with transaction.atomic():
        # As a cancellation does: lock the order's assets (none used), then void the wallet.
        assert assets_redeemed(wallet_ids=[asset.wallet_id]) == 0
        scanner.start()
        with connection.cursor() as cursor:
            for _ in range(500):  # until the scan waits for the lock (10 s at most)
                cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")  # live, unlike pg_stat_activity
                if cursor.fetchone()[0]:
                    break
                threading.Event().wait(0.02)
            else:
                pytest.fail("the scan never waited for the cancellation's lock")
        Wallet.objects.filter(pk=asset.wallet_id).update(validity=WalletValidity.VOID, destroyed_at=NOON)
    scanner.join()
    assert [(a["result"], a["reason"]) for a in answers] == [("rejected", "void")]
    assert Asset.objects.get(pk=asset.pk).redeemed_at is None


# ---- the admin -------------------------------------------------------------------------------

TOKEN_RE = re.compile(r'<code class="cm-key"[^>]*>(cmg_[A-Za-z0-9_\-]+)</code>')


def test_registering_a_device_in_the_admin_shows_its_token_once_and_stores_only_its_hash(admin_client, catalog):
    url = reverse("admin:wallets_gatedevice_add")
    assert admin_client.get(url).status_code == 200
    response = admin_client.post(url, {"name": "West gate", "items": [catalog["DAY-ADULT"].pk]})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    raw = TOKEN_RE.findall(response.content.decode())
    assert len(raw) == 1
    device = GateDevice.objects.get(name="West gate")
    assert list(device.items.values_list("item_id", flat=True)) == ["DAY-ADULT"]
    assert device.digest != raw[0] and raw[0].startswith(device.prefix)
    for page in (admin_client.get(reverse("admin:wallets_gatedevice_change", args=[device.pk])),
                 admin_client.get(reverse("admin:wallets_gatedevice_changelist"))):
        html = page.content.decode()
        assert device.prefix in html and raw[0] not in html and device.digest not in html
    assert gate_client(raw[0]).post("/gate/scans", {"code": "NOPE"}, format="json").status_code == 200


def test_revoking_a_device_in_the_admin_refuses_its_token(admin_client, device_and_token, gate):
    device, _ = device_and_token
    admin_client.post(reverse("admin:wallets_gatedevice_changelist"),
                      {"action": "revoke", "_selected_action": [device.pk]})
    device.refresh_from_db()
    assert device.revoked_at is not None
    assert_problem(gate.post("/gate/scans", {"code": "A"}, format="json"), 401, "not_authenticated")


def test_the_scan_log_is_searchable_by_code(admin_client, gate, order):
    asset = ticket(order, "DAY-ADULT")
    scan(gate, asset.asset_number)
    scan(gate, "SOMETHING-ELSE")
    page = admin_client.get(reverse("admin:wallets_gatescan_changelist"), {"q": asset.asset_number})
    html = page.content.decode()
    assert page.status_code == 200 and asset.asset_number in html and "SOMETHING-ELSE" not in html


def test_a_redemption_whose_log_row_fails_is_rolled_back_with_it(device_and_token, order, monkeypatch):
    from wallets.gate import services
    from wallets.models import GateChange

    number = ticket(order, "DAY-ADULT").asset_number

    def failing_log(**kwargs):
        raise RuntimeError("the scan log is unavailable")

    monkeypatch.setattr(services, "_log", failing_log)
    with pytest.raises(RuntimeError):
        services.scan_code(device=device_and_token[0], code=number, scanned_at=NOON)
    assert Asset.objects.get(asset_number=number).redeemed_at is None
    assert not GateChange.objects.filter(asset_number=number).exists()
    monkeypatch.undo()
    assert services.scan_code(device=device_and_token[0], code=number, scanned_at=NOON).reason is None
    assert GateScan.objects.filter(code=number, result="accepted").count() == 1

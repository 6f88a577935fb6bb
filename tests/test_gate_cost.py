"""What a gate scan costs the database: a fixed, small number of statements (bench/README.md,
phase f, measures the same path under load)."""

from __future__ import annotations

import pytest
from django.db import connection
from rest_framework.test import APIClient

from catalog.models import Item
from tests.payloads import contract_example_body
from tests.test_gate import DAY, NOON, assets_of, place, rfc, ticket
from wallets.gate.authentication import device_for_token
from wallets.gate.devices import create_gate_device, revoke_gate_device

pytestmark = pytest.mark.django_db


def require_postgresql() -> None:
    if connection.vendor != "postgresql":
        pytest.fail("the one-statement device lookup is PostgreSQL's; run the tests on PostgreSQL")


def test_a_device_and_the_items_it_admits_are_read_in_one_statement(catalog, django_assert_num_queries):
    require_postgresql()
    items = list(Item.objects.filter(item_id__in=["DAY-ADULT", "SHOW-EVENING"]))
    device, token = create_gate_device(name="South entrance", items=items)
    with django_assert_num_queries(1):
        found = device_for_token(token)
    assert (found.pk, found.device_id, found.name, found.prefix, found.created_at, found.revoked_at) == (
        device.pk, device.device_id, device.name, device.prefix, device.created_at, None)
    assert found.admitted_item_ids == frozenset(item.pk for item in items)


def test_a_device_admitting_every_item_has_no_item_limits(catalog):
    device, token = create_gate_device(name="Main gate")
    assert device_for_token(token).admitted_item_ids == frozenset()


def test_a_revoked_device_is_not_found(catalog):
    device, token = create_gate_device(name="Old scanner")
    revoke_gate_device(device=device)
    assert device_for_token(token) is None


def gate_and_order(client):
    placed = place(client, contract_example_body())
    assets_of(placed).update(visit_date=DAY)
    gate = APIClient()
    gate.credentials(HTTP_AUTHORIZATION=f"Bearer {create_gate_device(name='North entrance 1')[1]}")
    return gate, placed


def scan(gate: APIClient, code: str) -> dict:
    response = gate.post("/gate/scans", {"code": code, "scannedAt": rfc(NOON)}, format="json")
    assert response.status_code == 200
    return response.json()


def test_an_accepted_scan_runs_a_fixed_number_of_statements(client, catalog, django_assert_max_num_queries):
    require_postgresql()
    gate, placed = gate_and_order(client)
    first, second = assets_of(placed).filter(item_code="DAY-ADULT", asset_type="ticket")[:2]
    assert scan(gate, first.asset_number)["result"] == "accepted"  # the order's first use: announced
    # The device (1), the code's asset and wallet (1), its lock (1), the conditional UPDATE that
    # also writes the change feed row (1), the order's first-use marker (1, inserting nothing
    # now), the scan log (1), and the redemption's savepoint and release (2).
    with django_assert_max_num_queries(8):
        assert scan(gate, second.asset_number)["result"] == "accepted"


def test_the_first_scan_of_an_order_also_announces_it_in_a_fixed_number_of_statements(
    client, catalog, django_assert_max_num_queries
):
    require_postgresql()
    gate, placed = gate_and_order(client)
    # As any accepted scan (8), plus the order with its lines, wallets and assets (4), the
    # subscriptions and the event (2): ota_cm_order_redeemed.
    number = ticket(placed, "DAY-ADULT").asset_number
    with django_assert_max_num_queries(14):
        assert scan(gate, number)["result"] == "accepted"


def test_an_unknown_code_runs_a_fixed_number_of_statements(client, catalog, django_assert_max_num_queries):
    require_postgresql()
    gate, _ = gate_and_order(client)
    # The device (1), the code looked up as an asset number and as a wallet reference (1), the
    # scan log (1): a refusal needs no transaction.
    with django_assert_max_num_queries(3):
        assert scan(gate, "NO-SUCH-CODE-123")["reason"] == "unknown_code"


def test_an_already_redeemed_scan_runs_a_fixed_number_of_statements(client, catalog, django_assert_max_num_queries):
    require_postgresql()
    gate, placed = gate_and_order(client)
    number = ticket(placed, "DAY-ADULT").asset_number
    scan(gate, number)
    # The device (1), the asset with its wallet and the device that used it (1), the scan log
    # (1): a refusal needs no transaction.
    with django_assert_max_num_queries(3):
        answer = scan(gate, number)
    assert answer["reason"] == "already_redeemed" and answer["previousRedemption"]["deviceId"]


def test_a_wallet_reference_runs_a_fixed_number_of_statements(client, catalog, django_assert_max_num_queries):
    require_postgresql()
    gate, placed = gate_and_order(client)
    scan(gate, ticket(placed, "DAY-ADULT").asset_number)  # the order's first use: announced
    # As an asset number (8): the wallet's tickets come with the same one statement.
    with django_assert_max_num_queries(8):
        assert scan(gate, "ACME-T-2")["result"] == "accepted"


def prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


def test_a_scans_statements_are_prepared_once_per_connection(client, catalog):
    require_postgresql()
    gate, placed = gate_and_order(client)
    first, second = assets_of(placed).filter(item_code="DAY-ADULT", asset_type="ticket")[:2]
    scan(gate, first.asset_number)
    scan(gate, "NO-SUCH-CODE-123")
    prepared = prepared_statements()
    for table in ("wallets_gatedevice", "wallets_gatescan", "wallets_gatechange"):
        assert sum(table in statement for statement in prepared) >= 1, table
    count = len(prepared)
    # The same statements again: PostgreSQL runs what it planned, psycopg prepares nothing new.
    assert scan(gate, second.asset_number)["result"] == "accepted"
    assert scan(gate, "NO-SUCH-CODE-456")["reason"] == "unknown_code"
    assert len(prepared_statements()) == count


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


def test_an_accepted_scan_runs_a_fixed_number_of_statements(client, catalog, django_assert_max_num_queries):
    placed = place(client, contract_example_body())
    assets_of(placed).update(visit_date=DAY)
    gate = APIClient()
    gate.credentials(HTTP_AUTHORIZATION=f"Bearer {create_gate_device(name='North entrance 1')[1]}")
    number = ticket(placed, "DAY-ADULT").asset_number
    # The device (1), the asset and its wallet (1), its lock, the wallet's validity and the
    # conditional UPDATE (3), the scan log (1), and the transaction's savepoint and release (2).
    with django_assert_max_num_queries(8):
        response = gate.post("/gate/scans", {"code": number, "scannedAt": rfc(NOON)}, format="json")
    assert response.status_code == 200 and response.json()["result"] == "accepted"

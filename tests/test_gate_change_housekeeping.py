"""Housekeeping of the gate's change feed (channel_manager.ops.housekeeping.prune_gate_changes):
a change goes once it is older than GATE_CHANGES_RETENTION_DAYS and its code can no longer be
used; a change of a code still usable stays whatever its age, so a device syncing from no
cursor is complete and an old cursor stays valid. Test-data pruning leaves the feed whole."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from catalog.selectors import venue_today
from channel_manager.kernel import partners
from channel_manager.ops import housekeeping
from tests.payloads import line, order_body
from tests.test_gate import assets_of, gate_client, place
from tests.test_gate_offline import sync
from wallets.gate.devices import create_gate_device
from wallets.models import Asset, GateChange, GateChangeKind

pytestmark = pytest.mark.django_db

LONG_AGO = dt.timedelta(days=31)


def issued_asset(client, visit_date: dt.date, item_id: str = "DAY-ADULT") -> Asset:
    order = place(client, order_body(items=[line(item_id, 1)]))
    asset = assets_of(order).first()
    Asset.objects.filter(pk=asset.pk).update(visit_date=visit_date)
    return asset


def change(asset_number: str, item, *, age: dt.timedelta, kind=GateChangeKind.VOIDED) -> GateChange:
    return GateChange.objects.create(kind=kind, asset_number=asset_number, item=item, at=timezone.now() - age)


def test_an_old_change_of_a_code_past_its_day_goes(client, catalog):
    asset = issued_asset(client, venue_today() - dt.timedelta(days=40))
    change(asset.asset_number, catalog["DAY-ADULT"], age=LONG_AGO, kind=GateChangeKind.REDEEMED)
    assert housekeeping.prune_gate_changes() == 1
    assert not GateChange.objects.exists()


def test_a_change_younger_than_the_retention_stays_even_when_its_code_is_past(client, catalog):
    asset = issued_asset(client, venue_today() - dt.timedelta(days=40))
    change(asset.asset_number, catalog["DAY-ADULT"], age=dt.timedelta(days=29))
    assert housekeeping.prune_gate_changes() == 0
    assert GateChange.objects.count() == 1


def test_an_old_change_of_a_code_still_usable_stays(client, catalog):
    """A ticket for a date months ahead, cancelled long ago: a device starting afresh must still
    learn that it is void, or it would admit it offline."""
    future = issued_asset(client, venue_today() + dt.timedelta(days=120))
    yesterday = issued_asset(client, venue_today() - dt.timedelta(days=1))  # a day's margin for clocks
    for asset in (future, yesterday):
        change(asset.asset_number, catalog["DAY-ADULT"], age=dt.timedelta(days=200))
    assert housekeeping.prune_gate_changes() == 0


def test_a_coupon_counts_until_its_valid_until(client, catalog):
    order = place(client, order_body(items=[line("PARK-AND-SHOW", 1, visitTime="19:30")]))
    coupon = assets_of(order).get(asset_type="coupon")
    Asset.objects.filter(pk=coupon.pk).update(visit_date=venue_today() - dt.timedelta(days=60),
                                              valid_until=venue_today() + dt.timedelta(days=30))
    change(coupon.asset_number, catalog["PARK-AND-SHOW"], age=LONG_AGO)
    assert housekeeping.prune_gate_changes() == 0
    Asset.objects.filter(pk=coupon.pk).update(valid_until=venue_today() - dt.timedelta(days=5))
    assert housekeeping.prune_gate_changes() == 1


def test_an_old_change_of_an_asset_that_is_gone_goes(catalog):
    change("GONE00000000", catalog["DAY-ADULT"], age=LONG_AGO)
    assert housekeeping.prune_gate_changes() == 1


def test_the_retention_is_a_setting(client, catalog, settings):
    asset = issued_asset(client, venue_today() - dt.timedelta(days=40))
    change(asset.asset_number, catalog["DAY-ADULT"], age=dt.timedelta(days=3))
    settings.GATE_CHANGES_RETENTION_DAYS = 2
    assert housekeeping.prune_gate_changes() == 1


def test_a_run_prunes_at_most_its_batch(catalog):
    for n in range(5):
        change(f"GONE{n:08d}", catalog["DAY-ADULT"], age=LONG_AGO)
    assert housekeeping.prune_gate_changes(limit=3) == 3
    assert GateChange.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_after_pruning_an_old_cursor_and_no_cursor_both_still_see_every_usable_change(client, catalog):
    gate = gate_client(create_gate_device(name="Offline")[1])
    past = issued_asset(client, venue_today() - dt.timedelta(days=40))
    future_order = place(client, order_body(items=[line("DAY-ADULT", 1)]))
    future = assets_of(future_order).get()
    Asset.objects.filter(pk=future.pk).update(visit_date=venue_today() + dt.timedelta(days=90))
    old_cursor = sync(gate)["next"]  # a device goes offline here

    change(past.asset_number, catalog["DAY-ADULT"], age=LONG_AGO, kind=GateChangeKind.REDEEMED)
    assert client.delete(f"/channelManager/{future_order.order_id}").status_code == 200
    GateChange.objects.filter(asset_number=future.asset_number).update(at=timezone.now() - dt.timedelta(days=60))
    assert housekeeping.prune_gate_changes() == 1  # the past code's change, not the future one's

    for cursor in (old_cursor, None):
        answer = sync(gate, cursor)
        assert (answer["voided"], answer["redeemed"]) == ([future.asset_number], [])


@pytest.mark.django_db(transaction=True)
def test_pruning_test_data_leaves_the_feed_whole(client, partner, catalog, settings):
    _, raw = partners.issue_api_key(partner=partner, label="test", livemode=False)
    test_client = APIClient()
    test_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    gate = gate_client(create_gate_device(name="Offline")[1])
    live_order = place(client, order_body(items=[line("DAY-ADULT", 2)]))
    test_order = place(test_client, order_body(items=[line("DAY-ADULT", 2)]))
    Asset.objects.update(visit_date=venue_today() + dt.timedelta(days=10))
    for api, order in ((client, live_order), (test_client, test_order)):
        assert api.delete(f"/channelManager/{order.order_id}").status_code == 200
    before = sync(gate)
    settings.TEST_DATA_RETENTION_DAYS = 0
    assert housekeeping.prune_test_data() >= 1
    assert housekeeping.prune_gate_changes() == 0
    after = sync(gate)
    assert after == before
    assert sorted(after["voided"]) == sorted(assets_of(live_order).values_list("asset_number", flat=True))

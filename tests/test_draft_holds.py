"""Draft holds (API.md, "Draft holds"): a Draft holds its capacity for its partnership's
draftHoldMinutes; then the expiry schedule voids its wallets, releases the capacity and settles it
in Error ("hold expired ..."), once, announced by ota_cm_order_processed."""

from __future__ import annotations

import datetime as dt
import threading
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule

from catalog.models import Capacity
from channel_manager.kernel.formats import rfc3339
from channel_manager.kernel.models import DEFAULT_DRAFT_HOLD_MINUTES, Partner
from channel_manager.orders import services, tasks
from channel_manager.orders.issuance import ORDER_PROCESSED, issue_order
from channel_manager.orders.models import Order, OrderStatus, OrderStatusChange
from channel_manager.orders.services import HOLD_EXPIRY_ACTOR, expire_draft_holds
from notifications.models import Event
from tests.payloads import line, order_body, visit_date

pytestmark = pytest.mark.django_db

SHOW = {"visitTime": "19:30"}


def create(client, **overrides) -> dict:
    response = client.post("/channelManager", order_body(**overrides), format="json")
    assert response.status_code == 202, response.content
    return response.json()


def settle(order_id: str) -> Order:
    issue_order(order_pk=Order.objects.get(order_id=order_id).pk)
    return Order.objects.get(order_id=order_id)


def draft(client, quantity: int = 3, **overrides) -> dict:
    """A Draft holding `quantity` places of the 19:30 show."""
    created = create(client, paymentReference=None, items=[line("SHOW-EVENING", quantity, **SHOW)], **overrides)
    assert settle(created["orderId"]).status == OrderStatus.DRAFT
    return created


def get(client, order_id: str) -> dict:
    response = client.get(f"/channelManager/{order_id}")
    assert response.status_code == 200, response.content
    return response.json()


def events_of(order_id: str) -> list[dict]:
    return [
        e.payload["order"]
        for e in Event.objects.filter(subject_id=order_id, event_type=ORDER_PROCESSED).order_by("created_at", "id")
    ]


def after_the_hold(order_id: str) -> dt.datetime:
    return Order.objects.get(order_id=order_id).hold_expires_at + dt.timedelta(seconds=1)


def sold() -> int:
    return sum(Capacity.objects.values_list("sold", flat=True))


# ---- holdExpiresAt in the answers ----------------------------------------------------------------


def test_a_draft_carries_its_hold_expiry_in_get_find_and_its_event(client, catalog):
    created = draft(client)
    order = Order.objects.get(order_id=created["orderId"])
    settled_at = order.status_changes.get(to_status=OrderStatus.DRAFT).at

    assert order.hold_expires_at == settled_at + dt.timedelta(minutes=DEFAULT_DRAFT_HOLD_MINUTES)
    expected = rfc3339(order.hold_expires_at)
    assert expected.endswith("Z")
    assert get(client, created["orderId"])["holdExpiresAt"] == expected
    found = client.get("/channelManager", {"sellToOrderReference": created["sellToOrderReference"]}).json()
    assert [o["holdExpiresAt"] for o in found["results"]] == [expected]
    assert events_of(created["orderId"])[-1]["holdExpiresAt"] == expected


def test_the_hold_lasts_the_partnerships_draft_hold_minutes(client, catalog, partner):
    Partner.objects.filter(pk=partner.pk).update(draft_hold_minutes=30)
    created = draft(client)
    order = Order.objects.get(order_id=created["orderId"])
    settled_at = order.status_changes.get(to_status=OrderStatus.DRAFT).at
    assert order.hold_expires_at == settled_at + dt.timedelta(minutes=30)


def test_other_statuses_carry_null(client, catalog):
    issued = create(client)
    settle(issued["orderId"])
    failed = create(client, items=[line("SHOW-EVENING", 1, visitTime="18:00")])
    assert settle(failed["orderId"]).status == OrderStatus.ERROR
    submitted = create(client, paymentReference=None)
    assert create(client)["holdExpiresAt"] is None  # the createOrder answer: Submitted

    for order_id in (issued["orderId"], failed["orderId"], submitted["orderId"]):
        assert get(client, order_id)["holdExpiresAt"] is None
        assert Order.objects.get(order_id=order_id).hold_expires_at is None
    assert [e["holdExpiresAt"] for e in events_of(issued["orderId"]) + events_of(failed["orderId"])] == [None, None]


def test_a_draft_answer_matches_the_documented_order_schema(client, catalog, anon_client):
    schema = yaml.safe_load(anon_client.get("/api/schema/").content)
    order_schema = schema["components"]["schemas"]["Order"]
    assert "holdExpiresAt" in order_schema["properties"]
    assert "holdExpiresAt" in order_schema["required"]
    validator = jsonschema.Draft202012Validator(
        {"$ref": "#/components/schemas/Order", "components": {"schemas": schema["components"]["schemas"]}},
        format_checker=jsonschema.FormatChecker(),
    )
    body = get(client, draft(client)["orderId"])
    assert [e.message for e in validator.iter_errors(body)] == []


def test_zero_minutes_means_the_hold_never_expires(client, catalog, partner):
    Partner.objects.filter(pk=partner.pk).update(draft_hold_minutes=0)
    created = draft(client)

    assert get(client, created["orderId"])["holdExpiresAt"] is None
    assert expire_draft_holds(now=timezone.now() + dt.timedelta(days=3650)) == 0
    assert Order.objects.get(order_id=created["orderId"]).status == OrderStatus.DRAFT
    assert sold() == 3


def test_confirm_ends_the_hold(client, catalog):
    created = draft(client)
    response = client.post(f"/channelManager/{created['orderId']}/confirm", {"paymentReference": "P"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["holdExpiresAt"] is None
    assert Order.objects.get(order_id=created["orderId"]).hold_expires_at is None
    assert expire_draft_holds(now=timezone.now() + dt.timedelta(days=2)) == 0
    assert get(client, created["orderId"])["status"] == OrderStatus.ISSUED


def test_replacing_a_draft_starts_a_new_hold_when_it_settles_again(client, catalog, partner):
    created = draft(client)
    first = Order.objects.get(order_id=created["orderId"]).hold_expires_at
    body = order_body(sellToOrderReference=created["sellToOrderReference"], paymentReference=None,
                      items=[line("SHOW-EVENING", 2, **SHOW)])
    response = client.put(f"/channelManager/{created['orderId']}", body, format="json")
    assert response.status_code == 202, response.content
    assert response.json()["holdExpiresAt"] is None  # Submitted
    assert Order.objects.get(order_id=created["orderId"]).hold_expires_at is None

    assert settle(created["orderId"]).status == OrderStatus.DRAFT
    second = Order.objects.get(order_id=created["orderId"]).hold_expires_at
    assert second > first


# ---- expiry ------------------------------------------------------------------------------------------


def test_expiry_voids_the_wallets_releases_capacity_settles_error_and_announces(client, catalog):
    created = draft(client)
    order_id = created["orderId"]
    manifest = urlsplit(get(client, order_id)["items"][0]["wallets"][0]["manifestUrl"]).path
    assert client.get(manifest).status_code == 200
    hold = Order.objects.get(order_id=order_id).hold_expires_at
    assert sold() == 3

    assert expire_draft_holds(now=after_the_hold(order_id)) == 1

    answer = get(client, order_id)
    assert answer["status"] == OrderStatus.ERROR
    assert answer["statusMessage"].startswith("hold expired")
    assert rfc3339(hold) in answer["statusMessage"]
    assert answer["holdExpiresAt"] is None
    assert answer["totalAmount"] is None
    assert [w for i in answer["items"] for w in i["wallets"]] == []
    assert sold() == 0
    assert client.get(manifest).status_code == 410
    events = events_of(order_id)
    assert [e["status"] for e in events] == [OrderStatus.DRAFT, OrderStatus.ERROR]
    assert events[-1]["statusMessage"] == answer["statusMessage"]
    change = OrderStatusChange.objects.filter(order__order_id=order_id).latest("id")
    assert (change.from_status, change.to_status, change.actor) == (
        OrderStatus.DRAFT, OrderStatus.ERROR, HOLD_EXPIRY_ACTOR,
    )


def test_a_hold_that_has_not_passed_is_left_alone(client, catalog):
    created = draft(client)
    hold = Order.objects.get(order_id=created["orderId"]).hold_expires_at
    assert expire_draft_holds(now=hold - dt.timedelta(seconds=1)) == 0
    assert expire_draft_holds() == 0
    assert get(client, created["orderId"])["status"] == OrderStatus.DRAFT
    assert sold() == 3


def test_expiry_runs_once_when_the_schedule_runs_twice(client, catalog):
    order_ids = [draft(client, quantity=1)["orderId"] for _ in range(3)]
    later = max(after_the_hold(order_id) for order_id in order_ids)

    assert expire_draft_holds(now=later) == 3
    assert expire_draft_holds(now=later) == 0

    for order_id in order_ids:
        assert OrderStatusChange.objects.filter(order__order_id=order_id, to_status=OrderStatus.ERROR).count() == 1
        assert [e["status"] for e in events_of(order_id)] == [OrderStatus.DRAFT, OrderStatus.ERROR]
    assert sold() == 0


def test_the_task_expires_every_due_hold_in_batches(client, catalog, monkeypatch):
    order_ids = [draft(client, quantity=1)["orderId"] for _ in range(5)]
    Order.objects.filter(order_id__in=order_ids).update(hold_expires_at=timezone.now() - dt.timedelta(minutes=1))
    monkeypatch.setattr(services, "HOLD_EXPIRY_BATCH", 2)

    assert tasks.expire_draft_holds_task() == 5
    assert tasks.expire_draft_holds_task() == 0
    assert set(Order.objects.values_list("status", flat=True)) == {OrderStatus.ERROR}


def test_the_schedule_runs_the_task_every_minute(db):
    schedule = Schedule.objects.get(name=tasks.HOLD_EXPIRY_SCHEDULE_NAME)
    assert (schedule.func, schedule.schedule_type, schedule.minutes, schedule.repeats, schedule.cluster) == (
        tasks.HOLD_EXPIRY_TASK, Schedule.MINUTES, 1, -1, None,
    )
    module, _, name = schedule.func.rpartition(".")
    assert getattr(__import__(module, fromlist=[name]), name) is tasks.expire_draft_holds_task


# ---- what the partner may do after ---------------------------------------------------------------


def test_confirm_after_expiry_is_409_invalid_state(client, catalog):
    created = draft(client)
    expire_draft_holds(now=after_the_hold(created["orderId"]))
    response = client.post(f"/channelManager/{created['orderId']}/confirm", {"paymentReference": "P"}, format="json")
    assert response.status_code == 409
    assert (response.json()["code"], response.json()["orderStatus"]) == ("invalid_state", OrderStatus.ERROR)


def test_confirm_once_the_hold_passed_expires_it_first_and_is_409(client, catalog):
    """The schedule has not run yet: confirm expires the order itself (as the schedule would,
    once) and refuses, so that no hold outlives its end by up to a minute."""
    created = draft(client)
    order_id = created["orderId"]
    Order.objects.filter(order_id=order_id).update(hold_expires_at=timezone.now() - dt.timedelta(seconds=1))

    response = client.post(f"/channelManager/{order_id}/confirm", {"paymentReference": "P"}, format="json")

    assert response.status_code == 409
    assert (response.json()["code"], response.json()["orderStatus"]) == ("invalid_state", OrderStatus.ERROR)
    answer = get(client, order_id)
    assert (answer["status"], answer["paymentReference"]) == (OrderStatus.ERROR, None)
    assert answer["statusMessage"].startswith("hold expired")
    assert sold() == 0
    assert [e["status"] for e in events_of(order_id)] == [OrderStatus.DRAFT, OrderStatus.ERROR]
    assert expire_draft_holds() == 0  # the schedule then finds nothing to do


def test_replace_after_expiry_issues_again_with_a_new_hold(client, catalog):
    created = draft(client)
    expire_draft_holds(now=after_the_hold(created["orderId"]))
    body = order_body(sellToOrderReference=created["sellToOrderReference"], paymentReference=None,
                      items=[line("SHOW-EVENING", 2, **SHOW)])
    assert client.put(f"/channelManager/{created['orderId']}", body, format="json").status_code == 202
    assert settle(created["orderId"]).status == OrderStatus.DRAFT
    assert get(client, created["orderId"])["holdExpiresAt"] is not None
    assert sold() == 2


def test_delete_after_expiry_removes_the_order(client, catalog):
    created = draft(client)
    expire_draft_holds(now=after_the_hold(created["orderId"]))
    assert client.delete(f"/channelManager/{created['orderId']}").status_code == 204
    assert not Order.objects.filter(order_id=created["orderId"]).exists()
    assert sold() == 0


def test_a_hold_expiry_leaves_other_drafts_and_later_orders_alone(client, catalog):
    """Capacity released by an expiry is sold again; the holds that have not passed keep theirs."""
    expiring = draft(client, quantity=150)
    Partner.objects.update(draft_hold_minutes=2 * DEFAULT_DRAFT_HOLD_MINUTES)
    kept = draft(client, quantity=50)
    expire_draft_holds(now=after_the_hold(expiring["orderId"]))
    assert Order.objects.get(order_id=kept["orderId"]).status == OrderStatus.DRAFT
    assert sold() == 50

    again = create(client, items=[line("SHOW-EVENING", 150, **SHOW)])
    assert settle(again["orderId"]).status == OrderStatus.ISSUED
    assert sold() == 200


# ---- the admin ---------------------------------------------------------------------------------------


def inline_management_data(page) -> dict[str, str]:
    """What the change form posts for its (read-only) inlines: their management forms and keys."""
    data: dict[str, str] = {}
    for inline in page.context["inline_admin_formsets"]:
        formset = inline.formset
        management = formset.management_form
        data.update({f"{formset.prefix}-{name}": str(management[name].value()) for name in management.fields})
        for form in formset.initial_forms:
            data[f"{form.prefix}-id"] = str(form.instance.pk)
            data[f"{form.prefix}-{formset.fk.name}"] = str(formset.instance.pk)
    return data


def test_staff_edit_draft_hold_minutes_in_the_partner_admin(admin_client, partner):
    url = reverse("admin:channel_manager_partner_change", args=[partner.pk])
    page = admin_client.get(url)
    assert b"draft_hold_minutes" in page.content
    form = {"name": partner.name, "active_from_0": "2026-01-01", "active_from_1": "00:00:00",
            "draft_hold_minutes": "90", **inline_management_data(page)}
    response = admin_client.post(url, form)
    assert response.status_code == 302, response.context["adminform"].form.errors
    partner.refresh_from_db()
    assert partner.draft_hold_minutes == 90

    response = admin_client.post(url, {**form, "draft_hold_minutes": "99999999"})
    assert response.status_code == 200  # the form answers with its error
    partner.refresh_from_db()
    assert partner.draft_hold_minutes == 90


def test_a_new_partnership_holds_for_a_day(db):
    assert Partner._meta.get_field("draft_hold_minutes").default == 1440


# ---- concurrency (PostgreSQL row locks) --------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_expire_each_hold_exactly_once(client, catalog):
    if connection.vendor != "postgresql":
        pytest.fail("row locks need PostgreSQL (make test provides it)")
    order_ids = []
    for i in range(12):  # on three dates, so that the runs release capacity rows in common
        created = create(client, paymentReference=None,
                         items=[line("SHOW-EVENING", 1, visitTime="19:30", visitDate=visit_date(40 + i % 3))])
        assert settle(created["orderId"]).status == OrderStatus.DRAFT
        order_ids.append(created["orderId"])
    later = max(after_the_hold(order_id) for order_id in order_ids)
    barrier = threading.Barrier(4)
    counts: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait(timeout=30)
            counts.append(expire_draft_holds(now=later, limit=5))
            counts.append(expire_draft_holds(now=later, limit=5))
            counts.append(expire_draft_holds(now=later, limit=5))
        except BaseException as exc:  # noqa: B036 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert sum(counts) == 12
    for order_id in order_ids:
        assert OrderStatusChange.objects.filter(order__order_id=order_id, to_status=OrderStatus.ERROR).count() == 1
        assert len(events_of(order_id)) == 2
    assert sold() == 0


def test_confirm_replace_and_delete_lock_the_order_row_only(client, catalog):
    """Locking the partner's row too (as before) blocked every insert that refers to the partner
    until commit; a confirm that expires a hold then waits for a capacity row and deadlocks with
    issuance (found by the holds fault drill)."""
    from django.test.utils import CaptureQueriesContext

    created = draft(client)
    order = Order.objects.get(order_id=created["orderId"])
    calls = (
        lambda: services.confirm_order(order=order, payment_reference="P"),
        lambda: services.delete_order(order=order),
    )
    for call in calls:
        with CaptureQueriesContext(connection) as ctx:
            call()
        locks = [q["sql"] for q in ctx.captured_queries
                 if "FOR UPDATE" in q["sql"] and 'FROM "channel_manager_order"' in q["sql"]]
        assert locks and all(sql.endswith('FOR UPDATE OF "channel_manager_order"') for sql in locks), locks

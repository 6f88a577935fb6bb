"""`make run`'s demo (bootstrap_demo): staff logins from the first minute, and demo orders in
every settled status, made through the real services, that a support agent sees at once."""

from __future__ import annotations

import io
import re

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from channel_manager.demo import STAFF_LOGINS_FILE, read_logins
from channel_manager.orders.models import Order, OrderStatus
from wallets.models import Wallet

pytestmark = pytest.mark.django_db

ORDERS = reverse("admin:channel_manager_order_changelist")


@pytest.fixture(autouse=True)
def _fast_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def bootstrap(tmp_path):
    """Runs bootstrap_demo with its files in tmp_path; returns (output, {username: password})."""

    def run() -> tuple[str, dict[str, str]]:
        out = io.StringIO()
        call_command("bootstrap_demo", key_file=tmp_path / "demo_api_key", port="8123", stdout=out, stderr=out)
        return out.getvalue(), read_logins(tmp_path / STAFF_LOGINS_FILE)

    return run


def test_the_demo_creates_a_superuser_a_support_and_a_finance_login(bootstrap):
    _, logins = bootstrap()
    assert set(logins) == {"admin", "support", "finance"}
    users = {user.username: user for user in get_user_model().objects.prefetch_related("groups")}
    assert users["admin"].is_superuser and users["admin"].is_staff
    for username, group in (("support", "Support"), ("finance", "Finance")):
        user = users[username]
        assert user.is_staff and not user.is_superuser
        assert [g.name for g in user.groups.all()] == [group]
    for username, password in logins.items():
        assert authenticate(username=username, password=password) is not None, username


def test_the_logins_are_printed_with_the_admin_url_and_kept_beside_the_demo_key(bootstrap, tmp_path):
    output, logins = bootstrap()
    assert "http://127.0.0.1:8123/admin/" in output
    for username, password in logins.items():
        assert re.search(rf"^\s+{username}\s+{re.escape(password)}\s", output, flags=re.MULTILINE), username
    assert (tmp_path / STAFF_LOGINS_FILE).stat().st_mode & 0o077 == 0


def test_running_it_again_reuses_the_passwords_and_the_orders(bootstrap):
    _, first = bootstrap()
    _, second = bootstrap()
    assert second == first
    assert Order.objects.count() == 3
    assert get_user_model().objects.count() == 3


def test_a_password_that_no_longer_works_is_replaced_and_printed(bootstrap):
    _, first = bootstrap()
    support = get_user_model().objects.get(username="support")
    support.set_password("changed-elsewhere-1")
    support.save()
    output, second = bootstrap()
    assert second["support"] != first["support"] and second["admin"] == first["admin"]
    assert second["support"] in output
    assert authenticate(username="support", password=second["support"]) is not None


def test_the_demo_orders_settle_issued_draft_and_error_through_issuance(bootstrap):
    output, _ = bootstrap()
    orders = {o.sell_to_order_reference: o for o in Order.objects.prefetch_related("status_changes")}
    assert {ref: o.status for ref, o in orders.items()} == {
        "DEMO-ISSUED-1": OrderStatus.ISSUED, "DEMO-DRAFT-1": OrderStatus.DRAFT, "DEMO-ERROR-1": OrderStatus.ERROR}
    error = orders["DEMO-ERROR-1"]
    assert error.status_message.startswith("items[0]: SHOW-EVENING needs a visitTime"), error.status_message
    for order in orders.values():  # placed as the partner, settled by the worker's code
        actors = [step.actor for step in order.status_changes.all()]
        assert "partner:demo-travel" in actors and "worker" in actors, actors
    issued_page = Wallet.objects.filter(order_link__order=orders["DEMO-ISSUED-1"]).values_list(
        "manifest_token", flat=True).first()
    assert f"http://127.0.0.1:8123/wallets/{issued_page}" in output
    assert "DEMO-ERROR-1 Error" in output


def test_the_support_login_sees_the_demo_orders_with_the_error_first(bootstrap):
    _, logins = bootstrap()
    client = Client()
    assert client.login(username="support", password=logins["support"])
    page = client.get(ORDERS)
    assert page.status_code == 200
    html = page.content.decode()
    positions = [html.index(ref) for ref in ("DEMO-ERROR-1", "DEMO-DRAFT-1", "DEMO-ISSUED-1")]
    assert positions[0] == min(positions), "the Error order comes first"

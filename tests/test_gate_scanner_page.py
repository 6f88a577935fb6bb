"""The scanner page at /gate/scan/ without a browser: who may log in (a device with its token, a
Gate staff member with their staff login), how a staff scan is attributed (to the member's own
device), CSRF on every session POST, and that POST /gate/scans stays the device API."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from catalog.selectors import venue_today
from channel_manager.orders.models import OrderStatus
from tests.factories import staff_user
from tests.payloads import contract_example_body
from tests.test_gate import assets_of, place
from wallets.gate.devices import create_gate_device, revoke_gate_device
from wallets.models import GateDevice, GateScan

pytestmark = pytest.mark.django_db

PAGE, LOGIN, LOGOUT, CHECK = "/gate/scan/", "/gate/scan/login", "/gate/scan/logout", "/gate/scan/check"


@pytest.fixture
def code(client, catalog) -> str:
    """A DAY-ADULT ticket of an Issued order, valid today at the venue."""
    order = place(client, contract_example_body())
    assert order.status == OrderStatus.ISSUED
    assets_of(order).update(visit_date=venue_today())
    return assets_of(order).filter(item_code="DAY-ADULT", asset_type="ticket").first().asset_number


@pytest.fixture
def device_and_token(catalog):
    return create_gate_device(name="North entrance 1")


def csrf_of(page) -> str:
    match = re.search(r'data-csrf="([^"]+)"', page.content.decode()) or re.search(
        r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())
    assert match, "no CSRF token on the page"
    return match.group(1)


def device_browser(token: str) -> Client:
    """A browser (CSRF enforced) logged in to the scanner page with the device's token."""
    browser = Client(enforce_csrf_checks=True)
    login_page = browser.get(PAGE)
    response = browser.post(LOGIN, {"token": token, "csrfmiddlewaretoken": csrf_of(login_page)})
    assert response.status_code == 302 and response["Location"] == PAGE
    return browser


def check(browser: Client, code: str, *, csrf: str | None = None):
    csrf = csrf if csrf is not None else csrf_of(browser.get(PAGE))
    return browser.post(CHECK, {"code": code}, content_type="application/json", HTTP_X_CSRFTOKEN=csrf)


def test_without_a_login_the_page_offers_a_token_and_a_staff_login(catalog):
    page = Client().get(PAGE)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="token"' in html and "/admin/login/?next=/gate/scan/" in html
    assert "default-src 'none'" in page["Content-Security-Policy"]


def test_a_device_logs_in_with_its_token_and_scans_as_that_device(device_and_token, code):
    device, token = device_and_token
    browser = device_browser(token)
    page = browser.get(PAGE)
    assert page.status_code == 200 and device.name in page.content.decode()
    body = check(browser, code).json()
    assert body["result"] == "accepted" and body["asset"]["assetNumber"] == code
    again = check(browser, code).json()
    assert again["reason"] == "already_redeemed"
    assert again["previousRedemption"]["deviceId"] == str(device.device_id)
    assert again["previousRedemption"]["deviceName"] == "North entrance 1"
    assert list(GateScan.objects.values_list("device", "result")) == [(device.pk, "rejected"),
                                                                       (device.pk, "accepted")]


def test_the_session_keeps_no_token(device_and_token):
    browser = device_browser(device_and_token[1])
    assert device_and_token[1] not in str(dict(browser.session.items()))


def test_a_wrong_token_is_refused_with_the_login_page_again(catalog):
    browser = Client(enforce_csrf_checks=True)
    response = browser.post(LOGIN, {"token": "cmg_nope", "csrfmiddlewaretoken": csrf_of(browser.get(PAGE))})
    assert response.status_code == 401 and "Unknown or revoked token" in response.content.decode()


def test_the_token_login_needs_the_csrf_token(device_and_token):
    response = Client(enforce_csrf_checks=True).post(LOGIN, {"token": device_and_token[1]})
    assert response.status_code == 403


def test_a_scan_from_the_page_needs_the_csrf_token(device_and_token, code):
    browser = device_browser(device_and_token[1])
    response = check(browser, code, csrf="wrong")
    assert response.status_code == 403
    assert not GateScan.objects.exists()


def test_a_scan_without_a_session_is_refused(catalog, code):
    assert Client().post(CHECK, {"code": code}, content_type="application/json").status_code in (401, 403)


def test_revoking_the_device_ends_its_page_session(device_and_token, code):
    device, token = device_and_token
    browser = device_browser(token)
    csrf = csrf_of(browser.get(PAGE))
    revoke_gate_device(device=device)
    assert check(browser, code, csrf=csrf).status_code in (401, 403)
    assert "revoked" in browser.get(PAGE).content.decode()


def test_logging_out_ends_the_device_session(device_and_token):
    browser = device_browser(device_and_token[1])
    browser.post(LOGOUT, {"csrfmiddlewaretoken": csrf_of(browser.get(PAGE))})
    assert 'name="token"' in browser.get(PAGE).content.decode()


def test_a_gate_staff_member_scans_as_their_own_device(catalog, code):
    user = staff_user("gina", "Gate")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    page = browser.get(PAGE)
    assert page.status_code == 200 and "Staff: gina" in page.content.decode()
    assert check(browser, code, csrf=csrf_of(page)).json()["result"] == "accepted"
    device = GateDevice.objects.get(user=user)
    assert GateScan.objects.get().device == device
    assert device.name == "Staff: gina" and device.revoked_at is None


def test_a_staff_members_device_is_made_once(catalog):
    user = staff_user("gina", "Gate")
    browser = Client()
    browser.force_login(user)
    browser.get(PAGE)
    browser.get(PAGE)
    assert GateDevice.objects.filter(user=user).count() == 1


def test_staff_outside_the_gate_group_may_not_scan(catalog, code):
    user = staff_user("sam", "Support")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    page = browser.get(PAGE)
    assert "may not use the scanner" in page.content.decode()
    assert check(browser, code, csrf=csrf_of(page)).status_code in (401, 403)
    assert not GateDevice.objects.filter(user=user).exists()


def test_a_revoked_staff_device_may_not_scan(catalog, code):
    user = staff_user("gina", "Gate")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    csrf = csrf_of(browser.get(PAGE))
    revoke_gate_device(device=GateDevice.objects.get(user=user))
    assert check(browser, code, csrf=csrf).status_code in (401, 403)


def test_a_staff_session_is_not_accepted_on_the_device_api(catalog, code):
    """POST /gate/scans stays device tokens only (a session there would need CSRF)."""
    user = staff_user("gina", "Gate")
    browser = APIClient()
    browser.force_login(user)
    response = browser.post("/gate/scans", {"code": code}, format="json")
    assert response.status_code == 401
    assert not GateScan.objects.exists()


def test_the_gate_group_exists_with_the_scan_permission(db):
    user = staff_user("gina", "Gate")
    assert User.objects.get(pk=user.pk).has_perm("wallets.scan_at_gate")

"""The lean intake path: the partner API skips the middleware only the admin and the pages need,
and reads its partner with one plain query that still sees a revocation or a disabled partner at
once. (The parsing's own tests are in tests/test_fast_parsing.py.)"""

from __future__ import annotations

import pytest
from django.http import HttpResponse
from django.test import Client, RequestFactory

from channel_manager.kernel import partners
from channel_manager.kernel.authentication import partner_for_key
from channel_manager.kernel.middleware import AuthenticationMiddleware, MessageMiddleware, SessionMiddleware
from channel_manager.kernel.models import Partner
from tests.factories import PartnerFactory

pytestmark = pytest.mark.django_db


def _through(middleware_class, request):
    """Run a request through one middleware (after a session, which some of them need)."""
    if middleware_class is not SessionMiddleware:
        SessionMiddleware(lambda r: HttpResponse())(request)
    return middleware_class(lambda r: HttpResponse("ok"))(request)


@pytest.mark.parametrize("path", ["/channelManager", "/channelManager/x/confirm", "/catalog/items", "/notifications/"])
def test_partner_api_requests_get_no_session_user_or_messages(path):
    request = RequestFactory().post(path)
    for middleware_class in (SessionMiddleware, AuthenticationMiddleware, MessageMiddleware):
        _through(middleware_class, request)
    assert not hasattr(request, "session")
    assert not hasattr(request, "user")
    assert not hasattr(request, "_messages")


def test_other_paths_keep_sessions_staff_auth_and_messages():
    request = RequestFactory().get("/admin/")
    for middleware_class in (SessionMiddleware, AuthenticationMiddleware, MessageMiddleware):
        _through(middleware_class, request)
    assert hasattr(request, "session") and hasattr(request, "user") and hasattr(request, "_messages")


def test_the_admin_still_refuses_a_post_without_csrf_token(catalog):
    response = Client(enforce_csrf_checks=True).post("/admin/login/", {"username": "a", "password": "b"})
    assert response.status_code == 403


def test_key_lookup_reads_the_partner_as_the_orm_does():
    partner = PartnerFactory(partner_id="lookup", name="Lookup Travel")
    _, raw = partners.issue_api_key(partner=partner)
    found = partner_for_key(raw)
    expected = Partner.objects.get(pk=partner.pk)
    assert isinstance(found, Partner) and found.pk == partner.pk
    for name in ("partner_id", "name", "active_from", "enabled"):
        assert getattr(found, name) == getattr(expected, name)
    assert found.active_from.tzinfo is not None


def test_key_lookup_sees_a_revocation_at_once():
    partner = PartnerFactory(partner_id="revoked")
    key, raw = partners.issue_api_key(partner=partner)
    assert partner_for_key(raw) is not None
    partners.revoke_api_key(api_key=key)
    assert partner_for_key(raw) is None
    assert partner_for_key("cmk_unknown") is None
    assert partner_for_key(None) is None

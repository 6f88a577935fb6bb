"""The scanner page at /gate/scan/: a phone at the entrance scans QR codes (or takes a typed
asset number) and shows each answer full-screen.

Who scans: a device that logged in with its token (the session keeps the token's digest, never
the token), or a Gate staff member under their own admin login, scanning as their own device
(authentication.staff_device). The page posts to /gate/scan/check, which is POST /gate/scans
with session authentication (CSRF-checked) instead of a bearer token: the same service, the same
answer, plus the name of the device that redeemed a used code. No build step: a template, our
own static JS and CSS, and jsQR vendored under wallets/static/gate/ with its licence.
"""

from __future__ import annotations

from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST, require_safe
from rest_framework.request import Request
from rest_framework.response import Response

from catalog.selectors import get_venue
from wallets.gate import api
from wallets.gate.authentication import (
    SESSION_DEVICE_DIGEST,
    GatePageAuthentication,
    IsGateDevice,
    device_for_session,
    device_for_token,
    may_scan,
    staff_device,
)
from wallets.models import GateDevice

# The page loads only what it serves itself: no inline script or style, no other origin.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self' blob:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


def _page(request: HttpRequest, template: str, context: dict, status: int = 200) -> HttpResponse:
    response = TemplateResponse(request, template, context, status=status)
    response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response["Permissions-Policy"] = "camera=(self), microphone=(), geolocation=()"
    # Not no-referrer: Chromium then sends "Origin: null" with the forms, which CSRF refuses.
    response["Referrer-Policy"] = "same-origin"
    return response


def _login_page(request: HttpRequest, *, error: str = "", status: int = 200) -> HttpResponse:
    user = request.user
    if not error and user.is_authenticated and not may_scan(user):
        error = "Your staff login may not use the scanner. Ask for the Gate group, or log in with a device token."
    context = {
        "error": error,
        "staff_login_url": f"{reverse('admin:login')}?next={reverse('gate-scan-page')}",
    }
    return _page(request, "gate/login.html", context, status=status)


@never_cache
@require_safe
def scanner_page(request: HttpRequest) -> HttpResponse:
    """The scanner for a logged-in device or Gate staff member; the login page for anyone else."""
    if not request.session.get(SESSION_DEVICE_DIGEST) and may_scan(request.user):
        staff_device(request.user)  # made on the first visit
    device = device_for_session(request)
    if device is None:
        revoked = request.session.get(SESSION_DEVICE_DIGEST) or may_scan(request.user)
        request.session.pop(SESSION_DEVICE_DIGEST, None)
        return _login_page(request, error="This scanner is revoked: log in again." if revoked else "")
    context = {
        "device": device,
        "staff": device.user_id is not None,
        "venue": get_venue(),
    }
    return _page(request, "gate/scanner.html", context)


@never_cache
@require_POST
def device_login(request: HttpRequest) -> HttpResponse:
    """A device's token, typed or pasted once; the session then remembers the device."""
    device = device_for_token(request.POST.get("token", "").strip())
    if device is None:
        return _login_page(request, error="Unknown or revoked token.", status=401)
    request.session.cycle_key()  # a new session id for a new identity
    request.session[SESSION_DEVICE_DIGEST] = device.digest
    return redirect("gate-scan-page")


@never_cache
@require_POST
def device_logout(request: HttpRequest) -> HttpResponse:
    if request.session.pop(SESSION_DEVICE_DIGEST, None) is None and request.user.is_authenticated:
        logout(request)  # a staff member leaves the scanner and the admin
    return redirect("gate-scan-page")


class PageScanView(api.ScanView):
    """POST /gate/scan/check: POST /gate/scans for the scanner page's session (CSRF-checked).

    Its answer is gateScan's, with `previousRedemption.deviceName` added for the people at the
    gate (a deviceId says nothing to them)."""

    authentication_classes = [GatePageAuthentication]
    permission_classes = [IsGateDevice]
    schema = None  # the page's own endpoint, not part of the API

    def post(self, request: Request) -> Response:
        response = super().post(request)
        previous = response.data.get("previousRedemption")
        if previous and previous.get("deviceId"):
            previous["deviceName"] = (
                GateDevice.objects.filter(device_id=previous["deviceId"]).values_list("name", flat=True).first()
            )
        return response

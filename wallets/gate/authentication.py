"""Device tokens on /gate/: `Authorization: Bearer <token>`. Partner API keys are refused here
(403), as device tokens are on the partner API (its authentication knows no device: 401)."""

from __future__ import annotations

import functools

from django.db import IntegrityError, connections, router, transaction
from django.http import HttpRequest
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, permissions
from rest_framework.request import Request

from channel_manager.kernel.authentication import bearer_token, key_digest, partner_for_key
from channel_manager.kernel.prepared import prepared_cursor
from channel_manager.kernel.problems import Problem
from wallets.gate.devices import give_new_token
from wallets.models import GateDevice

REALM = 'Bearer realm="gate"'


DEVICE_FIELDS = ("id", "device_id", "name", "prefix", "digest", "created_at", "revoked_at", "user_id")


@functools.cache
def _device_by_digest_sql(alias: str) -> str:
    """The device and its item ids in one statement, written once per process (as the partner
    key lookup is): every scan authenticates, and the ORM's compilation cost more than the query."""
    qn = connections[alias].ops.quote_name
    device, link = GateDevice._meta, GateDevice.items.through._meta
    column = {name: f"d.{qn(device.get_field(name).column)}" for name in DEVICE_FIELDS}
    item, owner = (qn(link.get_field(name).column) for name in ("item", "gatedevice"))
    return (
        f"SELECT {', '.join(column.values())}, array_remove(array_agg(l.{item}), NULL) "
        f"FROM {qn(device.db_table)} d LEFT JOIN {qn(link.db_table)} l ON l.{owner} = {column['id']} "
        f"WHERE d.{qn(device.get_field('digest').column)} = %s AND {column['revoked_at']} IS NULL "
        f"GROUP BY {column['id']}"
    )


def device_for_token(raw: str | None) -> GateDevice | None:
    """The unrevoked device owning this token, with the ids of the items it is limited to.
    Not cached: a revoked token is refused on the very next request, in every process."""
    if not raw:
        return None
    alias = router.db_for_read(GateDevice)
    connection = connections[alias]
    if connection.vendor == "postgresql":
        with prepared_cursor(alias) as cursor:
            cursor.execute(_device_by_digest_sql(alias), [key_digest(raw)])
            row = cursor.fetchone()
        if row is None:
            return None
        device = GateDevice.from_db(alias, DEVICE_FIELDS, row[:-1])
        device.admitted_item_ids = frozenset(row[-1])
        return device
    return _with_items(GateDevice.objects.filter(digest=key_digest(raw), revoked_at__isnull=True).first())


def _with_items(device: GateDevice | None) -> GateDevice | None:
    if device is not None:
        device.admitted_item_ids = frozenset(device.items.values_list("id", flat=True))
    return device


# ---- The scanner page (wallets.gate.pages): a session instead of a bearer token -------------

# The session of a device that logged in to the scanner page holds its token's digest (never the
# token): revoking the device, or giving it a new token, ends that session at its next scan.
SESSION_DEVICE_DIGEST = "gate_device_digest"
SCAN_PERMISSION = "wallets.scan_at_gate"


def may_scan(user) -> bool:
    """Staff of the Gate group (or superusers) may scan under their own login."""
    return bool(user and user.is_authenticated and user.is_active and user.is_staff
                and user.has_perm(SCAN_PERMISSION))


def staff_device(user) -> GateDevice:
    """The staff member's own device, made on first use with a token nobody ever sees."""
    device = GateDevice.objects.filter(user=user).first()
    if device is None:
        device = GateDevice(user=user, name=f"Staff: {user.get_username()}"[:100])
        give_new_token(device)
        try:
            with transaction.atomic():
                device.save()
        except IntegrityError:  # a second tab made it first
            device = GateDevice.objects.get(user=user)
    return device


def device_for_session(request: HttpRequest) -> GateDevice | None:
    """The scanner page's device: the one whose token this session logged in with, else the
    logged-in Gate staff member's own; None when there is none, or it is revoked."""
    digest = request.session.get(SESSION_DEVICE_DIGEST)
    if digest:
        return _with_items(GateDevice.objects.filter(digest=digest, revoked_at__isnull=True).first())
    user = getattr(request, "user", None)
    if may_scan(user):
        return _with_items(GateDevice.objects.filter(user=user, revoked_at__isnull=True).first())
    return None


class GatePageAuthentication(authentication.SessionAuthentication):
    """The scanner page's scans: its session's device, CSRF-checked like any session request."""

    def authenticate(self, request: Request):
        device = device_for_session(request._request)
        if device is None:
            return None
        self.enforce_csrf(request)
        return (device, None)


class GateDeviceAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request):
        raw = bearer_token(request.META.get("HTTP_AUTHORIZATION"))
        device = device_for_token(raw)
        if device is not None:
            return (device, raw)
        if raw and partner_for_key(raw) is not None:
            raise Problem(403, "partner_key_refused", "Partner API keys are not accepted at the gate; "
                          "send a gate device token.")
        raise Problem(401, "not_authenticated", "Send a gate device token as 'Authorization: Bearer <token>'.",
                      headers={"WWW-Authenticate": REALM})

    def authenticate_header(self, request: Request) -> str:
        return REALM


class IsGateDevice(permissions.BasePermission):
    def has_permission(self, request: Request, view) -> bool:
        if not isinstance(request.user, GateDevice):
            raise Problem(401, "not_authenticated", "Send a gate device token as 'Authorization: Bearer <token>'.")
        return True


class GateDeviceScheme(OpenApiAuthenticationExtension):
    """Documents the device token in the OpenAPI schema."""

    target_class = GateDeviceAuthentication
    name = "gateDeviceToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "A gate device's token."}

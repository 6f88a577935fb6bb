"""Device tokens on /gate/: `Authorization: Bearer <token>`. Partner API keys are refused here
(403), as device tokens are on the partner API (its authentication knows no device: 401)."""

from __future__ import annotations

import functools

from django.db import connections, router
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, permissions
from rest_framework.request import Request

from channel_manager.kernel.authentication import bearer_token, key_digest, partner_for_key
from channel_manager.kernel.problems import Problem
from wallets.models import GateDevice

REALM = 'Bearer realm="gate"'


DEVICE_FIELDS = ("id", "device_id", "name", "prefix", "digest", "created_at", "revoked_at")


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
        with connection.cursor() as cursor:
            cursor.execute(_device_by_digest_sql(alias), [key_digest(raw)])
            row = cursor.fetchone()
        if row is None:
            return None
        device = GateDevice.from_db(alias, DEVICE_FIELDS, row[:-1])
        device.admitted_item_ids = frozenset(row[-1])
        return device
    device = GateDevice.objects.filter(digest=key_digest(raw), revoked_at__isnull=True).first()
    if device is not None:
        device.admitted_item_ids = frozenset(device.items.values_list("id", flat=True))
    return device


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

"""Gate devices: register one (its token shown once, kept as a digest), revoke one."""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from catalog.models import Item
from channel_manager.kernel.authentication import key_digest
from wallets.models import GateDevice

TOKEN_PREFIX = "cmg_"  # partner keys start cmk_: the two are told apart at a glance
PREFIX_SHOWN = len(TOKEN_PREFIX) + 6


def new_device_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def give_new_token(device: GateDevice) -> str:
    """Set a fresh token's prefix and digest on an unsaved device; returns the raw token."""
    raw = new_device_token()
    device.prefix, device.digest = raw[:PREFIX_SHOWN], key_digest(raw)
    return raw


@transaction.atomic
def create_gate_device(*, name: str, items: Iterable[Item] = ()) -> tuple[GateDevice, str]:
    """A new device admitting `items` (none: every item). Returns the device and its raw token,
    which is stored nowhere."""
    device = GateDevice(name=name)
    raw = give_new_token(device)
    device.save()
    items = list(items)
    if items:
        device.items.set(items)
    return device, raw


@transaction.atomic
def revoke_gate_device(*, device: GateDevice) -> GateDevice:
    """Its token is refused from the next request on. Revoking twice keeps the first time."""
    GateDevice.objects.filter(pk=device.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    device.refresh_from_db(fields=["revoked_at"])
    return device

"""Operations on partners and their API keys. Each runs in one transaction."""

from __future__ import annotations

import datetime as dt
import secrets

from django.db import transaction
from django.utils import timezone

from channel_manager.kernel.authentication import KEY_PREFIX, key_digest
from channel_manager.kernel.models import ApiKey, Partner


def new_api_key_value() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


@transaction.atomic
def issue_api_key(*, partner: Partner, label: str = "") -> tuple[ApiKey, str]:
    """Make a new key for the partner. The raw key is returned once and never stored."""
    raw = new_api_key_value()
    key = ApiKey.objects.create(partner=partner, prefix=raw[: len(KEY_PREFIX) + 6], digest=key_digest(raw), label=label)
    return key, raw


@transaction.atomic
def revoke_api_key(*, api_key: ApiKey) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    return api_key


@transaction.atomic
def create_partner(
    *, partner_id: str, name: str, active_from: dt.datetime | None = None
) -> tuple[Partner, str]:
    """Set up a partnership and its first API key; returns the partner and the raw key."""
    partner = Partner.objects.create(
        partner_id=partner_id, name=name, active_from=active_from or timezone.now(), enabled=True
    )
    _, raw = issue_api_key(partner=partner, label="initial")
    return partner, raw


@transaction.atomic
def set_partner_enabled(*, partner: Partner, enabled: bool) -> Partner:
    if partner.enabled != enabled:
        partner.enabled = enabled
        partner.save(update_fields=["enabled"])
    return partner

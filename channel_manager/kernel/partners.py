"""Operations on partners and their API keys. Each runs in one transaction."""

from __future__ import annotations

import datetime as dt
import secrets

from django.db import transaction
from django.utils import timezone

from channel_manager.kernel.authentication import KEY_PREFIX, TEST_KEY_PREFIX, key_digest
from channel_manager.kernel.models import ApiKey, Partner


def new_api_key_value(*, livemode: bool = True) -> str:
    if not livemode:
        return TEST_KEY_PREFIX + secrets.token_urlsafe(32)
    while True:  # a live key never looks like a test key (1 in 64⁵ would)
        raw = KEY_PREFIX + secrets.token_urlsafe(32)
        if not raw.startswith(TEST_KEY_PREFIX):
            return raw


@transaction.atomic
def issue_api_key(*, partner: Partner, label: str = "", livemode: bool = True) -> tuple[ApiKey, str]:
    """Make a new live or test key for the partner. The raw key is returned once and never stored."""
    raw = new_api_key_value(livemode=livemode)
    prefix = raw[: (len(KEY_PREFIX) if livemode else len(TEST_KEY_PREFIX)) + 6]
    key = ApiKey.objects.create(
        partner=partner, prefix=prefix, digest=key_digest(raw), label=label, livemode=livemode
    )
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
def create_partner_with_test_key(
    *, partner_id: str, name: str, active_from: dt.datetime | None = None
) -> tuple[Partner, str, str]:
    """create_partner, plus a first test key; returns the partner, the live key and the test key."""
    partner, raw = create_partner(partner_id=partner_id, name=name, active_from=active_from)
    _, test_raw = issue_api_key(partner=partner, label="initial test key", livemode=False)
    return partner, raw, test_raw


@transaction.atomic
def set_partner_enabled(*, partner: Partner, enabled: bool) -> Partner:
    if partner.enabled != enabled:
        partner.enabled = enabled
        partner.save(update_fields=["enabled"])
    return partner

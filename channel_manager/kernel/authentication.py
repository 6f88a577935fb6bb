"""Partner API keys: `Authorization: Bearer <apiKey>`, answered exactly as the contract says."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

from django.db import connections, router
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, permissions
from rest_framework.request import Request

from channel_manager.kernel.models import ApiKey, Partner
from channel_manager.kernel.prepared import prepared_cursor
from channel_manager.kernel.problems import Problem

KEY_PREFIX = "cmk_"
# Test keys (API.md, "Test mode"): everything made with one is test data. Live keys never start so.
TEST_KEY_PREFIX = "cmk_test_"


@dataclass(frozen=True)
class PartnerKey:
    """What a partner call authenticated with (DRF's request.auth): the raw key and its mode."""

    raw: str
    livemode: bool


def request_livemode(request) -> bool:
    """The mode of a partner request: False when it carries a test key."""
    auth = getattr(request, "auth", None)
    return auth.livemode if isinstance(auth, PartnerKey) else True


def key_digest(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode("utf-8", "surrogatepass")).hexdigest()


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 200:
        return None
    return token


# What a partner call needs of its partner; the rest stays deferred, as with .only().
PARTNER_FIELDS = ("id", "partner_id", "name", "active_from", "enabled")


@functools.cache
def _partner_by_digest_sql(alias: str) -> str:
    """The key lookup's SQL, written once per process instead of compiled by the ORM per call."""
    qn = connections[alias].ops.quote_name
    partner, key = Partner._meta, ApiKey._meta
    columns = ", ".join(f"p.{qn(partner.get_field(name).column)}" for name in PARTNER_FIELDS)
    columns += f", k.{qn(key.get_field('livemode').column)}"
    return (
        f"SELECT {columns} FROM {qn(key.db_table)} k JOIN {qn(partner.db_table)} p "
        f"ON p.{qn(partner.pk.column)} = k.{qn(key.get_field('partner').column)} "
        f"WHERE k.{qn(key.get_field('digest').column)} = %s AND k.{qn(key.get_field('revoked_at').column)} IS NULL "
        "LIMIT 1"
    )


def partner_for_key(raw_key: str | None) -> Partner | None:
    """The partner owning an unrevoked key; None for a missing or unknown key (see key_owner)."""
    owner = key_owner(raw_key)
    return owner[0] if owner else None


def key_owner(raw_key: str | None) -> tuple[Partner, bool] | None:
    """The partner owning an unrevoked key and the key's livemode, in one query; None for a
    missing or unknown key.

    Not cached: a revoked key or a disabled partner is refused on the very next call, in every
    process. On PostgreSQL the query is plain SQL (its values need no conversion), which spares
    each call the ORM's compilation; elsewhere (SQLite stores naive datetimes) the ORM reads it."""
    if not raw_key:
        return None
    digest = key_digest(raw_key)
    alias = router.db_for_read(ApiKey)
    connection = connections[alias]
    if connection.vendor == "postgresql":
        with prepared_cursor(alias) as cursor:
            cursor.execute(_partner_by_digest_sql(alias), [digest])
            row = cursor.fetchone()
        return (Partner.from_db(alias, PARTNER_FIELDS, row[:-1]), bool(row[-1])) if row else None
    key = (
        ApiKey.objects.select_related("partner")
        .filter(digest=digest, revoked_at__isnull=True)
        .only("id", "livemode", *(f"partner__{name}" for name in PARTNER_FIELDS))
        .first()
    )
    return (key.partner, key.livemode) if key else None


def partnership_problem(partner: Partner) -> Problem | None:
    """Why this partner may not call the API right now, if it may not."""
    if not partner.enabled:
        return Problem(403, "partnership_disabled", "This partnership is disabled.")
    if partner.active_from > timezone.now():
        return Problem(
            403,
            "partnership_not_active",
            f"This partnership is active from {partner.active_from.isoformat().replace('+00:00', 'Z')}.",
        )
    return None


class PartnerApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request):
        raw = bearer_token(request.META.get("HTTP_AUTHORIZATION"))
        owner = getattr(request._request, "cm_key_owner", None)  # resolved once by the middleware
        if owner is None:
            owner = key_owner(raw)
        if owner is None:
            raise Problem(401, "not_authenticated", "Send a valid API key as 'Authorization: Bearer <apiKey>'.",
                          headers={"WWW-Authenticate": 'Bearer realm="channel-manager"'})
        partner, livemode = owner
        return (partner, PartnerKey(raw=raw, livemode=livemode))

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="channel-manager"'


class IsActivePartner(permissions.BasePermission):
    def has_permission(self, request: Request, view) -> bool:
        partner = request.user
        if not isinstance(partner, Partner):
            raise Problem(401, "not_authenticated", "Send a valid API key as 'Authorization: Bearer <apiKey>'.")
        problem = partnership_problem(partner)
        if problem:
            raise problem
        return True


class PartnerApiKeyScheme(OpenApiAuthenticationExtension):
    """Documents the bearer API key in the OpenAPI schema."""

    target_class = PartnerApiKeyAuthentication
    name = "partnerApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "The partner's API key."}

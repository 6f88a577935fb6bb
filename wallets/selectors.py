"""Reads of wallets: the capability URL and the manifest a wallet's holder sees.

A manifest is read with a fixed number of queries whatever the number of assets: one for the
wallet with its partner, one for its assets (the venue and the signing keys come from their
per-process caches, or a few more queries when a cache is cold). It reads only wallets and the
catalog: the wallet carries its own validity and a snapshot of the booking it belongs to.
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.urls import reverse

from catalog.selectors import get_venue
from channel_manager.kernel.formats import hhmm
from wallets.gate import signing
from wallets.models import AssetType, Wallet, WalletValidity


def manifest_url(token: str) -> str:
    """The absolute capability URL of a wallet's manifest."""
    return settings.PUBLIC_BASE_URL + reverse("wallet-manifest", kwargs={"token": token})


# Tokens are secrets.token_urlsafe: anything else is not worth a query.
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,64}")

VALID = "valid"
NOT_VALID_UNTIL_CONFIRMED = "not_valid_until_confirmed"
NOT_VALID = "not_valid"

# What the holder is told of each validity (a void wallet is gone: 410).
_SHOWN_VALIDITY = {
    WalletValidity.VALID: (VALID, "Valid"),
    WalletValidity.PENDING: (NOT_VALID_UNTIL_CONFIRMED, "Not valid until the order is confirmed"),
}
_NOT_VALID = (NOT_VALID, "Not valid")


# --------------------------------------------------------------------------------------------
# Finding the wallet
# --------------------------------------------------------------------------------------------


def wallet_for_token(*, token: str) -> Wallet | None:
    """The minted wallet whose manifest token is `token` (destroyed or not), with its partner
    and assets loaded; None when there is none. Two queries.

    The token is looked up by equality, then compared again in constant time, so that the
    answer never depends on how much of a guessed token matched.
    """
    if not TOKEN_PATTERN.fullmatch(token or ""):
        return None
    wallet = (
        Wallet.objects.select_related("partner")
        .prefetch_related("assets")
        .filter(manifest_token=token)
        .first()
    )
    if wallet is None or not hmac.compare_digest((wallet.manifest_token or "").encode(), token.encode()):
        return None
    return wallet


def wallet_is_gone(wallet: Wallet) -> bool:
    """A void wallet (cancelled or replaced order) answers 410."""
    return wallet.gone


# --------------------------------------------------------------------------------------------
# The manifest
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestAsset:
    """One ticket or coupon as its holder sees it. `asset_number` and `signed_payload` are None
    when the wallet is not valid: the QR code encodes the signed payload, and the number is
    printed beneath it for a gate agent to key in by hand."""

    asset_type: str
    asset_number: str | None
    item_id: str
    name: str
    visit_date: dt.date
    visit_time: dt.time | None
    admits: int | None
    description: str
    valid_until: dt.date
    # The QR payload: the asset's JWS (wallets.gate.signing), None when the wallet is not valid.
    signed_payload: str | None = None

    @property
    def is_coupon(self) -> bool:
        return self.asset_type == AssetType.COUPON

    @property
    def is_ticket(self) -> bool:
        return self.asset_type == AssetType.TICKET

    @property
    def valid_from(self) -> dt.date:
        return self.visit_date

    @property
    def barcode_payload(self) -> str | None:
        """What the QR code encodes: the signed payload, which names the asset number."""
        return self.signed_payload


@dataclass(frozen=True)
class Manifest:
    """What a wallet's capability URL shows, for the JSON, the page and the Apple Wallet pass."""

    token: str
    external_reference_number: str | None
    wallet_reference_number: str | None
    sell_to_order_reference: str
    buy_from_order_reference: str
    partner_id: str
    holder_name: str | None
    language: str | None
    venue_name: str
    venue_time_zone: str
    visit_date: dt.date | None
    visit_time: dt.time | None
    validity: str
    validity_text: str
    assets: tuple[ManifestAsset, ...]
    # False for a test order's wallet: shown "TEST — not valid for entry" (API.md, "Test mode").
    livemode: bool = True

    @property
    def valid(self) -> bool:
        return self.validity == VALID

    @property
    def wallet_reference(self) -> str | None:
        """The reference to show: the partner's own when there is one."""
        return self.external_reference_number or self.wallet_reference_number

    @property
    def tickets(self) -> tuple[ManifestAsset, ...]:
        return tuple(a for a in self.assets if a.is_ticket)

    @property
    def coupons(self) -> tuple[ManifestAsset, ...]:
        return tuple(a for a in self.assets if a.is_coupon)


# What a test wallet says wherever it is shown: the page, the JSON, the pass.
TEST_BANNER = "TEST — not valid for entry"


def build_manifest(wallet: Wallet) -> Manifest:
    """The manifest of a live wallet from wallet_for_token (no query, or one for a cold venue)."""
    validity, validity_text = _SHOWN_VALIDITY.get(wallet.validity, _NOT_VALID)
    show_numbers = validity == VALID
    assets = tuple(
        ManifestAsset(
            asset_type=asset.asset_type,
            asset_number=asset.asset_number if show_numbers else None,
            item_id=asset.item_code,
            name=asset.name,
            visit_date=asset.visit_date,
            visit_time=asset.visit_time,
            admits=asset.admits if asset.asset_type == AssetType.TICKET else None,
            description=asset.description if asset.asset_type == AssetType.COUPON else "",
            valid_until=(asset.valid_until or asset.visit_date)
            if asset.asset_type == AssetType.COUPON
            else asset.visit_date,
            signed_payload=signing.signed_payload(asset, livemode=wallet.livemode) if show_numbers else None,
        )
        for asset in wallet.assets.all()
    )
    # The visit is the first ticket's (a package's day ticket before its show); else the first asset's.
    first = next((a for a in assets if a.is_ticket), assets[0] if assets else None)
    venue = get_venue()
    return Manifest(
        token=wallet.manifest_token or "",
        external_reference_number=wallet.external_reference_number,
        wallet_reference_number=wallet.wallet_reference_number,
        sell_to_order_reference=wallet.sell_to_order_reference,
        buy_from_order_reference=wallet.buy_from_order_reference,
        partner_id=wallet.partner.partner_id,
        holder_name=wallet.holder_name,
        language=wallet.holder_language or None,
        venue_name=venue.name,
        venue_time_zone=venue.time_zone,
        visit_date=first.visit_date if first else None,
        visit_time=first.visit_time if first else None,
        validity=validity,
        validity_text=validity_text,
        assets=assets,
        livemode=wallet.livemode,
    )


def _iso_date(value: dt.date | None) -> str | None:
    return value.isoformat() if value else None




def manifest_asset_json(asset: ManifestAsset, *, validity: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "assetType": asset.asset_type,
        "assetNumber": asset.asset_number,
        "itemId": asset.item_id,
        "name": asset.name,
        "visitDate": _iso_date(asset.visit_date),
        "visitTime": hhmm(asset.visit_time),
    }
    if asset.is_coupon:
        entry["description"] = asset.description
        entry["validUntil"] = _iso_date(asset.valid_until)
    else:
        entry["admits"] = asset.admits
    entry["validity"] = {
        "status": validity,
        "validFrom": _iso_date(asset.valid_from),
        "validUntil": _iso_date(asset.valid_until),
    }
    entry["barcode"] = (
        {"format": "QR", "payload": asset.barcode_payload} if asset.barcode_payload is not None else None
    )
    return entry


def manifest_json(manifest: Manifest) -> dict[str, Any]:
    """The JSON manifest. Not valid (Draft): every asset is listed without its number or barcode."""
    return {
        "wallet": {
            "reference": manifest.wallet_reference,
            "externalReferenceNumber": manifest.external_reference_number,
            "walletReferenceNumber": manifest.wallet_reference_number,
        },
        "order": {
            "sellToOrderReference": manifest.sell_to_order_reference,
            "buyFromOrderReference": manifest.buy_from_order_reference,
            "partnerId": manifest.partner_id,
        },
        "holderName": manifest.holder_name,
        "venue": {"name": manifest.venue_name, "timeZone": manifest.venue_time_zone},
        "visitDate": _iso_date(manifest.visit_date),
        "visitTime": hhmm(manifest.visit_time),
        "validity": manifest.validity,
        "validityText": manifest.validity_text if manifest.livemode else TEST_BANNER,
        "livemode": manifest.livemode,
        "assets": [manifest_asset_json(a, validity=manifest.validity) for a in manifest.assets],
    }

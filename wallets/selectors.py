"""Reads of wallets."""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse


def manifest_url(token: str) -> str:
    """The absolute capability URL of a wallet's manifest."""
    return settings.PUBLIC_BASE_URL + reverse("wallet-manifest", kwargs={"token": token})


ORDER_VALIDITY = {
    "Issued": ("valid", "Valid"),
    "Draft": ("not_valid_until_confirmed", "Not valid until the order is confirmed"),
}


def manifest_for_token(token: str):
    """(wallet, manifest dict) for a token; manifest None when the wallet was destroyed."""
    from wallets.models import Wallet

    if not token or len(token) > 64:
        return None, None
    wallet = (
        Wallet.objects.select_related("order", "order__partner")
        .prefetch_related("assets")
        .filter(manifest_token=token)
        .first()
    )
    if wallet is None or wallet.destroyed_at is not None:
        return wallet, None
    from catalog.selectors import get_venue

    venue = get_venue()
    order = wallet.order
    customer = order.customer or {}
    holder = " ".join(p for p in (customer.get("firstName"), customer.get("lastName")) if p) or None
    validity, validity_text = ORDER_VALIDITY.get(order.status, ("not_valid", "Not valid"))
    assets = []
    for asset in wallet.assets.all():
        entry = {
            "assetType": asset.asset_type,
            "assetNumber": asset.asset_number,
            "itemId": asset.item_code,
            "name": asset.name,
            "visitDate": asset.visit_date.isoformat(),
            "visitTime": asset.visit_time.strftime("%H:%M") if asset.visit_time else None,
            "barcode": {"format": "QR", "payload": asset.asset_number},
        }
        if asset.asset_type == "coupon":
            entry.update(description=asset.description,
                         validUntil=asset.valid_until.isoformat() if asset.valid_until else None)
        else:
            entry["admits"] = asset.admits
        assets.append(entry)
    first = assets[0] if assets else None
    return wallet, {
        "externalReferenceNumber": wallet.external_reference_number,
        "walletReferenceNumber": wallet.wallet_reference_number,
        "buyFromOrderReference": order.buy_from_order_reference,
        "sellToOrderReference": order.sell_to_order_reference,
        "partnerId": order.partner.partner_id,
        "holderName": holder,
        "venue": {"name": venue.name, "timeZone": venue.time_zone},
        "visitDate": first["visitDate"] if first else None,
        "visitTime": first["visitTime"] if first else None,
        "validity": validity,
        "validityText": validity_text,
        "assets": assets,
    }

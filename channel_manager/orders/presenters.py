"""Orders as the partner API shows them. Plain dicts (the documented shapes are in
api/serializers.py): a 500-wallet order renders without per-field serializer overhead."""

from __future__ import annotations

from typing import Any

from channel_manager.kernel.formats import hhmm, money, rfc3339
from channel_manager.orders.models import Order, OrderStatus
from wallets.selectors import manifest_url

CUSTOMER_FIELDS = ("firstName", "lastName", "email", "phone", "country", "language")








def asset_dict(asset) -> dict[str, Any]:
    out = {
        "assetType": asset.asset_type,
        "assetNumber": asset.asset_number,
        "itemId": asset.item_code,
        "name": asset.name,
        "visitDate": asset.visit_date.isoformat(),
        "visitTime": hhmm(asset.visit_time),
    }
    if asset.asset_type == "coupon":
        out["description"] = asset.description
        out["validUntil"] = asset.valid_until.isoformat() if asset.valid_until else None
    else:
        out["admits"] = asset.admits
    out["redeemedAt"] = rfc3339(asset.redeemed_at)  # null until used at the gate
    return out


def wallet_dict(wallet) -> dict[str, Any]:
    # A shell has no assets until minting: no need to look.
    assets = wallet.assets.all() if wallet.minted_at else ()
    return {
        "walletReferenceNumber": wallet.wallet_reference_number,
        "externalReferenceNumber": wallet.external_reference_number,
        "assets": [asset_dict(a) for a in assets],
        "manifestUrl": manifest_url(wallet.manifest_token) if wallet.manifest_token else None,
    }


def hold_expires_at(order: Order) -> str | None:
    """When the Draft's hold on its capacity ends (API.md, "Draft holds"); null for every other
    status, and for a Draft whose partnership's holds never expire."""
    if order.status != OrderStatus.DRAFT:
        return None
    return rfc3339(order.hold_expires_at)


def order_dict(order: Order) -> dict[str, Any]:
    """Needs `live_lines` and `live_wallet_links`: from selectors.orders_with_contents, or set
    by the service that just wrote them (so createOrder answers without reading back)."""
    wallets_by_line: dict[int, list] = {}
    for link in order.live_wallet_links:
        wallets_by_line.setdefault(link.line_id, []).append(link.wallet)
    customer = order.customer
    return {
        "orderId": str(order.order_id),
        "partnerId": order.partner.partner_id,
        "sellToOrderReference": order.sell_to_order_reference,
        "buyFromOrderReference": order.buy_from_order_reference,
        "livemode": order.livemode,
        "status": order.status,
        "statusMessage": order.status_message,
        "paymentReference": order.payment_reference,
        "customer": None if customer is None else {f: customer.get(f) for f in CUSTOMER_FIELDS},
        "currency": order.currency,
        "totalAmount": money(order.total_amount),
        "createdAt": rfc3339(order.created_at),
        "updatedAt": rfc3339(order.updated_at),
        "holdExpiresAt": hold_expires_at(order),
        "items": [
            {
                "lineNumber": line.line_number,
                "itemId": line.item_code,
                "itemType": line.item_type,
                "quantity": line.quantity,
                "visitDate": line.visit_date.isoformat(),
                "visitTime": hhmm(line.visit_time),
                "unitPrice": money(line.unit_price),
                "lineTotal": money(line.line_total),
                "wallet": {
                    "externalReferenceNumbers": list(line.external_reference_numbers or []),
                    "componentSchedule": list(line.component_schedule or []),
                },
                "wallets": [wallet_dict(w) for w in wallets_by_line.get(line.pk, [])],
            }
            for line in order.live_lines
        ],
    }

"""The staff back office for deleted orders: the tombstones services.delete_order leaves when a
Draft or Error order is removed (who, when, why, and the order as it was). Read-only: support
searches them; finance reads them in the export's "Deleted orders" section."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.contrib.admin.filters import DateFieldListFilter
from django.db.models import Q
from django.utils.html import format_html

from channel_manager.kernel.admin import ReadOnlyAdminMixin
from channel_manager.orders.models import DeletedOrder
from channel_manager.orders.selectors import parse_order_id

# Who may see wallet links and numbers elsewhere in the admin may see them in the snapshot too.
VIEW_WALLETS = "wallets.view_wallet"
REDACTED = "(hidden: needs permission to view wallets)"


def tombstone_search_q(term: str) -> Q:
    """orderId (exact), sellToOrderReference or paymentReference (contains),
    buyFromOrderReference (CM-00000042) or partnerId (exact)."""
    q = (
        Q(sell_to_order_reference__icontains=term)
        | Q(payment_reference__icontains=term)
        | Q(buy_from_order_reference__iexact=term)
        | Q(partner__partner_id__iexact=term)
    )
    order_uuid = parse_order_id(term)
    if order_uuid is not None:
        q |= Q(order_id=order_uuid)
    return q


def redact_wallet_links(order_json: Any) -> Any:
    """The snapshot without manifest URLs (each a bearer link to the customer's tickets)."""
    if not isinstance(order_json, dict):
        return order_json
    redacted = json.loads(json.dumps(order_json))
    for item in redacted.get("items") or []:
        for wallet in item.get("wallets") or []:
            if isinstance(wallet, dict) and wallet.get("manifestUrl"):
                wallet["manifestUrl"] = REDACTED
    return redacted


@admin.register(DeletedOrder)
class DeletedOrderAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "buy_from_order_reference", "sell_to_order_reference", "partner", "status", "payment_reference",
        "total_amount", "currency", "actor", "deleted_at",
    ]
    list_display_links = ["buy_from_order_reference", "sell_to_order_reference"]
    list_filter = ["livemode", "status", "partner", ("deleted_at", DateFieldListFilter)]
    list_select_related = ["partner"]
    # get_search_results does the searching; a field here makes the admin show the search box.
    search_fields = ["sell_to_order_reference"]
    search_help_text = (
        "orderId, sellToOrderReference, buyFromOrderReference (CM-00000042), paymentReference or partnerId"
    )
    date_hierarchy = "deleted_at"
    list_per_page = 50
    fieldsets = [
        (None, {"fields": [
            "buy_from_order_reference", "order_id", "partner", "sell_to_order_reference", "status",
        ]}),
        ("Payment", {"fields": ["payment_reference", "currency", "total_amount"]}),
        ("Deletion", {"fields": ["deleted_at", "actor", "reason", "created_at"]}),
        ("The order at deletion", {"fields": ["order_json_display"]}),
    ]
    readonly_fields = [
        "buy_from_order_reference", "order_id", "partner", "sell_to_order_reference", "status",
        "payment_reference", "currency", "total_amount", "deleted_at", "actor", "reason", "created_at",
        "order_json_display",
    ]

    def get_search_results(self, request, queryset, search_term):
        term = (search_term or "").strip()
        if not term:
            return queryset, False
        return queryset.filter(tombstone_search_q(term)), False

    def get_fieldsets(self, request, obj=None):
        # Field callables get no request: pick the snapshot's rendering by what the user may see.
        shown = "order_json_display" if request.user.has_perm(VIEW_WALLETS) else "order_json_redacted"
        return [*self.fieldsets[:-1], (self.fieldsets[-1][0], {"fields": [shown]})]

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "order_json_redacted"]

    @admin.display(description="order at deletion (as getOrder showed it)")
    def order_json_display(self, tombstone: DeletedOrder) -> str:
        return _json_block(tombstone.order_json)

    @admin.display(description="order at deletion (as getOrder showed it)")
    def order_json_redacted(self, tombstone: DeletedOrder) -> str:
        return _json_block(redact_wallet_links(tombstone.order_json))


def _json_block(value: Any) -> str:
    return format_html('<pre class="cm-json">{}</pre>', json.dumps(value, indent=2, ensure_ascii=False))

"""Wallets and their assets, read-only: minting, validating and destroying happen through the
order's services (issuance, confirm, replace, delete), never by hand."""

from __future__ import annotations

from django.contrib import admin

from channel_manager.kernel.admin import ReadOnlyAdminMixin
from wallets.models import Asset, Wallet


class AssetInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Asset
    extra = 0
    fields = ["position", "asset_type", "asset_number", "item_code", "name", "visit_date", "visit_time", "admits",
              "description", "valid_until"]
    readonly_fields = fields
    ordering = ["position", "id"]


@admin.register(Wallet)
class WalletAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["__str__", "buy_from_order_reference", "partner", "external_reference_number", "validity",
                    "minted_at", "destroyed_at"]
    list_filter = ["partner", "validity", ("destroyed_at", admin.EmptyFieldListFilter),
                   ("minted_at", admin.EmptyFieldListFilter)]
    list_select_related = ["partner"]
    search_fields = ["=wallet_reference_number", "=external_reference_number", "=assets__asset_number",
                     "=buy_from_order_reference", "=sell_to_order_reference"]
    fields = ["partner", "sell_to_order_reference", "buy_from_order_reference", "holder_name", "holder_language",
              "holder_country", "position", "wallet_reference_number", "external_reference_number", "validity",
              "minted_at", "destroyed_at"]
    readonly_fields = fields
    # The assets, with their ticket numbers, show only to staff who may view assets (Django
    # checks wallets.view_asset for the inline); searching by ticket number needs it too.
    inlines = [AssetInline]

    def get_search_fields(self, request):
        fields = super().get_search_fields(request)
        if request.user.has_perm("wallets.view_asset"):
            return fields
        return [field for field in fields if "asset_number" not in field]


@admin.register(Asset)
class AssetAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["asset_number", "asset_type", "item_code", "name", "visit_date", "visit_time", "admits", "wallet"]
    list_filter = ["asset_type", ("visit_date", admin.DateFieldListFilter)]
    list_select_related = ["wallet"]
    search_fields = ["=asset_number", "=wallet__wallet_reference_number"]
    fields = ["wallet", "asset_type", "asset_number", "item_code", "name", "visit_date", "visit_time", "admits",
              "description", "valid_until", "position"]
    readonly_fields = fields

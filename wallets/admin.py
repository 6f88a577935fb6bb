"""Wallets and their assets, read-only: minting, validating and destroying happen through the
order's services (issuance, confirm, replace, delete), never by hand."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE
from django.template.response import TemplateResponse

from channel_manager.kernel.admin import ReadOnlyAdminMixin, admin_url, log_action, no_store
from wallets.gate.devices import give_new_token, revoke_gate_device
from wallets.models import Asset, GateDevice, GateScan, Wallet


class AssetInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Asset
    extra = 0
    fields = ["position", "asset_type", "asset_number", "item_code", "name", "visit_date", "visit_time", "admits",
              "description", "valid_until", "redeemed_at", "redeemed_by"]
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
    list_display = ["asset_number", "asset_type", "item_code", "name", "visit_date", "visit_time", "admits", "wallet",
                    "redeemed_at"]
    list_filter = ["asset_type", ("visit_date", admin.DateFieldListFilter)]
    list_select_related = ["wallet"]
    search_fields = ["=asset_number", "=wallet__wallet_reference_number"]
    fields = ["wallet", "asset_type", "asset_number", "item_code", "name", "visit_date", "visit_time", "admits",
              "description", "valid_until", "position", "redeemed_at", "redeemed_by"]
    readonly_fields = fields


# ---- The gate -------------------------------------------------------------------------------


@admin.register(GateDevice)
class GateDeviceAdmin(admin.ModelAdmin):
    """Register devices (the token shows once, on the page answering the POST), rename them,
    change the items they admit, revoke them. Never deleted: the scan log points at them."""

    list_display = ["name", "prefix", "device_id", "admits", "created_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "=prefix"]
    filter_horizontal = ["items"]
    readonly_fields = ["device_id", "prefix", "created_at", "revoked_at"]
    actions = ["revoke"]

    def get_fields(self, request, obj=None):
        return ["name", "items"] if obj is None else ["name", "device_id", "prefix", "items", "created_at",
                                                      "revoked_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("items")

    @admin.display(description="Admits")
    def admits(self, device: GateDevice) -> str:
        return ", ".join(item.item_id for item in device.items.all()) or "every item"

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj: GateDevice, form, change: bool) -> None:
        if not change:
            request.cm_gate_token = give_new_token(obj)  # shown by response_add, stored nowhere
        super().save_model(request, obj, form, change)

    def response_add(self, request, obj: GateDevice, post_url_continue=None):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Gate device registered",
            "device": obj,
            "token": request.cm_gate_token,
            "url": admin_url(obj),
        }
        return no_store(TemplateResponse(request, "admin/cm/gate_device_token.html", context).render())

    @admin.action(description="Revoke the selected devices", permissions=["change"])
    def revoke(self, request, queryset) -> None:
        for device in queryset.filter(revoked_at__isnull=True):
            revoke_gate_device(device=device)
            log_action(request, device, CHANGE, "Revoked its token.")
        messages.success(request, "The selected devices are revoked: their tokens are refused from now on.")


@admin.register(GateScan)
class GateScanAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["scanned_at", "code", "device", "result", "reason", "asset", "conflict"]
    list_filter = ["result", "reason", "device", ("superseded_by", admin.EmptyFieldListFilter),
                   ("scanned_at", admin.DateFieldListFilter)]
    list_select_related = ["device", "asset"]
    search_fields = ["=code", "device__name", "=asset__asset_number"]
    fields = ["scanned_at", "received_at", "device", "code", "result", "reason", "asset", "superseded_by"]
    readonly_fields = fields
    date_hierarchy = "scanned_at"

    @admin.display(boolean=True, description="conflict")
    def conflict(self, scan: GateScan) -> bool:
        """Accepted, then superseded by an earlier scan uploaded later (offline)."""
        return scan.superseded_by_id is not None

"""Wallets and their assets, read-only: minting, validating and destroying happen through the
order's services (issuance, confirm, replace, delete), never by hand."""

from __future__ import annotations

import datetime as dt
import uuid

from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE
from django.core.exceptions import PermissionDenied
from django.db.models import Count, F, Max, Min, Q, Sum
from django.db.models.functions import Coalesce
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from catalog.selectors import get_venue, venue_today
from channel_manager.kernel.admin import ReadOnlyAdminMixin, admin_url, log_action, no_store
from wallets.gate import services as gate_services
from wallets.gate.devices import give_new_token, revoke_gate_device
from wallets.models import Asset, AssetType, GateDevice, GateScan, ScanResult, Wallet, WalletValidity

REJECTION_REASONS = [
    gate_services.UNKNOWN_CODE, gate_services.NOT_VALID_YET, gate_services.VOID, gate_services.WRONG_DATE,
    gate_services.OUTSIDE_SLOT, gate_services.ALREADY_REDEEMED, gate_services.NOT_ADMITTED_HERE, "test_ticket",
]


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

    list_display = ["name", "prefix", "device_id", "admits", "user", "created_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), ("user", admin.EmptyFieldListFilter)]
    list_select_related = ["user"]
    search_fields = ["name", "=prefix"]
    filter_horizontal = ["items"]
    readonly_fields = ["device_id", "prefix", "user", "created_at", "revoked_at"]
    actions = ["revoke"]

    def get_fields(self, request, obj=None):
        return ["name", "items"] if obj is None else ["name", "device_id", "prefix", "user", "items", "created_at",
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


class ReasonFilter(admin.SimpleListFilter):
    """The rejection reasons, from the code (not a DISTINCT over the whole log)."""

    title = "reason"
    parameter_name = "reason"

    def lookups(self, request, model_admin):
        return [(reason, reason.replace("_", " ")) for reason in REJECTION_REASONS]

    def queryset(self, request, queryset):
        return queryset.filter(reason=self.value()) if self.value() else queryset


class ScannerFilter(admin.SimpleListFilter):
    title = "scanner"
    parameter_name = "scanner"

    def lookups(self, request, model_admin):
        return [("device", "Gate devices (token)"), ("staff", "Staff (own login)")]

    def queryset(self, request, queryset):
        if self.value() in ("device", "staff"):
            return queryset.filter(device__user__isnull=self.value() == "device")
        return queryset


def scan_search_q(term: str) -> Q | None:
    """A code exactly as scanned (asset numbers also as typed in lower case), a device (name,
    token prefix or deviceId), or a result or reason: each branch can use an index."""
    q = Q(code__in={term, term.upper()})
    devices = GateDevice.objects.filter(Q(name__icontains=term) | Q(prefix=term))
    try:
        devices = devices | GateDevice.objects.filter(device_id=uuid.UUID(term))
    except ValueError:
        pass
    device_pks = list(devices.values_list("pk", flat=True)[:200])
    if device_pks:
        q |= Q(device_id__in=device_pks)
    word = term.lower().replace(" ", "_")
    if word in ScanResult.values:
        q |= Q(result=word)
    if word in REJECTION_REASONS:
        q |= Q(reason=word)
    return q


@admin.register(GateScan)
class GateScanAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The gate's log: every scan, accepted or not. Searchable by code, device and result; the
    attendance page (admitted against sold per date and slot) hangs off it."""

    list_display = ["scanned_at", "code_excerpt", "device", "result_badge", "reason", "asset", "conflict"]
    list_filter = ["result", ReasonFilter, ScannerFilter, "device", ("superseded_by", admin.EmptyFieldListFilter),
                   ("scanned_at", admin.DateFieldListFilter)]
    list_select_related = ["device", "asset"]
    # get_search_results does the searching; a field here makes the admin show the search box.
    search_fields = ["code"]
    search_help_text = "A code as scanned (asset number or QR payload), a device (name, token prefix, deviceId), " \
                       "or a result or reason (accepted, rejected, already redeemed…)"
    fields = ["scanned_at", "received_at", "device", "code", "result", "reason", "asset", "superseded_by"]
    readonly_fields = fields
    date_hierarchy = "scanned_at"
    show_full_result_count = False  # the log grows by the thousand a day: no COUNT(*) of it all
    change_list_template = "gate/scan_change_list.html"

    def get_search_results(self, request, queryset, search_term):
        term = (search_term or "").strip()
        if not term:
            return queryset, False
        return queryset.filter(scan_search_q(term)), False

    @admin.display(description="code", ordering="code")
    def code_excerpt(self, scan: GateScan) -> str:
        return scan.code if len(scan.code) <= 40 else scan.code[:39] + "…"

    @admin.display(boolean=True, description="conflict")
    def conflict(self, scan: GateScan) -> bool:
        """Accepted, then superseded by an earlier scan uploaded later (offline)."""
        return scan.superseded_by_id is not None

    @admin.display(description="result", ordering="result")
    def result_badge(self, scan: GateScan) -> str:
        colour = "#0b6b26" if scan.result == ScanResult.ACCEPTED else "#ba2121"
        return format_html('<strong style="color: {}">{}</strong>', colour, scan.result)

    def get_urls(self):
        return [
            path("attendance/", self.admin_site.admin_view(self.attendance_view), name="wallets_gatescan_attendance"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "cm_attendance_url": reverse("admin:wallets_gatescan_attendance")}
        return super().changelist_view(request, extra_context)

    def attendance_view(self, request):
        """Admitted against sold for one visit date, per item and time slot."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        today = venue_today()
        try:
            day = dt.date.fromisoformat(request.GET.get("date", "")) if request.GET.get("date") else today
        except ValueError:
            day = today
        rows, totals = attendance(day=day)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Attendance on {day:%A %d %B %Y}",
            "day": day,
            "today": today,
            "previous_day": day - dt.timedelta(days=1),
            "next_day": day + dt.timedelta(days=1),
            "rows": rows,
            "totals": totals,
        }
        return TemplateResponse(request, "gate/attendance.html", context)


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "—"


def attendance(*, day: dt.date) -> tuple[list[dict], dict]:
    """Per item and time slot of `day`: tickets sold (valid wallets) and the people they admit,
    tickets used at the gate and the people admitted. One query."""
    counted = (
        Asset.objects.filter(asset_type=AssetType.TICKET, visit_date=day, wallet__validity=WalletValidity.VALID,
                             wallet__destroyed_at__isnull=True)
        .values("item_code", "visit_time")
        .annotate(
            name=Max("name"),
            sold=Count("id"),
            sold_people=Coalesce(Sum("admits"), 0),
            used=Count("id", filter=Q(redeemed_at__isnull=False)),
            admitted=Coalesce(Sum("admits", filter=Q(redeemed_at__isnull=False)), 0),
            first_at=Min("redeemed_at"),
            last_at=Max("redeemed_at"),
        )
        .order_by("item_code", F("visit_time").asc(nulls_first=True))
    )
    rows = list(counted)
    tz = get_venue().tzinfo
    for row in rows:
        # Formatted here: the template would show them in settings.TIME_ZONE, not the venue's.
        for key in ("first_at", "last_at"):
            row[key] = f"{row[key].astimezone(tz):%H:%M}" if row[key] else None
        row["share"] = _share(row["admitted"], row["sold_people"])
        row["waiting"] = row["sold_people"] - row["admitted"]
    totals = {key: sum(row[key] for row in rows) for key in ("sold", "sold_people", "used", "admitted", "waiting")}
    totals["share"] = _share(totals["admitted"], totals["sold_people"])
    return rows, totals

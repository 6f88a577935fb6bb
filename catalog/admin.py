"""The catalog in the admin: the venue, items with their components, coupons and time slots
inline, and capacity per date and slot with what is sold (read-only: issuance keeps it)."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import F

from catalog.models import Capacity, Item, PackageComponent, PackageCoupon, TimeSlot, Venue


@admin.register(Venue)
class VenueAdmin(admin.ModelAdmin):
    list_display = ["name", "time_zone", "currency", "updated_at"]


class TimeSlotInline(admin.TabularInline):
    model = TimeSlot
    extra = 0
    fields = ["time", "capacity"]


class PackageComponentInline(admin.TabularInline):
    model = PackageComponent
    fk_name = "package"
    extra = 0
    fields = ["component", "position"]
    autocomplete_fields = ["component"]


class PackageCouponInline(admin.TabularInline):
    model = PackageCoupon
    extra = 0
    fields = ["code", "description", "valid_days", "position"]


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ["item_id", "name", "item_type", "price", "active", "sale_from", "sale_until", "capacity_per_day",
                    "max_group_size"]
    list_filter = ["item_type", "active"]
    search_fields = ["item_id", "name"]
    ordering = ["item_id"]
    fieldsets = [
        (None, {"fields": ["item_id", "name", "item_type", "price", "active"]}),
        ("Sale and capacity", {"fields": ["sale_from", "sale_until", "capacity_per_day", "max_group_size"]}),
    ]
    inlines = [TimeSlotInline, PackageComponentInline, PackageCouponInline]


@admin.register(Capacity)
class CapacityAdmin(admin.ModelAdmin):
    """What is sold per item, visit date and slot. Rows appear with the first reservation; an
    empty capacity is freesale."""

    list_display = ["item", "visit_date", "visit_time", "capacity", "sold", "remaining_places"]
    list_filter = ["item", ("visit_date", admin.DateFieldListFilter)]
    list_select_related = ["item"]
    search_fields = ["item__item_id", "item__name"]
    date_hierarchy = "visit_date"
    ordering = ["visit_date", "visit_time", "item__item_id"]
    fields = ["item", "visit_date", "visit_time", "capacity", "sold", "remaining_places", "updated_at"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(remaining_sort=F("capacity") - F("sold"))

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="remaining", ordering="remaining_sort")
    def remaining_places(self, row: Capacity) -> str | int:
        return "freesale" if row.capacity is None else row.remaining

"""The catalog in the admin: the venue, items with their components, coupons and time slots
inline, and capacity per date and slot with what is sold (read-only: issuance keeps it).

Staff edits go through catalog.services under the catalog file's rules (a package component is
a ticket, capacity only where it belongs, a new capacity carried over to the capacity rows but
never below what they sold). Nothing here writes a catalog row itself."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import F

from catalog import services
from catalog.models import Capacity, Item, ItemType, PackageComponent, PackageCoupon, TimeSlot, Venue
from channel_manager.kernel.errors import ValidationFailed


class RefusalForm(forms.ModelForm):
    """Shows what the service refused when the admin validates the form a second time."""

    refusal: ValidationFailed | None = None

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.refusal is not None:
            for line in self.refusal.messages():
                self.add_error(None, line)
        return data


class ServiceSavedAdmin(admin.ModelAdmin):
    """A change form whose save is one service call (in save_related, with the inlines' data).
    When the service refuses, the transaction is rolled back and the form is shown again with
    the staff's input and the refusal, as for any invalid form."""

    form = RefusalForm

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ValidationFailed as refusal:
            request.catalog_refusal = refusal
            return super().changeform_view(request, object_id, form_url, extra_context)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        refusal = getattr(request, "catalog_refusal", None)
        if refusal is None:
            return form
        return type(form.__name__, (form,), {"refusal": refusal})

    def save_model(self, request, obj, form, change) -> None:
        """Nothing is written here: save_related saves the whole object through the service."""

    def has_delete_permission(self, request, obj=None) -> bool:
        # No service deletes catalog rows (the catalog file leaves absent items alone): an item
        # goes off sale with `active`.
        return False

    @staticmethod
    def adopt(form: forms.ModelForm, saved: Any) -> None:
        """The admin goes on (logs, redirects) with the row the service saved."""
        for field in saved._meta.concrete_fields:
            setattr(form.instance, field.attname, getattr(saved, field.attname))
        form.instance._state.adding = False


@admin.register(Venue)
class VenueAdmin(ServiceSavedAdmin):
    list_display = ["name", "time_zone", "currency", "updated_at"]
    fields = ["name", "time_zone", "currency"]

    def has_add_permission(self, request) -> bool:
        # One venue per installation.
        return super().has_add_permission(request) and not Venue.objects.exists()

    def save_related(self, request, form, formsets, change) -> None:
        data = form.cleaned_data
        services.save_venue(name=data["name"], time_zone=data["time_zone"], currency=data["currency"])
        self.adopt(form, Venue.objects.order_by("pk").first())


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


def inline_rows(formset) -> list[dict[str, Any]]:
    """The rows an inline formset keeps (not deleted, not left empty), by position."""
    rows = []
    for index, form in enumerate(formset.forms):
        if not hasattr(form, "cleaned_data") or not form.cleaned_data:
            continue  # an extra row left empty
        if formset.can_delete and formset._should_delete_form(form):
            continue
        rows.append((form.cleaned_data.get("position", 0), index, form.cleaned_data))
    return [data for _, _, data in sorted(rows, key=lambda row: row[:2])]


def item_document(data: dict[str, Any], item_id: str, formsets) -> dict[str, Any]:
    """The item as the catalog file would give it (API.md, "Catalog file"); absent is None."""
    by_model = {formset.model: inline_rows(formset) for formset in formsets}
    slots = [{"time": f"{row['time']:%H:%M}", "capacity": row.get("capacity")} for row in by_model.get(TimeSlot, [])]
    components = [{"itemId": row["component"].item_id} for row in by_model.get(PackageComponent, [])]
    coupons = [
        {"code": row["code"], "description": row["description"], "validDays": row["valid_days"]}
        for row in by_model.get(PackageCoupon, [])
    ]
    document = {
        "itemId": item_id,
        "name": data["name"],
        "type": data["item_type"],
        "price": data["price"],
        "active": data["active"],
        "saleFrom": data.get("sale_from"),
        "saleUntil": data.get("sale_until"),
        "capacityPerDay": data.get("capacity_per_day"),
        "maxGroupSize": data.get("max_group_size"),
        "admitBeforeMinutes": data.get("admit_before_minutes") if data["item_type"] != ItemType.PACKAGE else None,
        "admitAfterMinutes": data.get("admit_after_minutes") if data["item_type"] != ItemType.PACKAGE else None,
        "timeSlots": slots or None,
        # A package with none is refused by the service; others must not name the key at all.
        "components": components if components or data["item_type"] == ItemType.PACKAGE else None,
        "coupons": coupons or None,
    }
    return {key: value for key, value in document.items() if value is not None}


@admin.register(Item)
class ItemAdmin(ServiceSavedAdmin):
    list_display = ["item_id", "name", "item_type", "price", "active", "sale_from", "sale_until", "capacity_per_day",
                    "max_group_size"]
    list_filter = ["item_type", "active"]
    search_fields = ["item_id", "name"]
    ordering = ["item_id"]
    fieldsets = [
        (None, {"fields": ["item_id", "name", "item_type", "price", "active"]}),
        ("Sale and capacity", {"fields": ["sale_from", "sale_until", "capacity_per_day", "max_group_size"]}),
        ("Gate", {"fields": ["admit_before_minutes", "admit_after_minutes"]}),
    ]
    inlines = [TimeSlotInline, PackageComponentInline, PackageCouponInline]

    def get_readonly_fields(self, request, obj=None):
        # Items are saved by itemId: another itemId would be another item.
        return ["item_id"] if obj else []

    def save_related(self, request, form, formsets, change) -> None:
        item_id = form.instance.item_id if change else form.cleaned_data["item_id"]
        item, warnings = services.save_item(item=item_document(form.cleaned_data, item_id, formsets))
        self.adopt(form, item)
        for formset in formsets:  # for the change message; the service saved the rows
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for warning in warnings:
            self.message_user(request, warning, messages.WARNING)


@admin.register(Capacity)
class CapacityAdmin(admin.ModelAdmin):
    """What is sold per item, visit date and slot. Rows appear with the first reservation; an
    empty capacity is freesale. Read-only: reservations keep `sold`, and a capacity changes with
    its item or slot (catalog.services.save_item carries it over, never below sold)."""

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

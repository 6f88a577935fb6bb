"""Admin building blocks shared by the apps (no app models imported here)."""

from __future__ import annotations


class ReadOnlyAdminMixin:
    """Rows that staff read but never add, edit or delete by hand; changes go through the
    services, via admin actions."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

"""Admin building blocks shared by the apps (no app models imported here): the read-only mixin,
the staff actor and admin log, and the confirmation page of a changelist action."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse

ACTION_CONFIRMATION_TEMPLATE = "admin/cm/action_confirmation.html"
OBJECT_ACTION_TEMPLATE = "admin/cm/object_action.html"
KEYS_ISSUED_TEMPLATE = "admin/cm/api_keys_issued.html"



class ReadOnlyAdminMixin:
    """Rows that staff read but never add, edit or delete by hand; changes go through the
    services, via admin actions."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


def staff_actor(request: HttpRequest) -> str:
    return f"staff:{request.user.get_username()}"


def log_action(request: HttpRequest, obj: Any, flag: int, message: str) -> None:
    LogEntry.objects.log_actions(
        user_id=request.user.pk, queryset=[obj], action_flag=flag, change_message=message, single_object=True
    )


def admin_url(obj: Any, view: str = "change") -> str | None:
    opts = obj._meta
    try:
        return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=[obj.pk])
    except NoReverseMatch:
        return None


def no_store(response: HttpResponse) -> HttpResponse:
    """A page showing a raw API key must not be kept by any cache."""
    response["Cache-Control"] = "no-store, private"
    response["Pragma"] = "no-cache"
    return response


def confirmation_page(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    *,
    queryset: list,
    action: str,
    title: str,
    intro: str,
    submit_label: str,
    form=None,
    rows: list[dict[str, Any]] | None = None,
) -> TemplateResponse:
    """The intermediate page of a changelist action: the objects, an optional form, and a POST
    (action + post=yes + the selected ids) that runs the action."""
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": title,
        "intro": intro,
        "objects": queryset,
        "rows": rows,
        "action": action,
        "form": form,
        "submit_label": submit_label,
        "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, ACTION_CONFIRMATION_TEMPLATE, context)

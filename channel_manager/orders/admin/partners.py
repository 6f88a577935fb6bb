"""The staff back office for partners and their API keys: set-up, keys shown once, revoking,
switching a partnership off and on, all through channel_manager.kernel.partners."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from channel_manager.kernel import partners
from channel_manager.kernel.admin import (
    KEYS_ISSUED_TEMPLATE,
    OBJECT_ACTION_TEMPLATE,
    ReadOnlyAdminMixin,
    admin_url,
    confirmation_page,
    log_action,
    no_store,
)
from channel_manager.kernel.models import ApiKey, Partner
from channel_manager.orders import testmode
from channel_manager.orders.admin.forms import (
    IssueKeyForm,
    PartnerChangeForm,
    PartnerCreateForm,
)
from channel_manager.orders.admin.orders import TEST_BADGE

VIEW_API_KEYS = "channel_manager.view_apikey"


def key_mode(key: ApiKey) -> str:
    return "live" if key.livemode else TEST_BADGE


class ApiKeyInline(ReadOnlyAdminMixin, admin.TabularInline):
    """The partner's keys: prefix, label, created, revoked. Never the digest; only for users
    who may view API keys."""

    model = ApiKey
    extra = 0
    can_delete = False
    fields = ["prefix", "mode", "label", "created_at", "revoked_at", "revoke_link"]
    readonly_fields = fields
    ordering = ["-created_at"]

    @admin.display(description="mode")
    def mode(self, key: ApiKey) -> str:
        return key_mode(key)

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.has_perm(VIEW_API_KEYS)

    @admin.display(description="")
    def revoke_link(self, key: ApiKey) -> str:
        if key.revoked_at is not None or not key.pk:
            return ""
        url = reverse("admin:channel_manager_partner_revoke_key", args=[key.partner_id, key.pk])
        return format_html('<a class="button" href="{}">Revoke…</a>', url)


@admin.register(Partner)
class PartnerAdmin(admin.ModelAdmin):
    list_display = ["partner_id", "name", "enabled", "active_from", "draft_hold_minutes", "created_at"]
    list_filter = ["enabled"]
    search_fields = ["partner_id", "name"]
    ordering = ["partner_id"]
    # draft_hold_minutes: how long its Draft orders hold capacity (API.md, "Draft holds").
    fields = ["partner_id", "name", "active_from", "draft_hold_minutes", "enabled", "created_at"]
    form = PartnerChangeForm  # activeFrom within the calendar
    readonly_fields = ["partner_id", "enabled", "created_at"]
    inlines = [ApiKeyInline]
    actions = ["disable_partners", "enable_partners", "issue_keys"]

    # -- permissions ---------------------------------------------------------------------------

    def has_add_permission(self, request) -> bool:
        # Creating a partnership issues its first key, which the creator sees.
        return request.user.has_perm("channel_manager.add_partner") and request.user.has_perm(
            "channel_manager.add_apikey"
        )

    def has_delete_permission(self, request, obj=None) -> bool:
        # A partnership is disabled, never deleted: its orders, keys and events stay on record.
        return False

    def has_issue_key_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("channel_manager.add_apikey")

    def has_revoke_key_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("channel_manager.change_apikey")

    def get_inlines(self, request, obj):
        return [ApiKeyInline] if obj is not None and request.user.has_perm(VIEW_API_KEYS) else []

    # -- views ---------------------------------------------------------------------------------

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/issue-key/", wrap(self.issue_key_view), name="channel_manager_partner_issue_key"),
            path(
                "<path:object_id>/purge-test-data/", wrap(self.purge_test_data_view),
                name="channel_manager_partner_purge_test_data",
            ),
            path(
                "<path:object_id>/revoke-key/<int:key_pk>/",
                wrap(self.revoke_key_view),
                name="channel_manager_partner_revoke_key",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        extra_context["cm_object_tools"] = (
            [("Issue a new API key…", reverse("admin:channel_manager_partner_issue_key", args=[object_id]))]
            if self.has_issue_key_permission(request)
            else []
        )
        if self.has_purge_test_data_permission(request):
            extra_context["cm_object_tools"].append(
                ("Purge test data…", reverse("admin:channel_manager_partner_purge_test_data", args=[object_id]))
            )
        return super().change_view(request, object_id, form_url, extra_context)

    def has_purge_test_data_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("channel_manager.delete_order")

    def purge_test_data_view(self, request, object_id):
        """Remove every test row of one partner (channel_manager.orders.testmode), after a
        confirmation page that names the counts. Live rows are never touched."""
        partner = self._partner_or_404(request, object_id)
        if not self.has_purge_test_data_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            removed = testmode.purge_partner_test_data(partner=partner)
            summary = ", ".join(f"{count} {what}" for what, count in removed.items())
            log_action(request, partner, CHANGE, f"Purged test data: {summary}.")
            self.message_user(request, f"Test data of {partner.partner_id} purged: {summary}.", messages.SUCCESS)
            return HttpResponseRedirect(admin_url(partner))
        counts = testmode.count_test_data(partner=partner)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": partner,
            "title": f"Purge the test data of {partner.partner_id}?",
            "intro": (
                "This deletes " + ", ".join(f"{count} {what}" for what, count in counts.items())
                + ". Live orders, wallets, events and keys are not touched; test keys stay valid. "
                "This cannot be undone."
            ),
            "submit_label": "Yes, purge the test data",
            "danger": True,
            "cancel_url": admin_url(partner),
            "already_done": "" if counts.total else f"{partner.partner_id} has no test data.",
        }
        return TemplateResponse(request, OBJECT_ACTION_TEMPLATE, context)

    def add_view(self, request, form_url="", extra_context=None):
        """Create a partnership through services.create_partner; the response shows its first
        API key, once. It is not stored anywhere (not even in the session): the page is the
        response to the POST."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = PartnerCreateForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            partner, raw_key = partners.create_partner(
                partner_id=form.cleaned_data["partner_id"],
                name=form.cleaned_data["name"],
                active_from=form.cleaned_data["active_from"],
            )
            self.log_addition(request, partner, "Created through services.create_partner; first API key issued.")
            return self.keys_issued_response(request, [(partner, raw_key)], created=True)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Add partner",
            "form": form,
            "intro": "The partnership starts enabled, with a first API key that is shown once on the next page.",
            "submit_label": "Create partner and issue its key",
            "media": self.media + form.media,
        }
        return TemplateResponse(request, OBJECT_ACTION_TEMPLATE, context)

    def keys_issued_response(self, request, issued: list[tuple[Partner, str]], *, created: bool = False):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Partner created" if created else "API key issued",
            "issued": [{"partner": p, "key": k, "url": admin_url(p)} for p, k in issued],
        }
        return no_store(TemplateResponse(request, KEYS_ISSUED_TEMPLATE, context).render())

    def _partner_or_404(self, request, object_id) -> Partner:
        partner = self.get_object(request, unquote(object_id))
        if partner is None:
            raise Http404("No such partner.")
        return partner

    def issue_key_view(self, request, object_id):
        partner = self._partner_or_404(request, object_id)
        if not self.has_issue_key_permission(request):
            raise PermissionDenied
        form = IssueKeyForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            key, raw = partners.issue_api_key(
                partner=partner, label=form.cleaned_data["label"], livemode=form.livemode
            )
            log_action(request, partner, CHANGE, f"Issued {'' if key.livemode else 'test '}API key {key.prefix}…")
            return self.keys_issued_response(request, [(partner, raw)])
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": partner,
            "title": f"Issue a new API key for {partner.partner_id}",
            "intro": "The key is shown once on the next page; only its prefix and a hash are stored.",
            "form": form,
            "submit_label": "Issue key",
            "cancel_url": admin_url(partner),
        }
        return TemplateResponse(request, OBJECT_ACTION_TEMPLATE, context)

    def revoke_key_view(self, request, object_id, key_pk: int):
        partner = self._partner_or_404(request, object_id)
        if not self.has_revoke_key_permission(request):
            raise PermissionDenied
        key = ApiKey.objects.filter(partner=partner, pk=key_pk).first()
        if key is None:
            raise Http404("No such key.")
        if request.method == "POST":
            partners.revoke_api_key(api_key=key)
            log_action(request, partner, CHANGE, f"Revoked API key {key.prefix}…")
            self.message_user(request, f"API key {key.prefix}… of {partner.partner_id} revoked.", messages.SUCCESS)
            return HttpResponseRedirect(admin_url(partner))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": partner,
            "title": f"Revoke API key {key.prefix}… of {partner.partner_id}?",
            "intro": "Requests with this key will answer 401 at once. This cannot be undone.",
            "submit_label": "Yes, revoke it",
            "cancel_url": admin_url(partner),
            "already_done": "This key is already revoked." if key.revoked_at else "",
        }
        return TemplateResponse(request, OBJECT_ACTION_TEMPLATE, context)

    # -- actions -------------------------------------------------------------------------------

    @admin.action(description="Disable the selected partnerships…", permissions=["change"])
    def disable_partners(self, request, queryset):
        chosen = list(queryset)
        if request.POST.get("post") != "yes":
            return confirmation_page(
                self, request, queryset=chosen, action="disable_partners",
                title="Disable these partnerships?",
                intro="Their requests answer 403 partnership_disabled until they are enabled again.",
                submit_label="Yes, disable",
            )
        for partner in chosen:
            partners.set_partner_enabled(partner=partner, enabled=False)
            log_action(request, partner, CHANGE, "Disabled.")
        self.message_user(request, f"{len(chosen)} partnership(s) disabled.", messages.SUCCESS)
        return None

    @admin.action(description="Enable the selected partnerships", permissions=["change"])
    def enable_partners(self, request, queryset):
        chosen = list(queryset)
        for partner in chosen:
            partners.set_partner_enabled(partner=partner, enabled=True)
            log_action(request, partner, CHANGE, "Enabled.")
        self.message_user(request, f"{len(chosen)} partnership(s) enabled.", messages.SUCCESS)

    @admin.action(description="Issue a new API key…", permissions=["issue_key"])
    def issue_keys(self, request, queryset):
        chosen = list(queryset)
        form = IssueKeyForm(request.POST if request.POST.get("post") == "yes" else None)
        if form.is_bound and form.is_valid():
            issued = []
            for partner in chosen:
                key, raw = partners.issue_api_key(
                    partner=partner, label=form.cleaned_data["label"], livemode=form.livemode
                )
                log_action(request, partner, CHANGE, f"Issued {'' if key.livemode else 'test '}API key {key.prefix}…")
                issued.append((partner, raw))
            return self.keys_issued_response(request, issued)
        return confirmation_page(
            self, request, queryset=chosen, action="issue_keys", form=form,
            title="Issue a new API key to these partners?",
            intro="Each key is shown once on the next page. Existing keys stay valid.",
            submit_label="Issue keys",
        )


@admin.register(ApiKey)
class ApiKeyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Keys by prefix; the digest is never shown. Keys are issued from the partner page."""

    list_display = ["prefix", "partner", "mode", "label", "created_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), "livemode", "partner"]
    list_select_related = ["partner"]
    search_fields = ["prefix", "label", "partner__partner_id"]
    fields = ["partner", "prefix", "livemode", "label", "created_at", "revoked_at"]
    readonly_fields = fields
    actions = ["revoke_keys"]

    def has_revoke_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("channel_manager.change_apikey")

    @admin.display(description="mode", ordering="livemode")
    def mode(self, key: ApiKey) -> str:
        return key_mode(key)

    @admin.action(description="Revoke the selected keys…", permissions=["revoke"])
    def revoke_keys(self, request, queryset):
        keys = list(queryset.select_related("partner"))
        if request.POST.get("post") != "yes":
            return confirmation_page(
                self, request, queryset=keys, action="revoke_keys",
                title="Revoke these API keys?",
                intro="Requests with them answer 401 at once. This cannot be undone.",
                submit_label="Yes, revoke",
            )
        for key in keys:
            partners.revoke_api_key(api_key=key)
            log_action(request, key.partner, CHANGE, f"Revoked API key {key.prefix}…")
        self.message_user(request, f"{len(keys)} key(s) revoked.", messages.SUCCESS)
        return None

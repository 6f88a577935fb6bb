"""Forms of the staff admin: the order actions (re-issue, confirm, delete), partner creation and
key issuing, and the finance export filters. Order content is validated exactly as the partner
API validates it (the API's serializers and `order_input_from`); the forms only collect input,
the services in channel_manager.orders.services do the work."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.utils import timezone

from channel_manager.kernel import parsers
from channel_manager.kernel.dates import DAY_RANGE_MESSAGE, INSTANT_RANGE_MESSAGE, in_calendar
from channel_manager.kernel.errors import DomainError
from channel_manager.kernel.formats import hhmm
from channel_manager.kernel.models import Partner
from channel_manager.kernel.problems import flatten_errors
from channel_manager.management.commands.create_partner import PARTNER_ID_RE
from channel_manager.orders.api.serializers import ConfirmRequestSerializer, OrderRequestSerializer
from channel_manager.orders.api.views import order_input_from
from channel_manager.orders.exports import DATE_FIELD_CHOICES, ExportFilters
from channel_manager.orders.models import Order, OrderLine, OrderStatus
from channel_manager.orders.services import OrderInput

# --------------------------------------------------------------------------------------------
# Orders
# --------------------------------------------------------------------------------------------


def line_payload(line: OrderLine) -> dict[str, Any]:
    """One order line in the contract's request format (an entry of `items`)."""
    entry: dict[str, Any] = {
        "itemId": line.item_code,
        "quantity": line.quantity,
        "visitDate": line.visit_date.isoformat(),
        "visitTime": hhmm(line.visit_time),
    }
    wallet: dict[str, Any] = {}
    if line.external_reference_numbers:
        wallet["externalReferenceNumbers"] = list(line.external_reference_numbers)
    if line.component_schedule:
        wallet["componentSchedule"] = list(line.component_schedule)
    if wallet:
        entry["wallet"] = wallet
    return entry


def order_items_payload(order: Order) -> list[dict[str, Any]]:
    return [line_payload(line) for line in sorted(order.lines.all(), key=lambda ln: ln.line_number)]


def order_request_body(order: Order, *, items: Any, payment_reference: str | None) -> dict[str, Any]:
    """A replaceOrder body for the order: its identity and customer, the given items and
    paymentReference."""
    return {
        "partnerId": order.partner.partner_id,
        "sellToOrderReference": order.sell_to_order_reference,
        "paymentReference": payment_reference or None,
        "customer": order.customer,
        "items": items,
    }


def parse_order_body(body: dict[str, Any]) -> tuple[OrderInput | None, list[dict[str, str]]]:
    """Validate a request body with the API's serializer; (order input, []) or (None, errors)."""
    serializer = OrderRequestSerializer(data=body)
    if not serializer.is_valid():
        return None, flatten_errors(serializer.errors)
    return order_input_from(serializer.validated_data), []


def same_content_input(order: Order) -> tuple[OrderInput | None, list[dict[str, str]]]:
    """The order's current content as a replaceOrder input (for "re-issue unchanged")."""
    body = order_request_body(order, items=order_items_payload(order), payment_reference=order.payment_reference)
    return parse_order_body(body)


def problem_messages(error: DomainError) -> list[str]:
    """A service's refusal as lines of text for a form: one per offending field."""
    return error.messages()


class ProblemFormMixin:
    def add_problem(self, error: DomainError) -> None:
        for message in problem_messages(error):
            self.add_error(None, message)


class ReissueForm(ProblemFormMixin, forms.Form):
    """Re-issue a Draft or Error order: its items as JSON in the contract's request format,
    prefilled with the current content (submit unchanged to re-issue the same content)."""

    items = forms.CharField(
        label="items (JSON)",
        widget=forms.Textarea(attrs={"rows": 18, "cols": 100, "spellcheck": "false", "class": "cm-json"}),
        help_text="The order's lines exactly as in the partner API's createOrder/replaceOrder body: "
        'a list of {"itemId", "quantity", "visitDate", "visitTime", "wallet": {…}}. '
        "Submit it unchanged to re-issue the same content, or correct it.",
    )
    payment_reference = forms.CharField(
        label="paymentReference", required=False, max_length=128,
        help_text="Empty: the order settles in Draft and waits for confirmation.",
    )

    def __init__(self, *args: Any, order: Order, **kwargs: Any) -> None:
        self.order = order
        self.order_input: OrderInput | None = None
        kwargs.setdefault(
            "initial",
            {
                "items": json.dumps(order_items_payload(order), indent=2, ensure_ascii=False),
                "payment_reference": order.payment_reference or "",
            },
        )
        super().__init__(*args, **kwargs)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        raw = cleaned.get("items")
        if raw is None:
            return cleaned
        try:
            items = parsers.loads(raw)  # bounded nesting: a deep paste is an error, not a 500
        except ValueError as error:
            self.add_error("items", f"Not valid JSON: {error}")
            return cleaned
        if not isinstance(items, list):
            self.add_error("items", "Must be a JSON list of order lines.")
            return cleaned
        body = order_request_body(self.order, items=items, payment_reference=cleaned.get("payment_reference"))
        self.order_input, errors = parse_order_body(body)
        for error in errors:
            self.add_error(None, f"{error['field']}: {error['message']}" if error["field"] else error["message"])
        return cleaned


class ConfirmForm(ProblemFormMixin, forms.Form):
    payment_reference = forms.CharField(label="paymentReference", max_length=128, strip=False)

    def clean_payment_reference(self) -> str:
        serializer = ConfirmRequestSerializer(data={"paymentReference": self.cleaned_data["payment_reference"]})
        if not serializer.is_valid():
            raise forms.ValidationError([e["message"] for e in flatten_errors(serializer.errors)])
        return serializer.validated_data["paymentReference"]


class DeleteForm(ProblemFormMixin, forms.Form):
    reason = forms.CharField(
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        help_text="Required. Recorded in the order's history (Issued → Cancelled) or in the deleted order's "
        "tombstone (Draft, Error), and in the admin log.",
    )

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("Give a reason.")
        return reason


# --------------------------------------------------------------------------------------------
# Partners and API keys
# --------------------------------------------------------------------------------------------


def checked_active_from(value: Any) -> Any:
    """activeFrom as staff entered it, refused at the very ends of the calendar (where the
    moment cannot be moved to another time zone)."""
    if value is not None and not in_calendar(value):
        raise forms.ValidationError(INSTANT_RANGE_MESSAGE)
    return value


class PartnerChangeForm(forms.ModelForm):
    """The partner change page's form: activeFrom checked as on creation."""

    class Meta:
        model = Partner
        fields = ["name", "active_from"]

    def clean_active_from(self) -> Any:
        return checked_active_from(self.cleaned_data["active_from"])


class PartnerCreateForm(forms.Form):
    partner_id = forms.CharField(label="partnerId", max_length=64, help_text="1–64 characters of A-Z a-z 0-9 . _ -")
    name = forms.CharField(max_length=Partner._meta.get_field("name").max_length)
    active_from = forms.DateTimeField(
        label="activeFrom", initial=lambda: timezone.now().replace(microsecond=0),
        help_text="YYYY-MM-DD HH:MM:SS, UTC. Requests before this moment answer 403 partnership_not_active.",
    )

    def clean_active_from(self) -> Any:
        return checked_active_from(self.cleaned_data["active_from"])

    def clean_partner_id(self) -> str:
        value = self.cleaned_data["partner_id"]
        if not PARTNER_ID_RE.fullmatch(value):
            raise forms.ValidationError("Use 1–64 characters of A-Z a-z 0-9 . _ -")
        if Partner.objects.filter(partner_id=value).exists():
            raise forms.ValidationError(f"A partner with partnerId {value} already exists.")
        return value


class IssueKeyForm(forms.Form):
    label = forms.CharField(max_length=100, required=False, help_text="To tell the partner's keys apart.")
    mode = forms.ChoiceField(
        choices=[("live", "Live key (sells real tickets)"), ("test", "Test key (cmk_test_…: test data only)")],
        initial="live", required=False,
        help_text="A test key makes test orders only: a separate capacity pool, never in finance, refused at the gate.",
    )

    @property
    def livemode(self) -> bool:
        return self.cleaned_data.get("mode") != "test"


# --------------------------------------------------------------------------------------------
# Finance export
# --------------------------------------------------------------------------------------------


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="%Y-%m-%d", **kwargs)


class ExportForm(forms.Form):
    date_field = forms.ChoiceField(
        label="Date", choices=DATE_FIELD_CHOICES, initial="created", widget=forms.RadioSelect,
        help_text="Which of the order's dates the range applies to (days in the venue's time zone).",
    )
    date_from = forms.DateField(label="From", required=False, widget=DateInput(), input_formats=["%Y-%m-%d"])
    date_to = forms.DateField(label="To (inclusive)", required=False, widget=DateInput(), input_formats=["%Y-%m-%d"])
    partner = forms.ModelChoiceField(queryset=Partner.objects.order_by("partner_id"), required=False,
                                     empty_label="All partners")
    status = forms.MultipleChoiceField(choices=OrderStatus.choices, required=False,
                                       widget=forms.CheckboxSelectMultiple,
                                       help_text="None ticked: every status. Deleted orders: the status at deletion.")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        for name in ("date_from", "date_to"):
            # The range's ends move into the venue's zone and by a day: keep them in the calendar.
            if cleaned.get(name) and not in_calendar(cleaned[name]):
                self.add_error(name, DAY_RANGE_MESSAGE)
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", "Must not be before From.")
        return cleaned

    def filters(self) -> ExportFilters:
        data = self.cleaned_data
        partner = data.get("partner")
        return ExportFilters(
            date_field=data.get("date_field") or "created",
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
            partner_pk=partner.pk if partner else None,
            statuses=tuple(data.get("status") or ()),
        )

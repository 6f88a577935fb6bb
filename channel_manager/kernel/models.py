"""Partners, their API keys and Idempotency-Key records: who calls every app's API.

The tables keep their `channel_manager` app label (channel_manager.models re-exports these)."""

from __future__ import annotations

from django.core.validators import MaxValueValidator
from django.db import models
from django.utils import timezone

# A Draft order holds its capacity this long by default (API.md, "Draft holds"); 0 means never.
DEFAULT_DRAFT_HOLD_MINUTES = 1440
# At most a year: a longer hold is as good as never, and a bound keeps the expiry computable.
MAX_DRAFT_HOLD_MINUTES = 525_600


class Partner(models.Model):
    partner_id = models.CharField("partnerId", max_length=64, unique=True)
    name = models.CharField(max_length=200)
    active_from = models.DateTimeField(default=timezone.now)
    enabled = models.BooleanField(default=True)
    draft_hold_minutes = models.PositiveIntegerField(
        "draftHoldMinutes",
        default=DEFAULT_DRAFT_HOLD_MINUTES,
        validators=[MaxValueValidator(MAX_DRAFT_HOLD_MINUTES)],
        help_text=(
            "How long a Draft order of this partner holds its capacity before it expires, in minutes; "
            "0 means never. A change applies to holds that start after it."
        ),
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        app_label = "channel_manager"
        ordering = ["partner_id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(draft_hold_minutes__lte=MAX_DRAFT_HOLD_MINUTES), name="partner_draft_hold_bounded"
            ),
        ]

    def __str__(self) -> str:
        return self.partner_id


class ApiKey(models.Model):
    """A partner's API key. Only a SHA-256 digest is kept: keys are 256-bit random, so a fast
    hash is as safe as a slow one and costs nothing per request."""

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="api_keys")
    prefix = models.CharField(max_length=16, help_text="First characters of the key, to tell keys apart.")
    digest = models.CharField(max_length=64, unique=True)
    label = models.CharField(max_length=100, blank=True)
    # A test key (cmk_test_…) makes test data only (API.md, "Test mode").
    livemode = models.BooleanField(
        "live", default=True, help_text="Live keys sell real tickets; test keys (cmk_test_…) make test data only."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        app_label = "channel_manager"
        verbose_name = "API key"

    def __str__(self) -> str:
        mode = "" if self.livemode else "test, "
        return f"{self.prefix}… ({mode}{'revoked' if self.revoked_at else 'active'})"


class IdempotencyRecord(models.Model):
    """One Idempotency-Key of one partner: the request it was bound to and the stored response."""

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="+")
    livemode = models.BooleanField(default=True)
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    locked_at = models.DateTimeField(null=True, blank=True, help_text="Set while the first request runs.")
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_headers = models.JSONField(default=dict, blank=True)
    response_body = models.BinaryField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        app_label = "channel_manager"
        constraints = [
            models.UniqueConstraint(fields=["partner", "livemode", "key"], name="idempotency_key_unique_per_mode")
        ]

    def __str__(self) -> str:
        return self.key

"""The gate API (API.md, "Gate admission"): parse, call the service, render."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from channel_manager.kernel.api import RFC3339Field, StrictCharField, parse_body, problem_responses
from channel_manager.kernel.formats import hhmm, rfc3339
from channel_manager.kernel.problems import validation_problem
from wallets.gate import services
from wallets.gate.authentication import GateDeviceAuthentication, IsGateDevice
from wallets.models import Asset

# A device's clock may run a little ahead; a scan further in the future is refused.
CLOCK_SKEW = dt.timedelta(minutes=5)


@extend_schema_field(OpenApiTypes.DATETIME)
class ScannedAtField(RFC3339Field):
    """An RFC 3339 timestamp, documented as a date-time."""


class ScanInSerializer(serializers.Serializer):
    code = StrictCharField(max_length=4000, trim_whitespace=False)
    scannedAt = ScannedAtField(required=False, help_text="When the device scanned it (scans made offline).")


class GateAssetSerializer(serializers.Serializer):
    assetNumber = serializers.CharField()
    assetType = serializers.ChoiceField(choices=["ticket", "coupon"])
    itemId = serializers.CharField()
    name = serializers.CharField()
    visitDate = serializers.DateField()
    visitTime = serializers.CharField(allow_null=True, help_text="HH:MM")
    admits = serializers.IntegerField(allow_null=True)


class PreviousRedemptionSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    deviceId = serializers.CharField(allow_null=True)


class ScanOutSerializer(serializers.Serializer):
    result = serializers.ChoiceField(choices=["accepted", "rejected"])
    reason = serializers.CharField(allow_null=True)
    asset = GateAssetSerializer(allow_null=True)
    redeemedAt = serializers.DateTimeField(allow_null=True)
    previousRedemption = PreviousRedemptionSerializer(allow_null=True)


def gate_asset_dict(asset: Asset) -> dict[str, Any]:
    return {
        "assetNumber": asset.asset_number,
        "assetType": asset.asset_type,
        "itemId": asset.item_code,
        "name": asset.name,
        "visitDate": asset.visit_date.isoformat(),
        "visitTime": hhmm(asset.visit_time),
        "admits": asset.admits,
    }


def scan_dict(outcome: services.ScanOutcome) -> dict[str, Any]:
    previous = outcome.previous
    return {
        "result": outcome.result,
        "reason": outcome.reason,
        "asset": gate_asset_dict(outcome.asset) if outcome.asset is not None else None,
        "redeemedAt": rfc3339(outcome.redeemed_at),
        "previousRedemption": {"at": rfc3339(previous.at), "deviceId": previous.device_id} if previous else None,
    }


CODE_MAX_LENGTH = ScanInSerializer().fields["code"].max_length


def _plain_scan(data: object) -> dict[str, Any] | None:
    """A body of a plain code only (what a device sends online), as ScanInSerializer would read
    it; None for anything else, which the serializer then reads (and words the errors of). Every
    scan parses its body: the serializer cost more than this."""
    if type(data) is not dict or len(data) != 1:
        return None
    code = data.get("code")
    # ASCII: no NUL, no surrogates (the serializer refuses those), and nothing to trim or blank.
    if type(code) is not str or not 0 < len(code) <= CODE_MAX_LENGTH or not code.isascii() or "\x00" in code:
        return None
    return {"code": code}


class ScanView(APIView):
    """POST /gate/scans: admit a code once (200 accepted or rejected, with the reason)."""

    authentication_classes = [GateDeviceAuthentication]
    permission_classes = [IsGateDevice]
    throttle_classes: list = []

    @extend_schema(
        operation_id="gateScan", tags=["gate"], request=ScanInSerializer,
        responses={200: ScanOutSerializer, **problem_responses(400, 401, 403)},
    )
    def post(self, request: Request) -> Response:
        data = _plain_scan(request.data) or parse_body(ScanInSerializer, request.data)
        scanned_at = data.get("scannedAt")
        if scanned_at is not None and scanned_at > timezone.now() + CLOCK_SKEW:
            raise validation_problem([{"field": "scannedAt", "message": "Must not be in the future."}])
        outcome = services.scan_code(device=request.user, code=data["code"], scanned_at=scanned_at)
        return Response(scan_dict(outcome))

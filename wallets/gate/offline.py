"""The gate offline (API.md, "Gate admission", Offline): a device that verifies signed codes
without the network keeps up with voided and used codes (GET /gate/sync) and uploads the scans
it made meanwhile (POST /gate/scans/batch). Parse, call one service, render."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from channel_manager.kernel.api import StrictCharField, parse_body, problem_responses
from channel_manager.kernel.cursors import CURSOR_ERROR, BadCursor
from channel_manager.kernel.formats import rfc3339
from channel_manager.kernel.problems import validation_problem
from wallets.gate import services
from wallets.gate.api import CLOCK_SKEW, PreviousRedemptionSerializer, ScannedAtField, ScanOutSerializer, scan_dict
from wallets.gate.authentication import GateDeviceAuthentication, IsGateDevice
from wallets.gate.changes import SYNC_PAGE_SIZE, SyncPosition, changes_since

MAX_BATCH = 500

# ---- GET /gate/sync ---------------------------------------------------------------------------


class RedeemedChangeSerializer(serializers.Serializer):
    assetNumber = serializers.CharField()
    at = serializers.DateTimeField(help_text="When the scan that redeemed it was made.")


class SyncOutSerializer(serializers.Serializer):
    voided = serializers.ListField(child=serializers.CharField(), help_text="Asset numbers that became void.")
    redeemed = RedeemedChangeSerializer(
        many=True, help_text="Assets used at the gate, in feed order. An asset appears again when its "
        "redemption moved to an earlier offline scan: its last entry holds.",
    )
    next = serializers.CharField(help_text="The cursor for the next call (always present; the same cursor "
                                 "when nothing changed).")


class SyncView(APIView):
    """GET /gate/sync?cursor=: what changed since the cursor."""

    authentication_classes = [GateDeviceAuthentication]
    permission_classes = [IsGateDevice]
    throttle_classes: list = []

    @extend_schema(
        operation_id="syncGate", tags=["gate"],
        summary="Voided and redeemed codes since a cursor, for devices that verify codes offline",
        parameters=[OpenApiParameter(
            "cursor", OpenApiTypes.STR, required=False,
            description="The previous answer's `next`; absent: from the start of the feed.",
        )],
        description=f"At most {SYNC_PAGE_SIZE} changes per call, oldest first: when an answer holds "
        f"{SYNC_PAGE_SIZE}, call again with `next` at once. A device limited to some items sees only "
        "theirs. No change is ever skipped: a change committed late is held back until it can be "
        "given in order.",
        responses={200: SyncOutSerializer, **problem_responses(400, 401, 403)},
    )
    def get(self, request: Request) -> Response:
        raw = request.query_params.get("cursor")
        try:
            position = SyncPosition.decode(raw) if raw else SyncPosition()
        except BadCursor:
            raise validation_problem([CURSOR_ERROR]) from None
        page = changes_since(position=position, item_ids=request.user.admitted_item_ids)
        return Response({
            "voided": page.voided,
            "redeemed": [{"assetNumber": number, "at": rfc3339(at)} for number, at in page.redeemed],
            "next": page.next.encode(),
        })


# ---- POST /gate/scans/batch -------------------------------------------------------------------


class OfflineScanSerializer(serializers.Serializer):
    code = StrictCharField(max_length=4000, trim_whitespace=False)
    scannedAt = ScannedAtField(help_text="When the device scanned it.")


class BatchInSerializer(serializers.Serializer):
    scans = OfflineScanSerializer(many=True, allow_empty=False, max_length=MAX_BATCH)


class BatchResultSerializer(ScanOutSerializer):
    conflict = PreviousRedemptionSerializer(
        allow_null=True, help_text="This scan was earlier than the asset's recorded redemption (at, by "
        "deviceId), which it replaces: that later scan now counts as already_redeemed.",
    )


class BatchOutSerializer(serializers.Serializer):
    results = BatchResultSerializer(many=True, help_text="One per uploaded scan, in the order uploaded.")


def result_dict(outcome: services.ScanOutcome) -> dict[str, Any]:
    superseded = outcome.superseded
    return {
        **scan_dict(outcome),
        "conflict": {"at": rfc3339(superseded.at), "deviceId": superseded.device_id} if superseded else None,
    }


class ScanBatchView(APIView):
    """POST /gate/scans/batch: the scans a device made offline."""

    authentication_classes = [GateDeviceAuthentication]
    permission_classes = [IsGateDevice]
    throttle_classes: list = []

    @extend_schema(
        operation_id="uploadGateScans", tags=["gate"], request=BatchInSerializer,
        summary="Upload scans made offline (1 to 500); the earliest scannedAt of an asset wins",
        description="Each scan is checked at its scannedAt and answered like gateScan, in the order "
        "uploaded. When two devices redeemed the same asset offline, the earliest scannedAt wins, "
        "whichever uploads first: a later upload of an earlier scan takes the redemption over and "
        "reports the displaced one in `conflict` (the scan log marks it superseded); the others are "
        "already_redeemed. Uploading the same scan again answers as the first time.",
        responses={200: BatchOutSerializer, **problem_responses(400, 401, 403)},
    )
    def post(self, request: Request) -> Response:
        data = parse_body(BatchInSerializer, request.data)
        latest = timezone.now() + CLOCK_SKEW
        future = [
            {"field": f"scans[{i}].scannedAt", "message": "Must not be in the future."}
            for i, scan in enumerate(data["scans"]) if scan["scannedAt"] > latest
        ]
        if future:
            raise validation_problem(future)
        outcomes = services.upload_scans(
            device=request.user, scans=[(scan["code"], scan["scannedAt"]) for scan in data["scans"]]
        )
        return Response({"results": [result_dict(outcome) for outcome in outcomes]})

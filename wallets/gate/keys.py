"""GET /gate/keys: the venue's public signing keys as a JWKS, for verifying QR codes offline.

No authentication: public keys are public, and a device must be able to fetch them before it
holds anything else. Cacheable by anyone for KEYS_MAX_AGE; a conditional request with the ETag
answers 304.
"""

from __future__ import annotations

from django.utils.cache import get_conditional_response, patch_cache_control
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import permissions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from wallets.gate import signing

# Short, so that a device sees a new key within minutes of a rotation (old keys stay listed).
KEYS_MAX_AGE = 300


class PublicJwkSerializer(serializers.Serializer):
    kty = serializers.ChoiceField(choices=["OKP"])
    crv = serializers.ChoiceField(choices=["Ed25519"])
    kid = serializers.CharField(help_text="The `kid` in a signed code's JWS header.")
    x = serializers.CharField(help_text="The public key, base64url (RFC 8037).")


class JwksSerializer(serializers.Serializer):
    keys = PublicJwkSerializer(many=True, help_text="The key that signs new codes first, then older ones still valid.")


class GateKeysView(APIView):
    """GET /gate/keys: {"keys": [{"kty": "OKP", "crv": "Ed25519", "kid", "x"}…]}."""

    authentication_classes: list = []
    permission_classes = [permissions.AllowAny]
    throttle_classes: list = []

    @extend_schema(
        operation_id="getGateKeys", tags=["gate"], auth=[],
        summary="The public keys that verify signed QR codes (JWKS)",
        description="Every asset's QR payload is a JWS compact serialization signed with EdDSA (Ed25519); its "
        "header's `kid` names one of these keys. Keys rotate: a retired key stays listed while codes it signed "
        f"can still be used. No authentication. `Cache-Control: public, max-age={KEYS_MAX_AGE}` and an `ETag`; "
        "revalidate with If-None-Match (304).",
        parameters=[OpenApiParameter(
            "If-None-Match", OpenApiTypes.STR, OpenApiParameter.HEADER, required=False,
            description="An ETag from an earlier answer: 304 Not Modified (no body) while the keys are the same.",
        )],
        responses={
            200: OpenApiResponse(JwksSerializer, description="The listed public keys."),
            304: OpenApiResponse(description="Not Modified; no body."),
        },
    )
    def get(self, request: Request) -> Response:
        jwks, etag = signing.public_jwks_with_etag()
        response = Response(jwks)
        response["ETag"] = etag
        patch_cache_control(response, public=True, max_age=KEYS_MAX_AGE)
        return get_conditional_response(request, etag=etag, response=response)

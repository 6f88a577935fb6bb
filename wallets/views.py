"""The customer-facing wallet manifest: a capability URL, no API key."""

from __future__ import annotations

import hmac

from django.http import HttpRequest, HttpResponse, JsonResponse

from wallets.selectors import manifest_for_token


def _private(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "private, no-store"
    response["Referrer-Policy"] = "no-referrer"
    response["X-Robots-Tag"] = "noindex"
    return response


def wallet_manifest(request: HttpRequest, token: str) -> HttpResponse:
    wallet, manifest = manifest_for_token(token)
    if wallet is None or not hmac.compare_digest(wallet.manifest_token or "", token):
        return _private(JsonResponse({"detail": "No such wallet."}, status=404))
    if manifest is None:
        return _private(JsonResponse({"detail": "This wallet was cancelled or replaced."}, status=410))
    return _private(JsonResponse(manifest))

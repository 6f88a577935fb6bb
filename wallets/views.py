"""The customer-facing wallet manifest: a capability URL, no API key.

`/wallets/<token>` answers JSON (`Accept: application/json`, or `?format=json`) or, by default
and to browsers, a mobile page with one QR code per asset. `/wallets/<token>/pass.pkpass` is the
Apple Wallet pass, when passes are configured (wallets.passkit). Every answer, errors included,
is private, uncached, unindexed and sends no referrer: the URL is the only key to the wallet.
"""

from __future__ import annotations

import logging
from typing import Any

import segno
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from wallets import passkit
from wallets.selectors import (
    Manifest,
    ManifestAsset,
    build_manifest,
    manifest_json,
    manifest_url,
    wallet_for_token,
    wallet_is_gone,
)

logger = logging.getLogger(__name__)

PRIVATE_HEADERS = {
    "Cache-Control": "private, no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
}
# The page has no script, no external resource: inline CSS and inline SVG only.
PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://errors.channel-manager.example/"
SAFE_METHODS = ("GET", "HEAD")
FALLBACK_LANGUAGE = "en"


# --------------------------------------------------------------------------------------------
# Responses
# --------------------------------------------------------------------------------------------


def _private(response: HttpResponse) -> HttpResponse:
    for name, value in PRIVATE_HEADERS.items():
        response[name] = value
    return response


def _problem(status: int, code: str, title: str, detail: str) -> HttpResponse:
    body = {"type": PROBLEM_TYPE_BASE + code, "title": title, "status": status, "code": code, "detail": detail}
    return _private(JsonResponse(body, status=status, content_type=PROBLEM_CONTENT_TYPE))


def _wants_json(request: HttpRequest) -> bool:
    requested = request.GET.get("format")
    if requested in ("json", "html"):
        return requested == "json"
    return request.get_preferred_type(["text/html", "application/json"]) == "application/json"


def page_language(language: str | None, country: str | None = None) -> str:
    """The customer's language as Django knows it (`en` + country `GB` gives `en-gb`), else en."""
    candidates = []
    if isinstance(language, str) and language.strip():
        code = language.strip().replace("_", "-").lower()
        if "-" not in code and isinstance(country, str) and country.strip():
            candidates.append(f"{code}-{country.strip().lower()}")
        candidates.append(code)
    for candidate in candidates:
        try:
            return translation.get_supported_language_variant(candidate)
        except LookupError:
            continue
    return FALLBACK_LANGUAGE


def _page(request: HttpRequest, template: str, context: dict[str, Any], *, status: int = 200,
          language: str = FALLBACK_LANGUAGE) -> HttpResponse:
    with translation.override(language):
        html = render_to_string(template, {**context, "language": language}, request=request)
    response = HttpResponse(html, status=status, content_type="text/html; charset=utf-8")
    response["Content-Security-Policy"] = PAGE_CSP
    return _private(response)


def _not_found(request: HttpRequest, *, as_json: bool) -> HttpResponse:
    if as_json:
        return _problem(404, "not_found", "Not found", "No wallet has this link.")
    return _page(request, "wallets/not_found.html", {}, status=404)


def _gone(request: HttpRequest, *, as_json: bool, language: str = FALLBACK_LANGUAGE) -> HttpResponse:
    if as_json:
        return _problem(
            410, "wallet_gone", "Wallet no longer valid",
            "This wallet was cancelled or replaced; its tickets and coupons are no longer valid.",
        )
    return _page(request, "wallets/gone.html", {}, status=410, language=language)


def _method_not_allowed() -> HttpResponse:
    response = _problem(405, "method_not_allowed", "Method not allowed", "Only GET is allowed here.")
    response["Allow"] = ", ".join(SAFE_METHODS)
    return response


def _customer_language(wallet) -> str:
    return page_language(wallet.holder_language, wallet.holder_country)


# --------------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------------


# A signed payload is about 230 characters: at level L that is a version 10 QR code (57 modules),
# which a phone camera reads off another phone's screen; segno raises the level when the version
# has room. A screen is clean and flat: the size of the modules matters more than the level.
QR_ERROR_LEVEL = "l"


def make_qr(payload: str) -> segno.QRCode:
    return segno.make_qr(payload, error=QR_ERROR_LEVEL, boost_error=True)


def qr_svg(payload: str, *, label: str) -> SafeString:
    """An inline, scalable SVG QR code with a quiet zone, announced to screen readers as `label`."""
    svg = make_qr(payload).svg_inline(
        scale=1, border=4, dark="#000", light="#fff", omitsize=True, svgclass="qr-code", lineclass=None
    )
    attributes = f'role="img" aria-label="{escape(label)}" focusable="false" shape-rendering="crispEdges" '
    return mark_safe(svg.replace("<svg ", "<svg " + attributes, 1))  # segno's own SVG; the label is escaped


def _asset_label(asset: ManifestAsset) -> str:
    kind = "coupon" if asset.is_coupon else "ticket"
    return f"QR code of the {kind} {asset.name}, number {asset.asset_number}"


def _cards(manifest: Manifest, assets: tuple[ManifestAsset, ...]) -> list[dict[str, Any]]:
    cards = []
    for position, asset in enumerate(assets, start=1):
        qr = qr_svg(asset.barcode_payload, label=_asset_label(asset)) if asset.barcode_payload else None
        cards.append({
            "asset": asset,
            "qr": qr,
            "position": position,
            "count": len(assets),
            "own_visit": (asset.visit_date, asset.visit_time) != (manifest.visit_date, manifest.visit_time),
        })
    return cards


def _manifest_page(request: HttpRequest, manifest: Manifest, *, language: str) -> HttpResponse:
    pkpass_url = None
    if manifest.valid and manifest.assets and passkit.passkit_enabled():
        pkpass_url = reverse("wallet-pkpass", kwargs={"token": manifest.token})
    context = {
        "manifest": manifest,
        "ticket_cards": _cards(manifest, manifest.tickets),
        "coupon_cards": _cards(manifest, manifest.coupons),
        "pkpass_url": pkpass_url,
    }
    return _page(request, "wallets/manifest.html", context, language=language)


# --------------------------------------------------------------------------------------------
# Views
# --------------------------------------------------------------------------------------------


def wallet_manifest(request: HttpRequest, token: str) -> HttpResponse:
    """The wallet: JSON or the page. 404 for an unknown token, 410 for a destroyed wallet."""
    if request.method not in SAFE_METHODS:
        return _method_not_allowed()
    as_json = _wants_json(request)
    wallet = wallet_for_token(token=token)
    if wallet is None:
        response = _not_found(request, as_json=as_json)
    elif wallet_is_gone(wallet):
        response = _gone(request, as_json=as_json, language=_customer_language(wallet))
    else:
        manifest = build_manifest(wallet)
        if as_json:
            response = _private(JsonResponse(manifest_json(manifest)))
        else:
            response = _manifest_page(request, manifest, language=_customer_language(wallet))
    response["Vary"] = "Accept"
    return response


def wallet_pkpass(request: HttpRequest, token: str) -> HttpResponse:
    """The Apple Wallet pass of a valid wallet; 404 when passes are not configured."""
    if request.method not in SAFE_METHODS:
        return _method_not_allowed()
    wallet = wallet_for_token(token=token)
    if wallet is None:
        return _problem(404, "not_found", "Not found", "No wallet has this link.")
    if wallet_is_gone(wallet):
        return _gone(request, as_json=True)
    config = passkit.passkit_config()
    if config is None:
        return _problem(404, "not_found", "Not found", "Apple Wallet passes are not offered.")
    manifest = build_manifest(wallet)
    if not manifest.valid:
        return _problem(409, "wallet_not_valid", "Wallet not valid yet", manifest.validity_text + ".")
    if not manifest.assets:
        return _problem(404, "not_found", "Not found", "This wallet holds nothing to scan.")
    try:
        data = passkit.build_pkpass(manifest, config=config, page_url=manifest_url(manifest.token))
    except passkit.PassKitError:
        logger.exception("cannot build an Apple Wallet pass")
        return _problem(503, "pass_unavailable", "Pass unavailable", "The pass cannot be made right now.")
    response = HttpResponse(data, content_type=passkit.PKPASS_CONTENT_TYPE)
    filename = "".join(c for c in (manifest.wallet_reference or "wallet") if c.isalnum() or c in "-_.") or "wallet"
    response["Content-Disposition"] = f'attachment; filename="{filename}.pkpass"'
    return _private(response)

"""Apple Wallet passes (.pkpass) for wallets, per Apple's pass package format.

A pass package is a zip of:

- `pass.json`: an event ticket whose barcode (`barcodes`, and the legacy `barcode` for iOS 8
  and earlier) is the QR code of the wallet's first ticket (its signed payload, with the asset
  number as altText); the other tickets and the coupons are listed on the back, with a link to
  the wallet's page that shows every code;
- `icon.png`, `icon@2x.png`, `icon@3x.png`: required by Wallet; drawn here, no image library;
- `manifest.json`: the SHA-1 hex digest of every other file;
- `signature`: a detached PKCS#7 signature (DER) of `manifest.json` made with the Pass Type ID
  certificate and its key, carrying Apple's WWDR intermediate certificate.

Passes are offered only when configured, through Django settings or, failing those, environment
variables of the same names: PASSKIT_CERT_FILE (the Pass Type ID certificate, PEM or DER),
PASSKIT_KEY_FILE (its private key, PEM or DER), PASSKIT_KEY_PASSWORD (optional),
PASSKIT_WWDR_CERT_FILE (Apple's WWDR intermediate, PEM or DER), PASSKIT_PASS_TYPE_ID (e.g.
`pass.com.example.tickets`) and PASSKIT_TEAM_ID (the Apple developer team id).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import struct
import zipfile
import zlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from django.conf import settings

from channel_manager.kernel.dates import LATEST_DAY
from wallets.selectors import TEST_BANNER, Manifest, ManifestAsset

PKPASS_CONTENT_TYPE = "application/vnd.apple.pkpass"

REQUIRED_SETTINGS = (
    "PASSKIT_CERT_FILE",
    "PASSKIT_KEY_FILE",
    "PASSKIT_WWDR_CERT_FILE",
    "PASSKIT_PASS_TYPE_ID",
    "PASSKIT_TEAM_ID",
)

# The page's colours: dark navy, white text.
BACKGROUND = (11, 37, 69)
FOREGROUND = (255, 255, 255)
LABEL = (200, 215, 235)


class PassKitError(Exception):
    """The pass cannot be built: certificate or key missing or unreadable."""


def _setting(name: str) -> str:
    value = getattr(settings, name, None)
    if value in (None, ""):
        value = os.environ.get(name, "")
    return str(value).strip()


@dataclass(frozen=True)
class PassKitConfig:
    cert_file: str
    key_file: str
    key_password: str
    wwdr_cert_file: str
    pass_type_id: str
    team_id: str


def passkit_config() -> PassKitConfig | None:
    """The configuration when every required setting is given, else None (passes disabled)."""
    if not all(_setting(name) for name in REQUIRED_SETTINGS):
        return None
    return PassKitConfig(
        cert_file=_setting("PASSKIT_CERT_FILE"),
        key_file=_setting("PASSKIT_KEY_FILE"),
        key_password=_setting("PASSKIT_KEY_PASSWORD"),
        wwdr_cert_file=_setting("PASSKIT_WWDR_CERT_FILE"),
        pass_type_id=_setting("PASSKIT_PASS_TYPE_ID"),
        team_id=_setting("PASSKIT_TEAM_ID"),
    )


def passkit_enabled() -> bool:
    return passkit_config() is not None


# --------------------------------------------------------------------------------------------
# Signing
# --------------------------------------------------------------------------------------------


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise PassKitError(f"cannot read the {what} at {path}: {exc.strerror}") from exc


def _load_certificate(path: str, what: str) -> x509.Certificate:
    data = _read(path, what)
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise PassKitError(f"the {what} at {path} is not a PEM or DER certificate") from exc


def _load_key(path: str, password: str):
    data = _read(path, "pass signing key")
    secret = password.encode() if password else None
    try:
        if b"-----BEGIN" in data:
            return serialization.load_pem_private_key(data, password=secret)
        return serialization.load_der_private_key(data, password=secret)
    except (ValueError, TypeError) as exc:
        raise PassKitError(f"the key at {path} cannot be loaded (wrong format or password)") from exc


@dataclass(frozen=True)
class PassSigner:
    certificate: x509.Certificate
    private_key: Any
    wwdr_certificate: x509.Certificate

    @classmethod
    def from_config(cls, config: PassKitConfig) -> PassSigner:
        return cls(
            certificate=_load_certificate(config.cert_file, "Pass Type ID certificate"),
            private_key=_load_key(config.key_file, config.key_password),
            wwdr_certificate=_load_certificate(config.wwdr_cert_file, "WWDR intermediate certificate"),
        )

    def sign(self, data: bytes) -> bytes:
        """A detached PKCS#7 signature of `data` in DER, with signing time and the WWDR cert."""
        return (
            pkcs7.PKCS7SignatureBuilder()
            .set_data(data)
            .add_signer(self.certificate, self.private_key, hashes.SHA256())
            .add_certificate(self.wwdr_certificate)
            .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary])
        )


# --------------------------------------------------------------------------------------------
# pass.json
# --------------------------------------------------------------------------------------------


def _rgb(colour: tuple[int, int, int]) -> str:
    return "rgb({},{},{})".format(*colour)


def _zone(name: str) -> dt.tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def _local(day: dt.date, time: dt.time | None, zone: dt.tzinfo) -> str:
    """W3C date-time with the venue's offset, as pass.json wants it."""
    return dt.datetime.combine(day, time or dt.time(0, 0), tzinfo=zone).isoformat()


def serial_number(manifest: Manifest) -> str:
    """Unique and stable per wallet, revealing neither the token nor a code."""
    return hashlib.sha256(b"pkpass:" + manifest.token.encode()).hexdigest()[:32]


def _barcode(asset: ManifestAsset) -> dict[str, str]:
    """The QR code encodes the signed payload; the asset number shows beneath it, for keying in."""
    return {
        "format": "PKBarcodeFormatQR",
        "message": asset.barcode_payload or "",
        "messageEncoding": "iso-8859-1",
        "altText": asset.asset_number or "",
    }


def _asset_line(asset: ManifestAsset) -> str:
    when = asset.visit_date.isoformat() + (f" {asset.visit_time:%H:%M}" if asset.visit_time else "")
    if asset.is_coupon:
        return f"{asset.description or asset.name} (valid until {asset.valid_until.isoformat()}): {asset.asset_number}"
    admits = f", admits {asset.admits}" if asset.admits and asset.admits > 1 else ""
    return f"{asset.name}, {when}{admits}: {asset.asset_number}"


def pass_json(manifest: Manifest, *, pass_type_id: str, team_id: str, page_url: str) -> dict[str, Any]:
    """The pass of a valid wallet: an event ticket scanning as its first ticket."""
    if not manifest.valid or not manifest.assets:
        raise PassKitError("only a valid wallet with assets has a pass")
    zone = _zone(manifest.venue_time_zone)
    main = manifest.tickets[0] if manifest.tickets else manifest.assets[0]
    others = [a for a in manifest.assets if a is not main]
    last_day = max(a.valid_until for a in manifest.assets)
    barcode = _barcode(main)

    header = [{"key": "admits", "label": "ADMITS", "value": main.admits or 1}] if main.is_ticket else []
    if not manifest.livemode:  # a test order's pass says so where it cannot be missed
        header.insert(0, {"key": "test", "label": "TEST", "value": "NOT VALID FOR ENTRY"})
    secondary: list[dict[str, Any]] = [
        {"key": "date", "label": "DATE", "value": _local(main.visit_date, None, zone),
         "dateStyle": "PKDateStyleMedium", "timeStyle": "PKDateStyleNone", "ignoresTimeZone": True},
    ]
    if main.visit_time:
        secondary.append(
            {"key": "time", "label": "TIME", "value": _local(main.visit_date, main.visit_time, zone),
             "dateStyle": "PKDateStyleNone", "timeStyle": "PKDateStyleShort", "ignoresTimeZone": True}
        )
    auxiliary = []
    if manifest.holder_name:
        auxiliary.append({"key": "holder", "label": "NAME", "value": manifest.holder_name})
    if manifest.wallet_reference:
        auxiliary.append({"key": "reference", "label": "REFERENCE", "value": manifest.wallet_reference})
    back: list[dict[str, Any]] = []
    if not manifest.livemode:
        back.append({"key": "test", "label": "Test mode", "value": f"{TEST_BANNER}: made with a test API key."})
    if others:
        back.append({
            "key": "others", "label": "Also in this wallet (scan each from the web page)",
            "value": "\n".join(_asset_line(a) for a in others),
        })
    back.extend([
        {"key": "page", "label": "All your tickets and coupons", "value": page_url},
        {"key": "order", "label": "Booking reference", "value": manifest.sell_to_order_reference},
        {"key": "buyFrom", "label": "Channel manager reference", "value": manifest.buy_from_order_reference},
        {"key": "timeZone", "label": "Times are local to the venue", "value": manifest.venue_time_zone},
    ])
    return {
        "formatVersion": 1,
        "passTypeIdentifier": pass_type_id,
        "teamIdentifier": team_id,
        "serialNumber": serial_number(manifest),
        "organizationName": manifest.venue_name,
        "description": f"{manifest.venue_name}: {main.name}" + ("" if manifest.livemode else f" ({TEST_BANNER})"),
        "logoText": manifest.venue_name if manifest.livemode else TEST_BANNER,
        "foregroundColor": _rgb(FOREGROUND),
        "backgroundColor": _rgb(BACKGROUND),
        "labelColor": _rgb(LABEL),
        "sharingProhibited": True,
        "relevantDate": _local(main.visit_date, main.visit_time, zone),
        # The day after the last valid day (kept inside the calendar for rows written before visits
        # were capped: 9999-12-31 has no day after).
        "expirationDate": _local(min(last_day, LATEST_DAY) + dt.timedelta(days=1), None, zone),
        "barcode": barcode,
        "barcodes": [barcode],
        "eventTicket": {
            "headerFields": header,
            "primaryFields": [{"key": "item", "label": "COUPON" if main.is_coupon else "TICKET", "value": main.name}],
            "secondaryFields": secondary,
            "auxiliaryFields": auxiliary,
            "backFields": back,
        },
    }


# --------------------------------------------------------------------------------------------
# Icons (Wallet refuses a pass without icon.png)
# --------------------------------------------------------------------------------------------


def _png(width: int, height: int, rows: list[bytes]) -> bytes:
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + row for row in rows)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


@cache
def icon_png(size: int) -> bytes:
    """A white ticket with round notches on the navy background, `size` pixels square."""
    bg, fg = bytes(BACKGROUND), bytes(FOREGROUND)
    left, right = size * 0.14, size * 0.86
    top, bottom = size * 0.28, size * 0.72
    notch = size * 0.09
    rows = []
    for y in range(size):
        row = bytearray()
        for x in range(size):
            cx, cy = x + 0.5, y + 0.5
            inside = left <= cx <= right and top <= cy <= bottom
            if inside and (min((cx - left) ** 2, (cx - right) ** 2) + (cy - size / 2) ** 2) <= notch**2:
                inside = False
            row += fg if inside else bg
        rows.append(bytes(row))
    return _png(size, size, rows)


# --------------------------------------------------------------------------------------------
# The package
# --------------------------------------------------------------------------------------------


def manifest_digests(files: dict[str, bytes]) -> dict[str, str]:
    """manifest.json's content: the SHA-1 hex digest of every file of the package."""
    return {name: hashlib.sha1(data, usedforsecurity=False).hexdigest() for name, data in sorted(files.items())}


def pkpass_files(manifest: Manifest, *, config: PassKitConfig, signer: PassSigner, page_url: str) -> dict[str, bytes]:
    """Every file of the pass package, manifest.json and signature included."""
    files = {
        "pass.json": json.dumps(
            pass_json(manifest, pass_type_id=config.pass_type_id, team_id=config.team_id, page_url=page_url),
            ensure_ascii=False, indent=2,
        ).encode(),
        "icon.png": icon_png(29),
        "icon@2x.png": icon_png(58),
        "icon@3x.png": icon_png(87),
    }
    manifest_bytes = json.dumps(manifest_digests(files), indent=2).encode()
    files["manifest.json"] = manifest_bytes
    files["signature"] = signer.sign(manifest_bytes)
    return files


def build_pkpass(manifest: Manifest, *, config: PassKitConfig, page_url: str) -> bytes:
    """The .pkpass (a zip) of a valid wallet. Raises PassKitError when it cannot be signed."""
    files = pkpass_files(manifest, config=config, signer=PassSigner.from_config(config), page_url=page_url)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()

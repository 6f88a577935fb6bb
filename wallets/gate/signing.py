"""Signed QR payloads: a JWS compact serialization (RFC 7515) signed with EdDSA/Ed25519 (RFC 8037)
by the venue's key (wallets.gate.keystore), so that a gate can check a code without the network.

    header  {"alg": "EdDSA", "kid": <8 characters>}
    payload {"a": assetNumber, "i": itemId, "d": visitDate, "t": "HH:MM" | null, "x": "ticket" | "coupon"}
            and, on a test asset only (its wallet's livemode False), "test": true

Nothing else goes in: every byte makes the QR code denser (about 230 characters, a version 10
QR code at error level L). Signing and verifying are joserfc's; the keys are cached in-process
for GATE_KEY_CACHE_SECONDS (60), so a manifest read costs no query for them once warm.

Public API: signed_payload(asset), verify(code), looks_signed(code), public_jwks(),
public_jwks_with_etag(), clear_key_cache().
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import threading
import time
from typing import Any, Protocol

from django.conf import settings
from django.core.signals import setting_changed
from django.db import connection, transaction
from django.db.models.signals import post_delete, post_save
from joserfc import jws
from joserfc.errors import InvalidKeyTypeError, JoseError
from joserfc.jwk import OKPKey

from wallets.gate import keystore
from wallets.gate.keystore import GateKeyError, Keys, load_keys
from wallets.models import GateSigningKey

ALGORITHM = "EdDSA"
_JOSERFC_EDDSA = jws.JWSRegistry.algorithms[ALGORITHM]


class _EdDSAWithEd25519(jws.JWSAlgModel):
    """joserfc's EdDSA, limited to Ed25519 (the contract's curve) and without its warning: RFC 9864
    prefers the fully specified name "Ed25519" for the same signature, but the contract and the
    scanners in the field use RFC 8037's "EdDSA"."""

    name = ALGORITHM
    description = _JOSERFC_EDDSA.description
    key_type = "OKP"
    recommended = True

    def sign(self, msg: bytes, key: OKPKey) -> bytes:
        if key.curve_name != "Ed25519":
            raise InvalidKeyTypeError("gate codes are signed with Ed25519 keys")
        return _JOSERFC_EDDSA.sign(msg, key)

    def verify(self, msg: bytes, sig: bytes, key: OKPKey) -> bool:
        return key.curve_name == "Ed25519" and _JOSERFC_EDDSA.verify(msg, sig, key)


class _GateRegistry(jws.JWSRegistry):
    """The one algorithm gate codes use, and sizes that fit a QR code, not a general JWS."""

    algorithms = {ALGORITHM: _EdDSAWithEd25519()}
    recommended = [ALGORITHM]
    max_header_length = 256
    max_payload_length = 1024
    max_signature_length = 128


REGISTRY = _GateRegistry(algorithms=[ALGORITHM])

# Longer is no code of ours (ours are about 230 characters): not worth parsing.
MAX_SIGNED_LENGTH = 1000
# The claim only a test asset's payload carries ("test": true).
TEST_CLAIM = "test"
# An unknown kid reloads the keys (a rotation in another process), at most this often.
UNKNOWN_KID_RELOAD_SECONDS = 5.0


class SignableAsset(Protocol):
    """What signing reads of an asset (wallets.models.Asset has it all)."""

    asset_number: str
    item_code: str
    visit_date: dt.date
    visit_time: dt.time | None
    asset_type: str


# --------------------------------------------------------------------------------------------
# The in-process key cache
# --------------------------------------------------------------------------------------------


class _Ring:
    """The keys as loaded at `loaded_at`: verifiers by kid, the JWKS and its ETag, and the
    signing key, opened (unsealed) on first use."""

    def __init__(self, keys: Keys) -> None:
        self.loaded_at = time.monotonic()
        self.keys = keys
        self.jwks = {"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": k.kid, "x": k.x} for k in keys.listed]}
        self.verifiers = {jwk["kid"]: OKPKey.import_key(jwk) for jwk in self.jwks["keys"]}
        body = json.dumps(self.jwks, separators=(",", ":"), sort_keys=True).encode()
        self.etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        self._signer: tuple[str, OKPKey] | None = None

    def signer(self) -> tuple[str, OKPKey]:
        if self._signer is None:
            kid = self.keys.signer_kid
            assert kid is not None
            self._signer = (kid, OKPKey.import_key(self.keys.private_key(), {"kid": kid}))
        return self._signer


logger = logging.getLogger(__name__)

_ring: _Ring | None = None
_lock = threading.Lock()


def cache_seconds() -> float:
    return float(getattr(settings, "GATE_KEY_CACHE_SECONDS", 60))


def clear_key_cache(**kwargs: object) -> None:
    global _ring
    with _lock:
        _ring = None


def _key_changed(**kwargs: object) -> None:
    # Now (this transaction reads its own change) and at commit (another thread may have
    # reloaded the old keys in between).
    clear_key_cache()
    transaction.on_commit(clear_key_cache)


# Keys saved or deleted in this process (rotate_gate_keys, tests) show at once; other processes
# see them within cache_seconds(), or at once for an unknown kid (verify).
post_save.connect(_key_changed, sender=GateSigningKey, dispatch_uid="wallets.gate.signing.key_saved")
post_delete.connect(_key_changed, sender=GateSigningKey, dispatch_uid="wallets.gate.signing.key_deleted")


def _setting_changed(*, setting: str, **kwargs: object) -> None:
    if setting in ("GATE_SIGNING_KEY_FILE", "SECRET_KEY", "SECRET_KEY_FALLBACKS"):
        clear_key_cache()


setting_changed.connect(_setting_changed, dispatch_uid="wallets.gate.signing.setting_changed")


def _load() -> _Ring:
    global _ring
    ring = _Ring(load_keys())
    # A key this load made inside a transaction may yet roll back: use it, but do not keep it.
    if not (ring.keys.created_now and connection.in_atomic_block):
        with _lock:
            _ring = ring
    return ring


def _current(*, max_age: float | None = None) -> _Ring:
    ring = _ring
    age = cache_seconds() if max_age is None else max_age
    if ring is None or time.monotonic() - ring.loaded_at >= age:
        ring = _load()
    return ring


# --------------------------------------------------------------------------------------------
# Signing and verifying
# --------------------------------------------------------------------------------------------


def claims_of(asset: SignableAsset, *, livemode: bool = True) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "a": asset.asset_number,
        "i": asset.item_code,
        "d": asset.visit_date.isoformat(),
        "t": asset.visit_time.strftime("%H:%M") if asset.visit_time is not None else None,
        "x": str(asset.asset_type),
    }
    if not livemode:
        # Test mode (API.md): a device offline cannot ask whose code it is, so the code says it.
        # Live payloads carry no such claim, and stay as small as before.
        claims[TEST_CLAIM] = True
    return claims


def is_test(claims: dict[str, Any]) -> bool:
    """Whether verified claims are a test asset's: a gate refuses them as test_ticket."""
    return claims.get(TEST_CLAIM) is True


def signed_payload(asset: SignableAsset, *, livemode: bool | None = None) -> str:
    """The asset's QR payload: a JWS compact serialization signed with the venue's current key.
    `livemode` is the asset's wallet's; when not given it is read from `asset.wallet` (a query
    unless the wallet is loaded), so that a test asset is never signed as a live one."""
    if livemode is None:
        livemode = asset.wallet.livemode  # type: ignore[attr-defined]
    kid, key = _signer()
    payload = json.dumps(claims_of(asset, livemode=livemode), separators=(",", ":"), ensure_ascii=False).encode()
    return jws.serialize_compact({"alg": ALGORITHM, "kid": kid}, payload, key, registry=REGISTRY)


def _signer() -> tuple[str, OKPKey]:
    try:
        return _current().signer()
    except GateKeyError as exc:
        if keystore.key_file():
            raise  # the operator's file: nothing here to repair
        # SECRET_KEY changed without a fallback: the signing key no longer opens. A customer's
        # manifest must not fail for it: retire that key (still listed, so codes it signed keep
        # verifying) and sign with a new one.
        logger.error("gate signing key unusable, rotating: %s", exc)
        keystore.rotate_keys()
        clear_key_cache()
        return _current().signer()


def looks_signed(code: str) -> bool:
    """Shaped like a JWS compact serialization (three dot-separated parts, longer than any
    reference): such a code is a signed payload or nothing."""
    return code.count(".") == 2 and 64 < len(code) <= MAX_SIGNED_LENGTH


def verify(code: str) -> dict[str, Any] | None:
    """The claims of a signed payload whose signature a listed key verifies; None for anything
    else (malformed, another algorithm, an unknown or delisted kid, a bad signature)."""
    if not looks_signed(code):
        return None
    try:
        token = jws.extract_compact(code.encode("ascii"), registry=REGISTRY)
        header = token.headers()
        if header.get("alg") != ALGORITHM or set(header) - {"alg", "kid", "typ"}:
            return None
        kid = header.get("kid")
        ring = _current()
        if kid not in ring.verifiers:
            ring = _current(max_age=UNKNOWN_KID_RELOAD_SECONDS)  # rotated in another process?
        key = ring.verifiers.get(kid) if isinstance(kid, str) else None
        if key is None or not jws.validate_compact(token, key, registry=REGISTRY):
            return None
        claims = json.loads(token.payload)
    except (JoseError, ValueError, UnicodeError, TypeError):
        return None
    if not isinstance(claims, dict) or not isinstance(claims.get("a"), str):
        return None
    return claims


def public_jwks() -> dict[str, Any]:
    """The listed public keys as a JWKS (RFC 7517), the signing key first."""
    return _current().jwks


def public_jwks_with_etag() -> tuple[dict[str, Any], str]:
    """public_jwks() and a strong ETag of it (quoted), from the same load."""
    ring = _current()
    return ring.jwks, ring.etag


def current_kid() -> str:
    """The kid new codes are signed with."""
    return _current().keys.signer_kid or ""

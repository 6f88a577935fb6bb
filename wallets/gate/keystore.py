"""The venue's Ed25519 signing keys for QR payloads: where they live and how they rotate.

Two sources, read by wallets.gate.signing:

- The database (the default): GateSigningKey rows. The private key is sealed with AES-256-GCM
  under a key derived from SECRET_KEY with HKDF-SHA256 (SECRET_KEY_FALLBACKS also open it, so
  Django's own secret rotation keeps working); only the public key is stored in the clear. The
  first key is made by `migrate` and, failing that, on first use (the unique `active` column
  lets only one process win). `rotate_gate_keys` retires the active key and makes a new one.
- A key file, when GATE_SIGNING_KEY_FILE names one: PEM PKCS#8 Ed25519 private keys
  (`openssl genpkey -algorithm ed25519`). The first signs; the others stay listed for verifying
  codes they signed. Rotate by putting a new key first and dropping old ones once their codes
  have expired. Database keys still listed keep verifying beside them.

Which keys are listed (GET /gate/keys, and accepted at the online scan): the active key, and a
retired key until its `listed_until`: the later of the last day any ticket or coupon alive at
retirement can be used (a code is only worth something until then) and GATE_KEY_RETIRED_MIN_DAYS
(7) after retirement, which covers codes signed by processes that had not yet seen the rotation
(they see it within GATE_KEY_CACHE_SECONDS). `rotate_gate_keys --revoke` delists at once (a
leaked key).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Max, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from catalog.selectors import venue_today
from wallets.models import Asset, GateSigningKey

HKDF_INFO = b"ota-channel-manager/gate-signing-key/v1"
NONCE_BYTES = 12
KID_LENGTH = 8  # 48 bits of the key's RFC 7638 thumbprint: short, so the QR code stays small
PEM_BLOCK_END = b"-----END PRIVATE KEY-----"


class GateKeyError(Exception):
    """A signing key cannot be used: the key file is unreadable, or the sealed key does not
    open with SECRET_KEY (it was changed without SECRET_KEY_FALLBACKS: rotate_gate_keys)."""


def retired_min_days() -> int:
    return int(getattr(settings, "GATE_KEY_RETIRED_MIN_DAYS", 7))


def key_file() -> str:
    return str(getattr(settings, "GATE_SIGNING_KEY_FILE", "") or "").strip()


# --------------------------------------------------------------------------------------------
# Keys, sealing
# --------------------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def raw_public(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def kid_for(public_key: Ed25519PublicKey) -> str:
    """The start of the key's RFC 7638 JWK thumbprint: the same key always has the same kid."""
    canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": b64url(raw_public(public_key))},
                           separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())[:KID_LENGTH]


def _wrapping_key(secret: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(secret.encode())


def seal(private_key: Ed25519PrivateKey, *, kid: str, secret: str | None = None) -> bytes:
    """nonce || AES-GCM(raw private key), bound to `kid` so that a sealed key cannot be moved to
    another row."""
    raw = private_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(_wrapping_key(secret or settings.SECRET_KEY)).encrypt(nonce, raw, kid.encode())


def unseal(sealed: bytes, *, kid: str) -> Ed25519PrivateKey:
    sealed = bytes(sealed)
    for secret in [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]:
        try:
            raw = AESGCM(_wrapping_key(secret)).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], kid.encode())
        except InvalidTag:
            continue
        return Ed25519PrivateKey.from_private_bytes(raw)
    raise GateKeyError(
        f"the gate signing key {kid} does not open with SECRET_KEY (nor SECRET_KEY_FALLBACKS); "
        "run `manage.py rotate_gate_keys` to make a new one (codes already handed out still verify)"
    )


# --------------------------------------------------------------------------------------------
# What the keys are: the signer and the listed public keys
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublicKey:
    kid: str
    x: str  # base64url raw public key (JWK "x")


@dataclass(frozen=True)
class Keys:
    """The signing key (kid, and how to get its private key) and every listed public key, the
    signer's first."""

    signer_kid: str | None
    signer_sealed: bytes | None  # a database key, opened on first use
    signer_private: Ed25519PrivateKey | None  # a file key
    listed: tuple[PublicKey, ...]
    created_now: bool = False  # the first key was made by this load (see signing's cache)

    def private_key(self) -> Ed25519PrivateKey:
        if self.signer_private is not None:
            return self.signer_private
        if self.signer_kid is None or self.signer_sealed is None:
            raise GateKeyError("no gate signing key")
        return unseal(self.signer_sealed, kid=self.signer_kid)


def file_keys(path: str) -> list[Ed25519PrivateKey]:
    """The Ed25519 private keys of a PEM file, in file order."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise GateKeyError(f"cannot read GATE_SIGNING_KEY_FILE {path}: {exc.strerror}") from exc
    keys = []
    for block in data.split(PEM_BLOCK_END)[:-1]:
        try:
            key = serialization.load_pem_private_key(block + PEM_BLOCK_END, password=None)
        except (ValueError, TypeError) as exc:
            raise GateKeyError(f"GATE_SIGNING_KEY_FILE {path} holds a key that cannot be read") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise GateKeyError(f"GATE_SIGNING_KEY_FILE {path} holds a key that is not Ed25519")
        keys.append(key)
    if not keys:
        raise GateKeyError(f"GATE_SIGNING_KEY_FILE {path} holds no PEM private key")
    return keys


def listed_rows() -> list[GateSigningKey]:
    """The database keys that verify: the active one and retired ones still listed; one query."""
    today = venue_today()
    return list(
        GateSigningKey.objects.filter(Q(active=True) | Q(listed_until__gte=today))
        .order_by(F("active").desc(nulls_last=True), "-created_at", "-id")
        .only("kid", "public_x", "sealed_private_key", "active")
    )


def load_keys() -> Keys:
    """The signer and the listed keys, as they stand now (one query, or a few on first use)."""
    rows = listed_rows()
    db_public = [PublicKey(kid=row.kid, x=row.public_x) for row in rows]
    path = key_file()
    if path:
        signers = file_keys(path)
        from_file = [PublicKey(kid=kid_for(k.public_key()), x=b64url(raw_public(k.public_key()))) for k in signers]
        listed = _unique(from_file + db_public)
        return Keys(signer_kid=from_file[0].kid, signer_sealed=None, signer_private=signers[0], listed=listed)
    active = next((row for row in rows if row.active), None)
    created = False
    if active is None:
        active, created = first_key()
        db_public.insert(0, PublicKey(kid=active.kid, x=active.public_x))
    return Keys(signer_kid=active.kid, signer_sealed=bytes(active.sealed_private_key), signer_private=None,
                listed=_unique(db_public), created_now=created)


def _unique(keys: list[PublicKey]) -> tuple[PublicKey, ...]:
    return tuple({key.kid: key for key in reversed(keys)}.values())[::-1]


# --------------------------------------------------------------------------------------------
# Making and rotating keys
# --------------------------------------------------------------------------------------------


def _new_row() -> GateSigningKey:
    private_key = Ed25519PrivateKey.generate()
    public_key = private_key.public_key()
    kid = kid_for(public_key)
    return GateSigningKey.objects.create(
        kid=kid, public_x=b64url(raw_public(public_key)), sealed_private_key=seal(private_key, kid=kid), active=True,
    )


def first_key() -> tuple[GateSigningKey, bool]:
    """The active key, made if there is none. Two processes racing here both end with the same
    key: the unique `active` column lets one insert win, the other reads it. Returns (key, made)."""
    try:
        with transaction.atomic():
            return _new_row(), True
    except IntegrityError:
        return GateSigningKey.objects.get(active=True), False


def ensure_first_key() -> None:
    """After `migrate`: the first key, so that nothing has to run for codes to be signed."""
    if not key_file() and not GateSigningKey.objects.filter(active=True).exists():
        first_key()


def last_usable_day() -> dt.date | None:
    """The last day any live ticket or coupon can be used (visit date, or a coupon's validUntil)."""
    return (
        Asset.objects.filter(wallet__destroyed_at__isnull=True)
        .aggregate(last=Max(Coalesce("valid_until", "visit_date")))["last"]
    )


@dataclass(frozen=True)
class Rotation:
    new: GateSigningKey
    retired: GateSigningKey | None


@transaction.atomic
def rotate_keys(*, revoke: bool = False) -> Rotation:
    """Retire the active key and make a new one that signs from now on. The retired key stays
    listed while codes it signed may still be used (module docstring), or not at all with
    `revoke`. Other processes pick the new key up within GATE_KEY_CACHE_SECONDS."""
    if key_file():
        raise GateKeyError("the keys come from GATE_SIGNING_KEY_FILE: rotate them in that file")
    retired = GateSigningKey.objects.select_for_update().filter(active=True).first()
    if retired is not None:
        today = venue_today()
        if revoke:
            listed_until = today - dt.timedelta(days=1)
        else:
            listed_until = max(today + dt.timedelta(days=retired_min_days()), last_usable_day() or today)
        retired.active, retired.retired_at, retired.listed_until = None, timezone.now(), listed_until
        retired.save(update_fields=["active", "retired_at", "listed_until"])
    new = _new_row()
    return Rotation(new=new, retired=retired)

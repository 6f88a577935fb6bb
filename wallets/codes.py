"""Secret codes: asset numbers (what a QR code encodes), wallet references, manifest tokens.

All come from the operating system's CSPRNG (`secrets`). Asset numbers and system wallet
references use an alphabet without characters that are easy to confuse when read aloud or
typed from paper (no 0/O, no 1/I), so that a gate agent can key one in by hand.
"""

from __future__ import annotations

import secrets

# 32 symbols, 5 bits each (a power of two, so no modulo bias): 2-9 and the capitals but I and O.
CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
ASSET_NUMBER_LENGTH = 16  # 80 bits
WALLET_REFERENCE_PREFIX = "W"
WALLET_REFERENCE_LENGTH = 11  # 55 bits after the prefix
MANIFEST_TOKEN_BYTES = 24  # 192 bits, 32 URL-safe characters


def random_code(length: int) -> str:
    """`length` symbols of CODE_ALPHABET, uniformly: 32 symbols take exactly 5 random bits each."""
    bits = secrets.randbits(5 * length)
    return "".join(CODE_ALPHABET[(bits >> (5 * i)) & 31] for i in range(length))


def new_asset_number() -> str:
    """An unguessable ticket or coupon number (80 bits)."""
    return random_code(ASSET_NUMBER_LENGTH)


def new_wallet_reference() -> str:
    """A system wallet reference for wallets the partner gave no external reference for."""
    return WALLET_REFERENCE_PREFIX + random_code(WALLET_REFERENCE_LENGTH)


def new_manifest_token() -> str:
    """The capability token in a wallet's manifest URL (192 bits)."""
    return secrets.token_urlsafe(MANIFEST_TOKEN_BYTES)

"""OCTO request bodies, checked by hand into plain values: anything off is BAD_REQUEST naming
the field (the id fields' own errors, INVALID_*_ID, are the services' to raise)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from channel_manager.octo.errors import BAD_REQUEST, OctoError

CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
MAX_UNIT_ITEMS = 500
MAX_EXPIRATION_MINUTES = 525_600


@dataclass(frozen=True)
class UnitItemInput:
    unit_id: str
    uuid: uuid.UUID | None = None
    reseller_reference: str | None = None


def bad(message: str) -> OctoError:
    return OctoError(BAD_REQUEST, message)


def body_object(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise bad("The body must be a JSON object.")
    return data


def text(data: dict[str, Any], field: str, *, required: bool = False, max_length: int = 255,
         nullable: bool = True) -> str | None:
    value = data.get(field)
    if value is None:
        if required or (field in data and not nullable):
            raise bad(f"{field} is required." if required else f"{field} must be a string.")
        return None
    if not isinstance(value, str):
        raise bad(f"{field} must be a string.")
    if len(value) > max_length:
        raise bad(f"{field} must be at most {max_length} characters.")
    if CONTROL_CHARACTERS.search(value):
        raise bad(f"{field} must not contain control characters.")
    return value


def a_uuid(data: dict[str, Any], field: str, where: str | None = None) -> uuid.UUID | None:
    value = data.get(field)
    if value is None:
        return None
    try:
        if not isinstance(value, str) or len(value) > 64:
            raise ValueError
        return uuid.UUID(value)
    except ValueError:
        raise bad(f"{where or field} must be a UUID.") from None


def minutes(data: dict[str, Any], field: str = "expirationMinutes") -> int | None:
    value = data.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_EXPIRATION_MINUTES:
        raise bad(f"{field} must be a whole number of minutes from 1 to {MAX_EXPIRATION_MINUTES}.")
    return value


def unit_items(data: dict[str, Any], *, required: bool) -> tuple[UnitItemInput, ...] | None:
    value = data.get("unitItems")
    if value is None:
        if required:
            raise bad("unitItems is required.")
        return None
    if not isinstance(value, list):
        raise bad("unitItems must be an array.")
    if len(value) > MAX_UNIT_ITEMS:
        raise bad(f"unitItems may hold at most {MAX_UNIT_ITEMS} entries.")
    out = []
    seen: set[uuid.UUID] = set()
    for i, entry in enumerate(value):
        where = f"unitItems[{i}]"
        if not isinstance(entry, dict):
            raise bad(f"{where} must be an object.")
        unit_id = entry.get("unitId")
        if not isinstance(unit_id, str) or not unit_id or len(unit_id) > 64:
            raise bad(f"{where}.unitId is required (a string).")
        item_uuid = a_uuid(entry, "uuid", f"{where}.uuid")
        if item_uuid is not None:
            if item_uuid in seen:
                raise bad(f"{where}.uuid repeats another unit item's uuid.")
            seen.add(item_uuid)
        reference = text(entry, "resellerReference", max_length=128)
        out.append(UnitItemInput(unit_id=unit_id, uuid=item_uuid, reseller_reference=reference))
    return tuple(out)


def contact(data: dict[str, Any], *, required: bool = False) -> dict[str, Any] | None:
    """OCTO's contact as our order's customer: firstName, lastName (or fullName split at its
    last space), emailAddress, phoneNumber, country, the first of locales."""
    value = data.get("contact")
    if value is None:
        if required:
            raise bad("contact is required.")
        return None
    if not isinstance(value, dict):
        raise bad("contact must be an object.")
    first = text(value, "firstName", max_length=100)
    last = text(value, "lastName", max_length=100)
    full = text(value, "fullName", max_length=201)
    if full and not (first or last):
        head, _, tail = full.strip().rpartition(" ")
        first, last = (head, tail) if head else (tail, None)
        if (first and len(first) > 100) or (last and len(last) > 100):
            raise bad("contact.fullName is too long.")
    email = text(value, "emailAddress", max_length=254)
    if email:
        try:
            validate_email(email)
        except ValidationError:
            raise bad("contact.emailAddress must be an email address.") from None
    locales = value.get("locales")
    if locales is not None and (not isinstance(locales, list) or not all(isinstance(x, str) for x in locales)):
        raise bad("contact.locales must be an array of strings.")
    language = locales[0] if locales else None
    if language is not None and (len(language) > 35 or CONTROL_CHARACTERS.search(language)):
        raise bad("contact.locales[0] must be a language tag.")
    return {
        "firstName": first or None,
        "lastName": last or None,
        "email": email or None,
        "phone": text(value, "phoneNumber", max_length=32) or None,
        "country": text(value, "country", max_length=2) or None,
        "language": language or None,
    }

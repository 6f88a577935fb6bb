"""Where webhooks may be sent. Checked when a partner subscribes and again before every send,
on the addresses the host resolves to at that moment; the send then connects to those very
addresses, so a DNS answer that changes in between cannot redirect it (no rebinding).

In production (settings.WEBHOOK_ALLOW_PRIVATE_TARGETS off) only https, and never a host that
resolves to any private, loopback, link-local, multicast, reserved or unspecified address.
With the setting on (development), http and such addresses are allowed.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

MAX_URL_LENGTH = 2000


class UnsafeTarget(ValueError):
    """The URL may not receive webhooks; the message says why, in words for the partner."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str  # path and query, as sent on the request line
    addresses: tuple[str, ...]


def private_targets_allowed() -> bool:
    return bool(getattr(settings, "WEBHOOK_ALLOW_PRIVATE_TARGETS", False))


def is_public_address(value: str) -> bool:
    address = ipaddress.ip_address(value.split("%", 1)[0])  # drop an IPv6 zone index
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def parse_url(url: str, *, allow_private: bool | None = None) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of an acceptable URL, without resolving it."""
    allow_private = private_targets_allowed() if allow_private is None else allow_private
    if not isinstance(url, str) or not url:
        raise UnsafeTarget("Must be an absolute http(s) URL.")
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeTarget(f"Must be at most {MAX_URL_LENGTH} characters.")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise UnsafeTarget("Must not contain spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeTarget("Must be an absolute http(s) URL.") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeTarget("Must be an http(s) URL." if allow_private else "Must be an https URL.")
    if scheme == "http" and not allow_private:
        raise UnsafeTarget("Must be an https URL.")
    if not parts.hostname:
        raise UnsafeTarget("Must name a host.")
    if parts.username is not None or parts.password is not None:
        raise UnsafeTarget("Must not carry credentials; authenticate the webhook with its signature.")
    if port == 0:
        raise UnsafeTarget("Must not use port 0.")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return scheme, parts.hostname, port or (443 if scheme == "https" else 80), path


def resolve(host: str, port: int) -> tuple[str, ...]:
    """Every address the host resolves to, in the resolver's order, without duplicates."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise UnsafeTarget(f"The host {host!r} cannot be resolved.") from None
    addresses: list[str] = []
    for _family, _type, _proto, _canonname, sockaddr in infos:
        if sockaddr[0] not in addresses:
            addresses.append(sockaddr[0])
    if not addresses:
        raise UnsafeTarget(f"The host {host!r} cannot be resolved.")
    return tuple(addresses)


def check_target(url: str, *, allow_private: bool | None = None) -> Target:
    """The URL, parsed and resolved, or UnsafeTarget. Refuses the URL if ANY address the host
    resolves to is not public (unless private targets are allowed)."""
    allow_private = private_targets_allowed() if allow_private is None else allow_private
    scheme, host, port, path = parse_url(url, allow_private=allow_private)
    addresses = resolve(host, port)
    if not allow_private:
        for address in addresses:
            if not is_public_address(address):
                raise UnsafeTarget(
                    f"The host {host!r} resolves to {address}, a private or reserved address; "
                    "webhooks go to public addresses only."
                )
    return Target(scheme=scheme, host=host, port=port, path=path, addresses=addresses)

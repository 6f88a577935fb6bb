"""Where webhooks may be sent. Checked when a partner subscribes and again before every send,
on the addresses the host resolves to at that moment; the send then connects to those very
addresses, so a DNS answer that changes in between cannot redirect it (no rebinding).

In production (settings.WEBHOOK_ALLOW_PRIVATE_TARGETS off) only https, and never a host that
resolves to any private, loopback, link-local, multicast, reserved or unspecified address.
An IPv6 address that embeds an IPv4 address (IPv4-mapped, NAT64 64:ff9b::/96, 6to4 2002::/16,
Teredo 2001::/32) is judged by the IPv4 address it leads to. With the setting on (development),
http and such addresses are allowed.

The refusal never says what a host resolves to (that would make subscribing a probe of our
internal DNS): "cannot be resolved", "took too long" and "resolves to a private address" all get
the same words; the details go to the log. Lookups give up after WEBHOOK_DNS_TIMEOUT_SECONDS.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

MAX_URL_LENGTH = 2000
DEFAULT_DNS_TIMEOUT_SECONDS = 2.0
# NAT64's well-known prefix (RFC 6052): the IPv4 address is the last 32 bits.
NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")

logger = logging.getLogger(__name__)


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


def refused(host: str) -> UnsafeTarget:
    """The one refusal for a host we will not send to, whatever the reason (see the module)."""
    return UnsafeTarget(
        f"The host {host!r} could not be resolved to public addresses only; webhooks go to public addresses only."
    )


def embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...] | None:
    """The IPv4 address(es) an IPv6 address leads to: IPv4-mapped, NAT64 (well-known prefix),
    6to4, Teredo (server and client); None for any other address."""
    if address.ipv4_mapped is not None:
        return (address.ipv4_mapped,)
    if address in NAT64_WELL_KNOWN:
        return (ipaddress.IPv4Address(int(address) & 0xFFFFFFFF),)
    if address.sixtofour is not None:
        return (address.sixtofour,)
    if address.teredo is not None:
        return address.teredo
    return None


def is_public_address(value: str) -> bool:
    address = ipaddress.ip_address(value.split("%", 1)[0])  # drop an IPv6 zone index
    if isinstance(address, ipaddress.IPv6Address):
        embedded = embedded_ipv4(address)
        if embedded is not None:
            return all(_is_public(ipv4) for ipv4 in embedded)
    return _is_public(address)


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
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


def dns_timeout_seconds() -> float:
    return float(getattr(settings, "WEBHOOK_DNS_TIMEOUT_SECONDS", DEFAULT_DNS_TIMEOUT_SECONDS))


def _getaddrinfo_within(host: str, port: int, timeout: float) -> list:
    """socket.getaddrinfo has no timeout: run it in a daemon thread and stop waiting after
    `timeout` seconds (the thread ends when the system resolver gives up on its own)."""
    outcome: dict[str, object] = {}

    def lookup() -> None:
        try:
            outcome["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except BaseException as error:  # handed to the caller below
            outcome["error"] = error

    worker = threading.Thread(target=lookup, name="webhook-dns", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise TimeoutError(f"no DNS answer within {timeout}s")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["infos"]  # type: ignore[return-value]


def resolve(host: str, port: int) -> tuple[str, ...]:
    """Every address the host resolves to, in the resolver's order, without duplicates; the
    lookup gives up after WEBHOOK_DNS_TIMEOUT_SECONDS."""
    try:
        infos = _getaddrinfo_within(host, port, dns_timeout_seconds())
    except (OSError, UnicodeError) as error:  # TimeoutError is an OSError
        logger.info("webhook host %r not resolved: %s", host, error)
        raise refused(host) from None
    addresses: list[str] = []
    for _family, _type, _proto, _canonname, sockaddr in infos:
        if sockaddr[0] not in addresses:
            addresses.append(sockaddr[0])
    if not addresses:
        logger.info("webhook host %r resolved to no address", host)
        raise refused(host)
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
                logger.warning("webhook host %r refused: it resolves to %s, not a public address", host, address)
                raise refused(host)
    return Target(scheme=scheme, host=host, port=port, path=path, addresses=addresses)

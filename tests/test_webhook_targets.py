"""The SSRF guard of webhook targets (notifications.targets): the refusal says nothing about what
a host resolves to, lookups give up after WEBHOOK_DNS_TIMEOUT_SECONDS, and IPv6 addresses that
embed an IPv4 address (NAT64, 6to4, Teredo) are judged by the IPv4 address they lead to. DNS is
mocked (getaddrinfo)."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time

import pytest

from notifications.targets import UnsafeTarget, check_target, is_public_address


def teredo(server: str, client: str) -> str:
    """A Teredo address (2001::/32) for this server and (obfuscated) client IPv4 address."""
    value = (0x20010000 << 96) | (int(ipaddress.IPv4Address(server)) << 64) | (
        int(ipaddress.IPv4Address(client)) ^ 0xFFFFFFFF
    )
    return str(ipaddress.IPv6Address(value))


PUBLIC_V4 = "93.184.215.14"
# host -> the addresses it resolves to, and whether it may receive webhooks in production
EMBEDDED = {
    "nat64-private.example": ("64:ff9b::a00:5", False),  # 10.0.0.5
    "nat64-loopback.example": ("64:ff9b::7f00:1", False),  # 127.0.0.1
    "nat64-metadata.example": ("64:ff9b::a9fe:a9fe", False),  # 169.254.169.254
    "nat64-public.example": ("64:ff9b::5db8:d70e", True),  # 93.184.215.14
    "sixtofour-private.example": ("2002:c0a8:10a::1", False),  # 192.168.1.10
    "sixtofour-loopback.example": ("2002:7f00:1::", False),
    "sixtofour-public.example": ("2002:5db8:d70e::1", True),
    "teredo-private-client.example": (teredo(PUBLIC_V4, "10.0.0.5"), False),
    "teredo-private-server.example": (teredo("192.168.0.1", PUBLIC_V4), False),
    "teredo-public.example": (teredo("65.54.227.120", PUBLIC_V4), True),
    "mapped-private.example": ("::ffff:10.0.0.5", False),
}


@pytest.fixture
def dns(monkeypatch, settings):
    """A fake resolver; returns the dict of answers (a callable answer is called)."""
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    answers: dict = {host: [address] for host, (address, _) in EMBEDDED.items()}
    answers["internal.example"] = ["10.0.0.5"]
    answers["public.example"] = [PUBLIC_V4]

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        answer = answers.get(host)
        if callable(answer):
            answer = answer()
        if answer is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in answer
        ]

    monkeypatch.setattr("notifications.targets.socket.getaddrinfo", getaddrinfo)
    return answers


@pytest.mark.parametrize("host", sorted(EMBEDDED))
def test_embedded_ipv4_addresses_are_judged_by_the_ipv4_address(dns, host):
    address, public = EMBEDDED[host]
    assert is_public_address(address) is public
    if public:
        assert check_target(f"https://{host}/hook").addresses == (address,)
    else:
        with pytest.raises(UnsafeTarget):
            check_target(f"https://{host}/hook")


def test_the_refusal_does_not_say_what_the_host_resolves_to(dns):
    dns["internal.example"] = ["10.23.45.67"]
    with pytest.raises(UnsafeTarget) as private:
        check_target("https://internal.example/hook")
    with pytest.raises(UnsafeTarget) as unknown:
        check_target("https://unknown.example/hook")
    assert "10.23.45.67" not in str(private.value)
    # Private and unresolvable read the same: subscribing is no probe of our internal DNS.
    assert str(private.value).replace("internal", "unknown") == str(unknown.value)


def test_the_refusal_of_an_embedding_address_does_not_name_it(dns):
    with pytest.raises(UnsafeTarget) as refused:
        check_target("https://nat64-private.example/hook")
    assert "64:ff9b" not in str(refused.value) and "10.0.0.5" not in str(refused.value)


def test_a_dns_lookup_that_takes_too_long_is_refused_after_the_timeout(dns, settings):
    settings.WEBHOOK_DNS_TIMEOUT_SECONDS = 0.2
    release = threading.Event()

    def slow():
        release.wait(5)
        return [PUBLIC_V4]

    dns["slow.example"] = slow
    started = time.monotonic()
    try:
        with pytest.raises(UnsafeTarget) as refused:
            check_target("https://slow.example/hook")
    finally:
        release.set()
    assert time.monotonic() - started < 2
    with pytest.raises(UnsafeTarget) as unknown:
        check_target("https://unknown.example/hook")
    assert str(refused.value).replace("slow", "unknown") == str(unknown.value)


def test_a_quick_lookup_within_the_timeout_is_used(dns, settings):
    settings.WEBHOOK_DNS_TIMEOUT_SECONDS = 0.5
    assert check_target("https://public.example/hook").addresses == (PUBLIC_V4,)


def test_in_development_embedding_addresses_are_allowed(dns, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    assert check_target("http://nat64-private.example/hook").addresses == ("64:ff9b::a00:5",)

"""Where the platform may send requests: tenant-configured URLs (webhooks, the tenant's platform, chat)
must not reach private, loopback or link-local addresses (SSRF), unless the operator allows it with
``BACKOFFICE_ALLOW_PRIVATE_TARGETS`` (the tests do, to reach their local provider servers)."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import ssl
from urllib.parse import urlsplit

import httpx

from backoffice.platform.settings import Settings, get_settings


class TargetRefused(ValueError):
    pass


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One verifying TLS context per process for every outbound client. Building one loads the CA bundle
    (tens of milliseconds of CPU); a client per call used to build one per call, which made TLS set-up
    the workers' main cost (measured with tests/perf/bench_routines.py)."""
    return httpx.create_ssl_context()


def _forbidden(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return (address.is_private or address.is_loopback or address.is_link_local or address.is_multicast
            or address.is_reserved or address.is_unspecified)


def check_url_shape(url: str, *, require_https: bool = False) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise TargetRefused("expected an http(s) URL with a host")
    if require_https and parts.scheme != "https":
        raise TargetRefused("expected an https URL")
    if parts.username or parts.password:
        raise TargetRefused("credentials in the URL are not allowed")
    return url


async def check_target(url: str, settings: Settings | None = None) -> None:
    """Resolve the URL's host and refuse private destinations (checked at send time, not only at save,
    so DNS changed after validation cannot point a webhook at the internal network)."""
    settings = settings or get_settings()
    check_url_shape(url)
    if settings.allow_private_targets:
        return
    host = urlsplit(url).hostname or ""
    try:
        addresses = {ipaddress.ip_address(host)}
    except ValueError:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except socket.gaierror as error:
            raise TargetRefused(f"cannot resolve {host}: {error}") from None
        addresses = {ipaddress.ip_address(info[4][0]) for info in infos}
    if any(_forbidden(address) for address in addresses):
        raise TargetRefused(f"{host} resolves to a private or loopback address")

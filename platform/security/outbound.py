"""Where the platform may send requests: the one check every outbound address goes through.

Tenant- and staff-configured addresses (connector URLs and SMTP hosts, chat and the tenant platform's
endpoints, tenant webhooks, OIDC issuers) must not reach the platform's own network (SSRF): loopback,
private and link-local ranges (cloud metadata), shared address space, and every other entry of the IANA
special-purpose address registries, including the IPv6 forms that embed such an IPv4 address.

The check runs twice. At save time (:func:`check_target`, :func:`check_host`) a refusal is a 422 naming
the field. At connect time the address is resolved once, each resolved address checked, and the
connection made to that checked address (:class:`CheckedTransport` for httpx, :func:`checked_connector`
for aiohttp, :func:`open_socket` for SMTP), with the original host name kept for the Host header, TLS SNI
and certificate verification: DNS that changes after the save, or between a check and a connect, cannot
point a request inward.

``BACKOFFICE_ALLOW_PRIVATE_TARGETS`` turns the address rule off (the tests' provider stand-ins listen
on loopback); connections still go to the address resolved for them.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import ssl
import typing
from urllib.parse import urlsplit

import aiohttp
import aiohttp.abc
import httpcore
import httpx

from backoffice.platform.settings import Settings, get_settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefused(ValueError):
    """The address may not be reached from the platform; the message says why (never retryable)."""


class Unresolvable(TargetRefused):
    """The host name does not resolve now: refused at save time, a transient failure at connect time."""


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One verifying TLS context per process for every outbound client. Building one loads the CA bundle
    (tens of milliseconds of CPU); a client per call used to build one per call, which made TLS set-up
    the workers' main cost (measured with tests/perf/bench_routines.py)."""
    return httpx.create_ssl_context()


# --- the address rule ---------------------------------------------------------------------------------

def _nets(*entries: tuple[str, str]) -> tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...]:
    return tuple((ipaddress.ip_network(net), why) for net, why in entries)


# The IANA IPv4 Special-Purpose Address Registry, every entry (globally reachable ones too: no provider
# API lives on an anycast relay), multicast, and cloud addresses that look public but are not.
REFUSED_V4 = _nets(
    ("0.0.0.0/8", "'this network' (RFC 791)"),
    ("10.0.0.0/8", "private (RFC 1918)"),
    ("100.64.0.0/10", "shared address space, carrier-grade NAT (RFC 6598)"),
    ("127.0.0.0/8", "loopback (RFC 1122)"),
    ("169.254.0.0/16", "link-local, cloud metadata (RFC 3927)"),
    ("172.16.0.0/12", "private (RFC 1918)"),
    ("192.0.0.0/24", "IETF protocol assignments (RFC 6890)"),
    ("192.0.2.0/24", "documentation, TEST-NET-1 (RFC 5737)"),
    ("192.31.196.0/24", "AS112-v4 (RFC 7535)"),
    ("192.52.193.0/24", "AMT (RFC 7450)"),
    ("192.88.99.0/24", "deprecated 6to4 relay anycast (RFC 7526)"),
    ("192.168.0.0/16", "private (RFC 1918)"),
    ("192.175.48.0/24", "direct delegation AS112 service (RFC 7534)"),
    ("198.18.0.0/15", "benchmarking (RFC 2544)"),
    ("198.51.100.0/24", "documentation, TEST-NET-2 (RFC 5737)"),
    ("203.0.113.0/24", "documentation, TEST-NET-3 (RFC 5737)"),
    ("224.0.0.0/4", "multicast (RFC 5771)"),
    ("255.255.255.255/32", "limited broadcast (RFC 919)"),  # before 240/4, which holds it
    ("240.0.0.0/4", "reserved (RFC 1112)"),
    ("168.63.129.16/32", "Azure wire server (platform DNS, DHCP and health probes)"),
)

# The IANA IPv6 Special-Purpose Address Registry, multicast and deprecated site-local. The forms that
# carry an IPv4 address (IPv4-mapped, 6to4, NAT64's well-known prefix) are judged by that address first.
REFUSED_V6 = _nets(
    ("::1/128", "loopback (RFC 4291)"),
    ("::/128", "unspecified (RFC 4291)"),
    ("::/96", "deprecated IPv4-compatible (RFC 4291)"),
    ("64:ff9b:1::/48", "local-use IPv4/IPv6 translation (RFC 8215)"),
    ("100::/64", "discard-only (RFC 6666)"),
    ("100:0:0:1::/64", "dummy prefix (RFC 9780)"),
    ("2001::/32", "Teredo tunnelling (RFC 4380)"),
    ("2001::/23", "IETF protocol assignments (RFC 2928)"),
    ("2001:db8::/32", "documentation (RFC 3849)"),
    ("2620:4f:8000::/48", "direct delegation AS112 service (RFC 7534)"),
    ("3fff::/20", "documentation (RFC 9637)"),
    ("5f00::/16", "segment routing SIDs (RFC 9602)"),
    ("fc00::/7", "unique local (RFC 4193)"),
    ("fe80::/10", "link-local (RFC 4291)"),
    ("fec0::/10", "deprecated site-local (RFC 3879)"),
    ("ff00::/8", "multicast (RFC 4291)"),
)
_MAPPED = ipaddress.ip_network("::ffff:0:0/96")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded_v4(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, str] | None:
    if address in _MAPPED:
        return typing.cast(ipaddress.IPv4Address, address.ipv4_mapped), "IPv4-mapped"
    if address in _SIX_TO_FOUR:
        return typing.cast(ipaddress.IPv4Address, address.sixtofour), "6to4"
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF), "NAT64"
    return None


def refusal(address: Address) -> str | None:
    """Why the platform must not connect to ``address``, or None when it is a public address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_v4(address)
        if embedded is not None:
            inner, form = embedded
            why = refusal(inner)
            return f"{form} form of {inner}: {why}" if why else None
        table = REFUSED_V6
    else:
        table = REFUSED_V4
    for network, why in table:
        if address in network:
            return why
    if not address.is_global:  # a range the registries add after this list was written
        return "not globally reachable"
    return None


def _refuse(host: str, addresses: list[Address]) -> None:
    for address in addresses:
        why = refusal(address)
        if why is not None:
            shown = host if host == str(address) else f"{host} resolves to {address}, which"
            raise TargetRefused(f"{shown} is not a public address: {why}")


# --- resolving and checking ----------------------------------------------------------------------------

async def lookup(host: str, port: int) -> list[str]:
    """The host's addresses, in the resolver's order (tests replace this to play DNS)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def resolve_checked(host: str, port: int, settings: Settings | None = None) -> list[Address]:
    """Resolve ``host`` once and check every address; the caller connects only to what this returns."""
    settings = settings or get_settings()
    host = host.strip("[]")
    try:
        addresses: list[Address] = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            addresses = [ipaddress.ip_address(a.split("%")[0]) for a in await lookup(host, port)]
        except (OSError, UnicodeError, ValueError) as error:
            raise Unresolvable(f"cannot resolve {host}: {error}") from None
        if not addresses:
            raise Unresolvable(f"cannot resolve {host}: no address")
    if not settings.allow_private_targets:
        _refuse(host, addresses)
    return addresses


def check_url_shape(url: str, *, require_https: bool = False) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise TargetRefused("expected an http(s) URL with a host")
    if require_https and parts.scheme != "https":
        raise TargetRefused("expected an https URL")
    if parts.username or parts.password:
        raise TargetRefused("credentials in the URL are not allowed")
    try:
        _ = parts.port
    except ValueError:
        raise TargetRefused("the URL's port is not a number between 0 and 65535") from None
    return url


async def check_host(host: str, port: int, settings: Settings | None = None) -> None:
    """Save-time check of a host (an SMTP server): refused when it is, or resolves to, a non-public
    address. With private targets allowed there is nothing to refuse, so nothing is resolved."""
    settings = settings or get_settings()
    if not settings.allow_private_targets:
        await resolve_checked(host, port, settings)


async def check_target(url: str, settings: Settings | None = None) -> None:
    """Save-time check of a URL: its shape, then its host's addresses (:func:`check_host`)."""
    check_url_shape(url)
    parts = urlsplit(url)
    await check_host(parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80), settings)


# --- connecting to the checked address -----------------------------------------------------------------

class CheckedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the check inside ``connect_tcp``: the host is resolved once, every
    address checked, and the TCP connection opened to a checked address. httpcore still uses the URL's
    host for TLS (SNI, certificate) and httpx for the Host header."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: typing.Iterable[typing.Any] | None = None) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                addresses = await resolve_checked(host, port, self.settings)
        except Unresolvable as error:
            raise httpcore.ConnectError(str(error)) from None
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} took longer than {timeout} s") from None
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(str(address), port, timeout=timeout,
                                                     local_address=local_address, socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error
        assert failure is not None
        raise failure

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: typing.Iterable[typing.Any] | None = None
                                  ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not an outbound target")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


LIMITS = httpx.Limits()


class CheckedTransport(httpx.AsyncHTTPTransport):
    """The httpx transport every outbound client uses: the shared TLS context, no proxies from the
    environment (a proxy would make the check judge the proxy, not the target), and
    :class:`CheckedBackend` under the connection pool."""

    def __init__(self, settings: Settings | None = None, *, limits: httpx.Limits = LIMITS) -> None:
        super().__init__(verify=tls_context(), trust_env=False, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=tls_context(), max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections, keepalive_expiry=limits.keepalive_expiry,
            network_backend=CheckedBackend(settings))


class CheckedResolver(aiohttp.abc.AbstractResolver):
    """aiohttp's resolver with the check inside: the host is resolved once (:func:`lookup`), every address
    checked, and aiohttp connects to what this returns. aiohttp keeps the URL's host for the Host header,
    TLS SNI and certificate verification. A name that does not resolve now is an ``OSError`` (aiohttp's
    connect error, to retry); a refused address is :class:`TargetRefused`."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[aiohttp.abc.ResolveResult]:
        try:
            addresses = await resolve_checked(host, port, self.settings)
        except Unresolvable as error:
            raise OSError(str(error)) from None
        return [{"hostname": host, "host": str(address), "port": port, "proto": 0,
                 "family": socket.AF_INET6 if address.version == 6 else socket.AF_INET,
                 "flags": socket.AI_NUMERICHOST} for address in addresses]

    async def close(self) -> None:
        return None


def _checked_socket(settings: Settings | None) -> typing.Callable[[typing.Any], socket.socket]:
    """aiohttp's socket factory, called with the very address it is about to connect to: the last gate, for
    the URLs whose host is an address (aiohttp does not ask the resolver about those)."""

    def make(addr_info: typing.Any) -> socket.socket:
        family, kind, proto, _, sockaddr = addr_info
        if not (settings or get_settings()).allow_private_targets:
            _refuse(str(sockaddr[0]), [ipaddress.ip_address(str(sockaddr[0]).split("%")[0])])
        return socket.socket(family=family, type=kind, proto=proto)

    return make


def checked_connector(settings: Settings | None = None, *, limit: int = 100,
                      keepalive_seconds: float = 5.0) -> aiohttp.TCPConnector:
    """The aiohttp connector every aiohttp client of the platform uses: the checked resolver, the checked
    socket factory, the shared TLS context; addresses tried one after another (a refusal is never raced
    against a connect), nothing cached between connects."""
    return aiohttp.TCPConnector(
        resolver=CheckedResolver(settings), use_dns_cache=False, ssl=tls_context(), limit=limit,
        keepalive_timeout=keepalive_seconds, happy_eyeballs_delay=None, socket_factory=_checked_socket(settings))


async def open_socket(host: str, port: int, settings: Settings | None = None, *,
                      timeout: float | None = None) -> socket.socket:
    """A TCP socket connected to a checked address of ``host`` (for clients that take a socket, like
    aiosmtplib; they keep ``host`` for TLS). Raises TargetRefused, Unresolvable or OSError."""
    addresses = await resolve_checked(host, port, settings)
    loop = asyncio.get_running_loop()
    failure: Exception | None = None
    for address in addresses:
        sock = socket.socket(socket.AF_INET6 if address.version == 6 else socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            async with asyncio.timeout(timeout):
                await loop.sock_connect(sock, (str(address), port))
            return sock
        except (OSError, TimeoutError) as error:
            sock.close()
            failure = error
    raise OSError(f"cannot connect to {host}:{port} ({failure})")

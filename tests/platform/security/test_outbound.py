"""The one outbound address check: every IANA special-purpose range and the IPv6 forms that embed a private
IPv4 address are refused, at save time and at connect time, and a connection goes to the address that was
checked (resolved once, Host header and TLS name kept)."""

from __future__ import annotations

import ipaddress

import aiohttp
import httpx
import pytest

from backoffice.platform.security import outbound
from backoffice.platform.security.outbound import (
    CheckedTransport, TargetRefused, Unresolvable, check_host, check_target, checked_connector, open_socket,
    refusal,
)
from backoffice.platform.settings import Settings
from tests.connectors.conftest import Answer, Provider, serving

# One address inside each refused range, and a word of the reason the check gives for it.
REFUSED = [
    ("0.0.0.1", "this network"),
    ("10.1.2.3", "private"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.254", "carrier-grade NAT"),
    ("127.0.0.1", "loopback"),
    ("127.255.0.9", "loopback"),
    ("169.254.169.254", "link-local"),
    ("172.16.5.4", "private"),
    ("172.31.255.1", "private"),
    ("192.0.0.8", "IETF protocol assignments"),
    ("192.0.0.192", "IETF protocol assignments"),  # Oracle Cloud's metadata service
    ("192.0.2.10", "TEST-NET-1"),
    ("192.31.196.1", "AS112"),
    ("192.52.193.1", "AMT"),
    ("192.88.99.1", "6to4 relay"),
    ("192.168.1.1", "private"),
    ("192.175.48.1", "AS112"),
    ("198.18.0.1", "benchmarking"),
    ("198.19.255.1", "benchmarking"),
    ("198.51.100.7", "TEST-NET-2"),
    ("203.0.113.9", "TEST-NET-3"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "broadcast"),
    ("168.63.129.16", "Azure wire server"),
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("::10.0.0.1", "IPv4-compatible"),
    ("::ffff:10.0.0.1", "IPv4-mapped form of 10.0.0.1"),
    ("::ffff:127.0.0.1", "IPv4-mapped form of 127.0.0.1"),
    ("::ffff:169.254.169.254", "IPv4-mapped form of 169.254.169.254"),
    ("::ffff:100.64.0.1", "IPv4-mapped form of 100.64.0.1"),
    ("2002:a00:1::1", "6to4 form of 10.0.0.1"),
    ("2002:7f00:1::", "6to4 form of 127.0.0.1"),
    ("2002:a9fe:a9fe::1", "6to4 form of 169.254.169.254"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
    ("2001::1", "Teredo"),
    ("64:ff9b::a00:1", "NAT64 form of 10.0.0.1"),
    ("64:ff9b::7f00:1", "NAT64 form of 127.0.0.1"),
    ("64:ff9b::a9fe:a9fe", "NAT64 form of 169.254.169.254"),
    ("64:ff9b:1::1", "local-use IPv4/IPv6 translation"),
    ("64:ff9b:1:ffff::8.8.8.8", "local-use IPv4/IPv6 translation"),
    ("100::1", "discard-only"),
    ("2001:2::1", "IETF protocol assignments"),
    ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation"),
    ("fc00::1", "unique local"),
    ("fd00:ec2::254", "unique local"),  # AWS's IPv6 metadata service
    ("fe80::1", "link-local"),
    ("fec0::1", "site-local"),
    ("ff02::1", "multicast"),
]
PUBLIC = ["8.8.8.8", "200.147.67.142", "2606:4700::1111", "::ffff:8.8.8.8", "2002:808:808::1", "64:ff9b::808:808"]


def _settings(tmp_path, **extra) -> Settings:
    return Settings(data_dir=tmp_path, **extra)


class Dns:
    """Plays DNS for the check: ``dns[name] = [addresses]``; every lookup is counted in ``calls``."""

    def __init__(self) -> None:
        self.table: dict[str, list[str]] = {}
        self.calls: list[str] = []

    def __setitem__(self, name: str, addresses: list[str]) -> None:
        self.table[name] = addresses

    async def lookup(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        if host not in self.table:
            raise OSError(f"no such host {host}")
        return self.table[host]


@pytest.fixture
def dns(monkeypatch) -> Dns:
    fake = Dns()
    monkeypatch.setattr(outbound, "lookup", fake.lookup)
    return fake


@pytest.mark.parametrize(("address", "why"), REFUSED, ids=[a for a, _ in REFUSED])
async def test_every_special_purpose_range_is_refused(tmp_path, address, why):
    reason = refusal(ipaddress.ip_address(address))
    assert reason is not None and why in reason, reason
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(TargetRefused, match="not a public address"):
        await check_target(f"https://{host}/hook", _settings(tmp_path))


@pytest.mark.parametrize("address", PUBLIC)
async def test_public_addresses_and_their_embedded_forms_pass(tmp_path, address):
    assert refusal(ipaddress.ip_address(address)) is None
    host = f"[{address}]" if ":" in address else address
    await check_target(f"https://{host}/hook", _settings(tmp_path))


async def test_a_name_is_judged_by_every_address_it_resolves_to(tmp_path, dns):
    strict = _settings(tmp_path)
    dns["api.example.com"] = ["200.147.67.142"]
    await check_target("https://api.example.com/v3", strict)
    dns["sneaky.example.com"] = ["200.147.67.142", "10.0.0.7"]  # one private answer is enough to refuse
    with pytest.raises(TargetRefused, match=r"sneaky.example.com resolves to 10.0.0.7, which is not a public"):
        await check_target("https://sneaky.example.com/", strict)
    dns["mapped.example.com"] = ["::ffff:169.254.169.254"]
    with pytest.raises(TargetRefused, match="IPv4-mapped form of 169.254.169.254"):
        await check_host("mapped.example.com", 587, strict)
    with pytest.raises(Unresolvable, match="cannot resolve"):
        await check_target("https://nowhere.example.com/", strict)
    # With private targets allowed (the tests' stand-ins) nothing is refused, so nothing is resolved at save.
    calls = len(dns.calls)
    await check_target("https://sneaky.example.com/", _settings(tmp_path, allow_private_targets=True))
    assert len(dns.calls) == calls


async def test_localhost_through_the_real_resolver_is_refused(tmp_path):
    with pytest.raises(TargetRefused, match="localhost resolves to"):
        await check_target("http://localhost:8080/x", _settings(tmp_path))


def test_url_shape():
    for url in ("ftp://example.com/x", "https://user:pass@example.com/x", "https:///x", "https://example.com:99999/"):
        with pytest.raises(TargetRefused):
            outbound.check_url_shape(url)


@pytest.fixture
def stand_in():
    with serving(Provider()) as fake:
        fake.on("GET", "/ping", Answer(200, {"pong": True}))
        yield fake


async def test_the_transport_refuses_at_connect_time_what_resolves_inward(tmp_path, dns, stand_in):
    port = int(stand_in.url.rsplit(":", 1)[1])
    dns["rebound.example.com"] = ["127.0.0.1"]  # saved while it said something else; now it points inward
    async with httpx.AsyncClient(transport=CheckedTransport(_settings(tmp_path))) as client:
        with pytest.raises(TargetRefused, match="rebound.example.com resolves to 127.0.0.1"):
            await client.get(f"http://rebound.example.com:{port}/ping")
        with pytest.raises(TargetRefused, match="loopback"):
            await client.get(f"http://127.0.0.1:{port}/ping")
        dns["cgnat.example.com"] = ["100.64.0.1"]
        with pytest.raises(TargetRefused, match="carrier-grade NAT"):
            await client.get("http://cgnat.example.com/")
    assert stand_in.seen == []  # nothing reached the stand-in, which listens on exactly that address


async def test_the_connection_goes_to_the_address_that_was_checked(tmp_path, dns, stand_in):
    """The system resolver knows nothing of provider.test: the request can only have reached the stand-in
    through the one resolution the check made. The Host header keeps the name."""
    port = int(stand_in.url.rsplit(":", 1)[1])
    dns["provider.test"] = ["127.0.0.1"]
    allowed = _settings(tmp_path, allow_private_targets=True)
    async with httpx.AsyncClient(transport=CheckedTransport(allowed)) as client:
        response = await client.get(f"http://provider.test:{port}/ping")
    assert response.json() == {"pong": True}
    assert stand_in.seen[0].headers["host"] == f"provider.test:{port}"
    assert dns.calls == ["provider.test"]  # resolved once, for the one connection


async def test_a_name_that_does_not_resolve_is_a_connect_error_to_retry(tmp_path, dns):
    async with httpx.AsyncClient(transport=CheckedTransport(_settings(tmp_path))) as client:
        with pytest.raises(httpx.ConnectError, match="cannot resolve"):
            await client.get("https://gone.example.com/")


def _aiohttp(settings: Settings) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=checked_connector(settings), timeout=aiohttp.ClientTimeout(total=5))


async def test_the_aiohttp_connector_refuses_at_connect_time_what_resolves_inward(tmp_path, dns, stand_in):
    """The webhooks' client: a name is judged by what it resolves to, an address in the URL by itself
    (aiohttp never asks a resolver about one: the socket factory is that gate)."""
    port = int(stand_in.url.rsplit(":", 1)[1])
    dns["rebound.example.com"] = ["127.0.0.1"]
    dns["cgnat.example.com"] = ["100.64.0.1"]
    async with _aiohttp(_settings(tmp_path)) as session:
        with pytest.raises(TargetRefused, match="rebound.example.com resolves to 127.0.0.1"):
            await session.get(f"http://rebound.example.com:{port}/ping")
        with pytest.raises(TargetRefused, match="127.0.0.1 is not a public address: loopback"):
            await session.get(f"http://127.0.0.1:{port}/ping")
        with pytest.raises(TargetRefused, match="::1 is not a public address: loopback"):
            await session.get(f"http://[::1]:{port}/ping")
        with pytest.raises(TargetRefused, match="carrier-grade NAT"):
            await session.get("http://cgnat.example.com/")
        with pytest.raises(TargetRefused, match="IPv4-mapped form of 127.0.0.1"):
            await session.get(f"http://[::ffff:127.0.0.1]:{port}/ping")
    assert stand_in.seen == []


async def test_the_aiohttp_connector_connects_to_the_address_that_was_checked(tmp_path, dns, stand_in):
    port = int(stand_in.url.rsplit(":", 1)[1])
    dns["provider.test"] = ["127.0.0.1"]
    async with _aiohttp(_settings(tmp_path, allow_private_targets=True)) as session:
        async with session.get(f"http://provider.test:{port}/ping") as response:
            assert await response.json() == {"pong": True}
    assert stand_in.seen[0].headers["host"] == f"provider.test:{port}"
    assert dns.calls == ["provider.test"]  # resolved once, by the check, for the one connection


async def test_with_the_aiohttp_connector_a_name_that_does_not_resolve_is_a_connect_error_to_retry(tmp_path, dns):
    async with _aiohttp(_settings(tmp_path)) as session:
        with pytest.raises(aiohttp.ClientConnectorError) as failed:
            await session.get("https://gone.example.com/")
    assert "cannot resolve gone.example.com" in str(failed.value.os_error)


async def test_sockets_for_smtp_are_opened_to_the_checked_address_only(tmp_path, dns, stand_in):
    port = int(stand_in.url.rsplit(":", 1)[1])
    dns["mail.example.com"] = ["127.0.0.1"]
    with pytest.raises(TargetRefused, match="mail.example.com resolves to 127.0.0.1"):
        await open_socket("mail.example.com", port, _settings(tmp_path), timeout=2)
    sock = await open_socket("mail.example.com", port, _settings(tmp_path, allow_private_targets=True), timeout=2)
    try:
        assert sock.getpeername()[:2] == ("127.0.0.1", port)
    finally:
        sock.close()


async def test_an_sso_issuer_pointed_inward_is_refused_when_saved(database, tenants, dns):
    from backoffice.platform.audit.service import Actor
    from backoffice.platform.errors import ValidationFailed
    from backoffice.tenants.users.oidc import save_oidc_settings

    strict = database.settings.model_copy(update={"allow_private_targets": False})
    dns["login.aurora.example"] = ["10.0.0.8"]
    for issuer in ("https://169.254.169.254", "https://[::ffff:127.0.0.1]", "https://login.aurora.example"):
        async with database.tenant(tenants.a.id) as session:
            with pytest.raises(ValidationFailed) as refused:
                await save_oidc_settings(session, issuer=issuer, client_id="c", client_secret="s",
                                         allowed_domains="aurora.example", enabled=True, settings=strict,
                                         acting=Actor(type="user", label="admin@aurora.example"))
        assert [e.field for e in refused.value.errors] == ["issuer"], issuer
        assert "not a public address" in refused.value.errors[0].message

"""A company's settings and custom host from the CLI: the same service functions as the console and the
staff API, audited as ``cli``; a refusal exits 2 naming the field and writes nothing; the host is used only
after the TXT record is seen (a local DNS server named by BACKOFFICE_DNS_NAMESERVER)."""

from __future__ import annotations

import asyncio
import re

import pytest
from sqlalchemy import select

from backoffice.platform.audit.models import AuditEntry
from backoffice.tenants.registry.models import Tenant
from tests.conftest import env_for_subprocess
from tests.providers.dns import dns_server
from tests.web.entry.test_cli import BACKOFFICE_CLI, Result

pytestmark = pytest.mark.postgres_only


async def _cli(database, *args: str, env: dict[str, str] | None = None) -> Result:
    process = await asyncio.create_subprocess_exec(
        BACKOFFICE_CLI, *args, env=env_for_subprocess(database.settings) | (env or {}),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return Result(args, process.returncode, out.decode(), err.decode())


async def test_settings_and_a_verified_host_from_the_cli(database, tenants):
    changed, refused = await asyncio.gather(
        _cli(database, "tenants", "set", "alfa", "--timezone", "America/Manaus", "--key-max-days", "30",
             "--rate-limit", "120", "--reason", "contrato"),
        _cli(database, "tenants", "set", "beta", "--timezone", "Nowhere/Land"))
    assert changed.ok().out.strip().startswith("alfa: time zone America/Manaus")
    assert refused.code == 2 and "error: timezone:" in refused.err

    with dns_server() as dns:
        env = {"BACKOFFICE_DNS_NAMESERVER": dns.nameserver}
        asked = (await _cli(database, "tenants", "host", "alfa", "portal.alfa.example", env=env)).ok()
        name, value = re.search(r'^(\S+) TXT "([^"]+)"$', asked.out, re.MULTILINE).groups()
        assert name == "_backoffice-verify.portal.alfa.example"
        early = await _cli(database, "tenants", "verify-host", "alfa", env=env)
        assert early.code == 2 and "error: custom_host:" in early.err
        dns.publish(name, value)
        assert "portal.alfa.example" in (await _cli(database, "tenants", "verify-host", "alfa", env=env)).ok().out

    async with database.system() as session:
        alfa, beta = await session.get(Tenant, tenants.a.id), await session.get(Tenant, tenants.b.id)
        assert (alfa.timezone, alfa.api_key_max_days, alfa.api_rate_limit_per_minute) == ("America/Manaus", 30, 120)
        assert alfa.custom_host == "portal.alfa.example" and beta.timezone == "America/Sao_Paulo"
        entries = (await session.execute(select(AuditEntry).where(AuditEntry.actor_type == "cli",
                                                                  AuditEntry.tenant_id == tenants.a.id))).scalars().all()
    actions = {entry.action: entry for entry in entries}
    assert {"tenant.timezone_changed", "tenant.api_key_max_days_changed", "tenant.api_rate_limit_changed",
            "tenant.custom_host_requested", "tenant.custom_host_verified"} <= set(actions)
    assert actions["tenant.timezone_changed"].reason == "contrato"

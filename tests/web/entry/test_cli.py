"""The ``backoffice`` command, run as operators run it: a subprocess against the test's PostgreSQL.

Every management command is an audited action by ``cli:<os user>``; a refusal exits 2 naming the field
and writes nothing. Commands that do not depend on each other run concurrently to keep this quick.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from backoffice.platform.audit.models import AuditEntry
from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.users.models import TenantUser
from tests.conftest import env_for_subprocess

pytestmark = pytest.mark.postgres_only

BACKOFFICE_CLI = str(Path(sys.executable).with_name("backoffice"))
NEW_PASSWORD = "a-long-enough-password"


@dataclass
class Result:
    args: tuple[str, ...]
    code: int
    out: str
    err: str

    def ok(self) -> Result:
        assert self.code == 0, f"backoffice {' '.join(self.args)} exited {self.code}: {self.err}"
        return self


async def _cli(database, *args: str) -> Result:
    env = env_for_subprocess(database.settings) | {"BACKOFFICE_NEW_PASSWORD": NEW_PASSWORD}
    process = await asyncio.create_subprocess_exec(
        BACKOFFICE_CLI, *args, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return Result(args, process.returncode, out.decode(), err.decode())


async def _together(database, *commands: tuple[str, ...]) -> list[Result]:
    return list(await asyncio.gather(*(_cli(database, *command) for command in commands)))


async def _cli_audit(database) -> dict[str, list[AuditEntry]]:
    async with database.system() as session:
        rows = (await session.execute(select(AuditEntry).where(AuditEntry.actor_type == "cli"))).scalars().all()
    by_action: dict[str, list[AuditEntry]] = {}
    for row in rows:
        by_action.setdefault(row.action, []).append(row)
    return by_action


async def test_operators_manage_tenants_staff_and_users_from_the_cli(database, tenants):
    # Four rounds; the commands within a round do not depend on each other and run at once.
    created, refused, suspended, staff_created, user_created = await _together(
        database,
        ("tenants", "create", "--slug", "gama", "--name", "Gama Clínicas", "--legal-name", "Gama Clínicas S.A.",
         "--cnpj", "12.ABC.345/01DE-35", "--primary-colour", "#6D28D9"),
        ("tenants", "create", "--slug", "delta", "--name", "Delta", "--legal-name", "Delta Ltda",
         "--cnpj", "11.222.333/0001-82"),
        ("tenants", "suspend", "alfa", "--reason", "contract ended"),
        ("staff", "create", "--email", "Op@Provider.example", "--name", "Otávio", "--role", "provider_operator"),
        ("users", "create", "beta", "--email", "nova@beta.example", "--name", "Nova Pessoa", "--role",
         "tenant_admin"),
    )
    assert "gama" in created.ok().out
    assert "suspended alfa" in suspended.ok().out
    assert "op@provider.example" in staff_created.ok().out
    assert "nova@beta.example" in user_created.ok().out
    assert refused.code == 2
    assert "cnpj" in refused.err and "Traceback" not in refused.err

    tenant_list, assigned = await _together(
        database, ("tenants", "list"), ("staff", "assign", "op@provider.example", "alfa", "--reason", "close"))
    assigned.ok()
    rows = {line.split()[0]: line.split() for line in tenant_list.ok().out.splitlines()[1:]}
    assert set(rows) == {"alfa", "beta", "gama"}
    assert (rows["alfa"][1], rows["beta"][1], rows["gama"][1]) == ("suspended", "active", "active")
    assert rows["gama"][2] == "12.ABC.345/01DE-35"

    reactivated, staff_list = await _together(
        database, ("tenants", "reactivate", "alfa", "--reason", "renewed"), ("staff", "list"))
    reactivated.ok()
    assert staff_list.ok().out.split() == ["op@provider.example", "provider_operator", "alfa"]

    [unassigned] = await _together(database, ("staff", "unassign", "op@provider.example", "alfa", "--reason", "done"))
    unassigned.ok()

    async with database.system() as session:
        stored = {t.slug: t for t in (await session.execute(select(Tenant))).scalars()}
    assert set(stored) == {"alfa", "beta", "gama"}  # the refused "delta" left nothing
    assert stored["alfa"].is_active and stored["gama"].branding["primary"] == "#6d28d9"
    async with database.tenant(tenants.b.id) as session:
        user = (await session.execute(select(TenantUser).where(TenantUser.email == "nova@beta.example"))).scalar_one()
    assert user.password_hash and NEW_PASSWORD not in user.password_hash

    audit = await _cli_audit(database)
    assert [e.tenant_id for e in audit["tenant.created"]] == [stored["gama"].id]
    assert [(e.tenant_id, e.reason) for e in audit["tenant.suspended"]] == [(tenants.a.id, "contract ended")]
    assert [(e.tenant_id, e.reason) for e in audit["tenant.reactivated"]] == [(tenants.a.id, "renewed")]
    assert [e.detail["email"] for e in audit["staff.created"]] == ["op@provider.example"]
    assert [(e.tenant_id, e.reason) for e in audit["staff.assigned"]] == [(tenants.a.id, "close")]
    assert [(e.tenant_id, e.reason) for e in audit["staff.unassigned"]] == [(tenants.a.id, "done")]
    assert [(e.tenant_id, e.target_id) for e in audit["user.created"]] == [(tenants.b.id, str(user.id))]
    assert all(e.actor_label.startswith("cli:") for entries in audit.values() for e in entries)

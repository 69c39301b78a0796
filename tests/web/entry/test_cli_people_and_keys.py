"""The command line as an operator meets it: every command says what it does, a company is named the same
way (its slug, first) everywhere, and a company's users and keys can be listed and a key revoked."""

from __future__ import annotations

import click
import pytest
from sqlalchemy import select

from backoffice.platform.audit.models import AuditEntry
from backoffice.web.entry.cli import main
from backoffice.tenants.apikeys.models import ApiKey
from tests.web.entry.test_cli import _cli
from tests.web.api.conftest import make_key


def _commands(group: click.Group, prefix: str = "backoffice"):
    for name, command in group.commands.items():
        yield f"{prefix} {name}", command
        if isinstance(command, click.Group):
            yield from _commands(command, f"{prefix} {name}")


def test_every_command_has_a_help_line_and_names_a_tenant_by_its_slug_argument():
    missing, by_option = [], []
    for path, command in _commands(main):
        if not (command.help or "").strip():
            missing.append(path)
        if any(isinstance(p, click.Option) and "--tenant" in p.opts for p in command.params):
            by_option.append(path)
    assert missing == [] and by_option == []


@pytest.mark.postgres_only
async def test_users_and_keys_are_listed_and_a_key_revoked_per_company(database, tenants):
    secret_a = await make_key(database, tenants.a.id)
    await make_key(database, tenants.b.id)
    async with database.tenant(tenants.a.id) as session:
        key_a = (await session.execute(select(ApiKey))).scalars().first()
    async with database.tenant(tenants.b.id) as session:
        key_b = (await session.execute(select(ApiKey))).scalars().first()

    users = await _cli(database, "users", "list", "alfa")
    assert users.code == 0, users.err
    assert "admin@alfa.example" in users.out and "tenant_admin" in users.out and "beta.example" not in users.out

    listed = await _cli(database, "keys", "list", "alfa")
    assert listed.code == 0 and str(key_a.id) in listed.out and str(key_b.id) not in listed.out
    assert secret_a not in listed.out and "active" in listed.out

    foreign = await _cli(database, "keys", "revoke", "alfa", str(key_b.id), "--reason", "wrong company")
    assert foreign.code != 0
    revoked = await _cli(database, "keys", "revoke", "alfa", str(key_a.id), "--reason", "leaked in a ticket")
    assert revoked.code == 0, revoked.err
    assert "revoked" in (await _cli(database, "keys", "list", "alfa")).out
    async with database.tenant(tenants.b.id) as session:
        assert (await session.get(ApiKey, (tenants.b.id, key_b.id))).revoked_at is None
    async with database.system() as session:
        entry = (await session.execute(select(AuditEntry).where(AuditEntry.actor_type == "cli",
                                                                AuditEntry.target_id == str(key_a.id)))).scalars().one()
    assert entry.reason == "leaked in a ticket"

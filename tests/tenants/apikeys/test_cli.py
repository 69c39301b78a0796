"""``backoffice keys create`` prints the key once on stdout (only the key, for scripts) and audits it."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from backoffice.platform.audit.models import AuditEntry
from backoffice.tenants.apikeys import keys
from backoffice.tenants.apikeys.service import find_by_secret
from tests.web.entry.test_cli import _cli

pytestmark = pytest.mark.postgres_only


async def test_keys_create_prints_the_key_once_and_audits(database, tenants):
    ok, refused = await _cli(database, "keys", "create", "alfa", "--name", "ERP", "--scope", "customers:read",
                             "--scope", "events:write", "--expires-days", "30"), \
        await _cli(database, "keys", "create", "alfa", "--name", "ERP", "--scope", "customers:drop")
    assert ok.code == 0, ok.err
    secret = ok.out.strip()
    assert keys.looks_like_key(secret) and "shown only once" in ok.err
    assert refused.code == 2 and "scopes" in refused.err
    async with database.system() as session:
        key = await find_by_secret(session, secret)
        created = select(AuditEntry).where(AuditEntry.action == "api_key.created")
        audit = (await session.execute(created)).scalars().all()
    assert key.tenant_id == tenants.a.id and key.scopes == ["customers:read", "events:write"]
    assert [(a.actor_type, a.tenant_id) for a in audit] == [("cli", tenants.a.id)]

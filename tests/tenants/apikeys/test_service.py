"""API keys: the offline-recognisable format, hashing, scopes, expiry cap, roll with overlap, revocation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from backoffice.platform import clock
from backoffice.platform.audit.models import AuditEntry
from backoffice.platform.audit.service import Actor
from backoffice.platform.clock import FrozenClock
from backoffice.platform.db.session import NotFound
from backoffice.platform.errors import ValidationFailed
from backoffice.tenants.apikeys import keys
from backoffice.tenants.apikeys.models import ApiKey
from backoffice.tenants.apikeys.service import (
    allows, create_api_key, find_by_secret, revoke_api_key, roll_api_key, touch, usable,
)
from backoffice.tenants.registry.models import Tenant

ACTOR = Actor(type="tenant_user", label="admin@alfa.example")


def test_key_format_is_recognisable_offline():
    secret = keys.generate("live")
    assert secret.startswith("bo_live_") and len(secret) == keys.KEY_LEN
    assert keys.looks_like_key(secret)
    # Test-mode keys are retired (they reached live data): none is made, and an old one is recognised as such.
    with pytest.raises(KeyError):
        keys.generate("test")
    retired = "bo_test_" + secret[8:-keys.CHECKSUM_LEN]
    retired += keys.checksum(retired)
    assert not keys.looks_like_key(retired) and keys.retired_mode(retired) == "test"
    assert keys.retired_mode(secret) is None and keys.retired_mode(retired[:-1] + "!") is None
    flipped = secret[:20] + ("A" if secret[20] != "A" else "B") + secret[21:]
    assert not keys.looks_like_key(flipped)  # the checksum catches a changed character
    assert not keys.looks_like_key(secret[:-1])
    assert not keys.looks_like_key("bo_prod_" + secret[8:])
    assert not keys.looks_like_key(secret[:-6] + "!!!!!!")
    assert len({keys.generate("live") for _ in range(50)}) == 50


@pytest.fixture
def frozen():
    previous = clock.use(FrozenClock(datetime(2026, 5, 1, 12, tzinfo=UTC)))
    yield clock.now
    clock.use(previous)


async def test_created_key_is_stored_only_as_hash_and_audited(database, tenants, frozen):
    async with database.tenant(tenants.a.id) as session:
        new = await create_api_key(session, name="ERP", scopes=["customers:write", "events:write"], acting=ACTOR)
    async with database.system() as session:
        key = await find_by_secret(session, new.secret)
        rows = (await session.execute(select(ApiKey.key_hash, ApiKey.display_prefix))).all()
        created = select(AuditEntry).where(AuditEntry.action == "api_key.created")
        audit = (await session.execute(created)).scalars().all()
    assert key is not None and key.tenant_id == tenants.a.id and key.created_by == ACTOR.label
    assert all(new.secret not in (h, p) for h, p in rows)
    assert key.key_hash == keys.hash_key(new.secret) and new.secret.startswith(key.display_prefix)
    assert [a.tenant_id for a in audit] == [tenants.a.id] and new.secret not in str(audit[0].detail)
    assert allows(key.scopes, "customers:read") and not allows(key.scopes, "charges:read")


async def test_scopes_and_names_are_validated_per_field(database, tenants):
    async with database.tenant(tenants.a.id) as session:
        with pytest.raises(ValidationFailed) as error:
            await create_api_key(session, name=" ", scopes=["customers:delete"], acting=ACTOR)
    assert {e.field for e in error.value.errors} == {"name", "scopes"}


async def test_a_key_grants_only_scopes_it_holds_and_no_test_mode_key_is_made(database, tenants):
    async with database.tenant(tenants.a.id) as session:
        with pytest.raises(ValidationFailed) as error:
            await create_api_key(session, name="x", scopes=["customers:read", "charges:write"], acting=ACTOR,
                                 within=("customers:write", "keys:write"))
        assert [e.field for e in error.value.errors] == ["scopes"] and "charges:write" in str(error.value)
        assert "customers:read" not in str(error.value)  # write includes read: that one it may grant
        wide = await create_api_key(session, name="wide", scopes=["charges:write"], acting=ACTOR)  # a person
        with pytest.raises(ValidationFailed) as error:
            await roll_api_key(session, wide.key.id, acting=ACTOR, within=("keys:write",))
        assert error.value.errors[0].field == "scopes"
        with pytest.raises(ValidationFailed) as error:
            await create_api_key(session, name="t", scopes=["customers:read"], mode="test", acting=ACTOR)
        assert [e.field for e in error.value.errors] == ["mode"]
        # One issued before: never usable (the portal lists it as inactive), and rolling it is refused.
        old = ApiKey(name="old", mode="test", key_hash="0" * 64, display_prefix="bo_test_abcdef",
                     scopes=["customers:read"], created_by="admin")
        session.add(old)
        await session.flush()
        assert not usable(old, clock.now())
        with pytest.raises(ValidationFailed) as error:
            await roll_api_key(session, old.id, acting=ACTOR)
        assert error.value.errors[0].field == "key_id" and "test-mode" in str(error.value)


async def test_tenant_maximum_caps_the_expiry(database, tenants, frozen):
    async with database.system() as session:
        await session.execute(update(Tenant).where(Tenant.id == tenants.a.id).values(api_key_max_days=90))
    async with database.tenant(tenants.a.id) as session:
        for days in (None, 91):
            with pytest.raises(ValidationFailed) as error:
                await create_api_key(session, name="x", scopes=["tasks:read"], expires_days=days, acting=ACTOR)
            assert error.value.errors[0].field == "expires_days"
        new = await create_api_key(session, name="x", scopes=["tasks:read"], expires_days=90, acting=ACTOR)
    assert new.key.expires_at == frozen() + timedelta(days=90)
    async with database.tenant(tenants.b.id) as session:  # the other tenant has no maximum
        assert (await create_api_key(session, name="x", scopes=["tasks:read"], acting=ACTOR)).key.expires_at is None


async def test_roll_keeps_the_old_key_for_the_overlap_then_expires_it(database, tenants, frozen):
    async with database.tenant(tenants.a.id) as session:
        old = await create_api_key(session, name="ERP", scopes=["customers:read"], acting=ACTOR)
        new = await roll_api_key(session, old.key.id, acting=ACTOR)
    assert new.secret != old.secret and new.key.scopes == ["customers:read"]
    assert old.key.expires_at == frozen() + timedelta(hours=24) and old.key.replaced_by_id == new.key.id
    assert usable(old.key, frozen() + timedelta(hours=23)) and not usable(old.key, frozen() + timedelta(hours=24))
    async with database.system() as session:
        actions = (await session.execute(select(AuditEntry.action).order_by(AuditEntry.occurred_at))).scalars().all()
    assert "api_key.rolled" in actions


async def test_revoke_is_audited_and_another_tenant_cannot_touch_the_key(database, tenants, frozen):
    async with database.tenant(tenants.a.id) as session:
        new = await create_api_key(session, name="ERP", scopes=["customers:read"], acting=ACTOR)
    async with database.tenant(tenants.b.id) as session:
        with pytest.raises(NotFound):
            await revoke_api_key(session, new.key.id, acting=ACTOR)
        with pytest.raises(NotFound):
            await roll_api_key(session, new.key.id, acting=ACTOR)
    async with database.tenant(tenants.a.id) as session:
        key = await revoke_api_key(session, new.key.id, acting=ACTOR)
    assert not usable(key, frozen())


async def test_last_use_is_written_at_most_once_a_minute(database, tenants, frozen):
    async with database.tenant(tenants.a.id) as session:
        new = await create_api_key(session, name="ERP", scopes=["customers:read"], acting=ACTOR)
    start = frozen()
    for at, ip in ((start, "10.0.0.1"), (start + timedelta(seconds=30), "10.0.0.2"),
                   (start + timedelta(seconds=61), "10.0.0.3")):
        async with database.tenant(tenants.a.id) as session:
            await touch(session, new.key.id, ip, at)
        async with database.tenant(tenants.a.id) as session:
            key = await session.get(ApiKey, (tenants.a.id, new.key.id))
        expected = ("10.0.0.2" != ip) and ip or "10.0.0.1"
        assert key.last_used_ip == expected
    assert key.last_used_at == start + timedelta(seconds=61)

"""The per-tenant, versioned policy: defaults, versions, audit, isolation and refusals (both backends)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select, text

from backoffice.platform.audit.models import AuditEntry
from backoffice.platform.audit.service import Actor
from backoffice.platform.db.session import NotFound
from backoffice.platform.errors import Conflict, ValidationFailed
from backoffice.tenants.policies.models import PolicyVersion
from backoffice.tenants.policies.schemas import NOTIFICATION_KINDS, PolicyConfig
from backoffice.tenants.policies.service import current_policy, policy_at, policy_history, update_policy

ADMIN = Actor(type="tenant_user", label="admin@alfa.example", id="u-1")


async def _audit(database, tenant_id) -> list[AuditEntry]:
    async with database.system() as session:
        query = (select(AuditEntry).where(AuditEntry.tenant_id == tenant_id, AuditEntry.action == "policy.updated")
                 .order_by(AuditEntry.occurred_at))
        return list((await session.execute(query)).scalars())


async def _versions(database, tenant_id) -> int:
    async with database.tenant(tenant_id) as session:
        return (await session.execute(select(func.count()).select_from(PolicyVersion))).scalar_one()


async def test_a_tenant_that_never_saved_runs_on_the_defaults(database, tenants):
    async with database.tenant(tenants.a.id) as session:
        version, config = await current_policy(session)
        history = await policy_history(session)
    assert (version, history) == (0, [])
    assert config == PolicyConfig()
    assert config.start_trigger == "payment.cleared"
    assert (config.grace_days, config.reminder_offsets_days, config.reminder_hour_local) == (5, [3, 1], 9)
    assert config.auto_block and config.auto_unblock and config.terminate_after_days is None
    assert config.notify.primary == "account_manager"
    assert all(config.channels_for(kind) == ["portal"] for kind in NOTIFICATION_KINDS)
    assert "Agendar reunião de boas-vindas" in config.onboarding_checklist


async def test_each_update_is_a_new_audited_version(database, tenants):
    async with database.tenant(tenants.a.id) as session:
        first = await update_policy(session, changes={"grace_days": 10, "reminder_offsets_days": [1, 7]},
                                    acting=ADMIN, reason="Clientes pedem mais prazo")
    async with database.provider(tenants.a.id) as session:  # the CLI is the provider's
        second = await update_policy(session, changes={"start_trigger": "invoice.issued", "auto_block": False},
                                     acting=Actor.cli(), reason=None)
        version, config = await current_policy(session)
        history = await policy_history(session)

    assert first[0] == 1 and first[1].grace_days == 10
    assert first[1].reminder_offsets_days == [7, 1]  # kept in the order they happen
    assert second[0] == version == 2
    # The second change kept the first one's settings: changes merge into the current version.
    assert (config.grace_days, config.start_trigger, config.auto_block) == (10, "invoice.issued", False)
    assert [(row.version, row.created_by, row.reason) for row in history] == [
        (2, Actor.cli().label, None), (1, "admin@alfa.example", "Clientes pedem mais prazo"),
    ]

    entries = await _audit(database, tenants.a.id)
    assert [(e.actor_type, e.actor_id, e.actor_label, e.reason) for e in entries] == [
        ("tenant_user", "u-1", "admin@alfa.example", "Clientes pedem mais prazo"),
        ("cli", None, Actor.cli().label, None),
    ]
    assert entries[0].target_type == "policy" and entries[0].target_id == str(history[1].id)
    assert entries[0].detail == {
        "version": 1, "changed": ["grace_days", "reminder_offsets_days"],
        "values": {"grace_days": {"old": 5, "new": 10}},
    }
    assert entries[1].detail["values"] == {
        "start_trigger": {"old": "payment.cleared", "new": "invoice.issued"},
        "auto_block": {"old": True, "new": False},
    }


async def test_a_change_that_changes_nothing_saves_nothing(database, tenants):
    async with database.tenant(tenants.a.id) as session:
        result = await update_policy(session, changes={"grace_days": 5}, acting=ADMIN, reason="no-op")
    assert result == (0, PolicyConfig())
    assert await _versions(database, tenants.a.id) == 0
    assert await _audit(database, tenants.a.id) == []


async def test_one_tenants_policy_never_touches_anothers(database, tenants):
    async with database.tenant(tenants.a.id) as session:
        await update_policy(session, changes={"grace_days": 15}, acting=ADMIN, reason=None)
        await update_policy(session, changes={"grace_days": 20}, acting=ADMIN, reason=None)
    async with database.tenant(tenants.b.id) as session:
        assert await current_policy(session) == (0, PolicyConfig())
        assert await policy_history(session) == []
        with pytest.raises(NotFound):
            await policy_at(session, 1)  # A's version 1 is not B's
        version, config = await update_policy(session, changes={"grace_days": 3, "reminder_offsets_days": [1]},
                                              acting=ADMIN, reason=None)
    # B numbers its own versions from 1; A still reads its own latest.
    assert (version, config.grace_days) == (1, 3)
    async with database.tenant(tenants.a.id) as session:
        assert (await current_policy(session))[0] == 2
        assert (await current_policy(session))[1].grace_days == 20
    assert len(await _audit(database, tenants.b.id)) == 1


async def test_a_running_case_keeps_the_version_it_opened_with(database, tenants):
    async with database.tenant(tenants.a.id) as session:
        await update_policy(session, changes={"grace_days": 7}, acting=ADMIN, reason=None)
        await update_policy(session, changes={"grace_days": 30, "terminate_after_days": 90}, acting=ADMIN, reason=None)
        assert (await policy_at(session, 0)) == PolicyConfig()
        assert (await policy_at(session, 1)).grace_days == 7
        assert (await policy_at(session, 1)).terminate_after_days is None
        assert (await policy_at(session, 2)).terminate_after_days == 90
        with pytest.raises(NotFound):
            await policy_at(session, 3)


async def test_recipients_must_be_active_users_of_the_same_tenant(database, tenants):
    async with database.tenant(tenants.a.id) as session:
        _, config = await update_policy(
            session, changes={"notify": {"primary": "team", "team_user_ids": [str(tenants.a.member_id)],
                                         "fallback_user_id": str(tenants.a.admin_id)}},
            acting=ADMIN, reason=None)
        assert config.notify.team_user_ids == [tenants.a.member_id]
        # A user of tenant B is as unknown here as a made-up id: nothing tells A that B's user exists.
        with pytest.raises(ValidationFailed) as refused:
            await update_policy(session, changes={"notify": {"team_user_ids": [str(tenants.a.member_id),
                                                                               str(tenants.b.member_id)],
                                                             "fallback_user_id": str(tenants.b.admin_id)}},
                                acting=ADMIN, reason=None)
    assert {e.field for e in refused.value.errors} == {"notify.team_user_ids.1", "notify.fallback_user_id"}


@pytest.mark.parametrize(("changes", "field", "words"), [
    ({"grace_days": -1}, "grace_days", "greater than or equal to 0"),
    ({"grace_days": "10"}, "grace_days", "valid integer"),
    ({"grace_period": 10}, "grace_period", "unknown setting"),
    ({"notify": {"primary": "team", "team_user_ids": [], "boss": None}}, "notify.boss", "unknown setting"),
    ({"start_trigger": "payment.received"}, "start_trigger", "'payment.cleared'"),
    ({"reminder_offsets_days": [3, 3]}, "reminder_offsets_days", "only once"),
    ({"reminder_offsets_days": [9]}, "reminder_offsets_days", "before the grace period starts"),
    ({"channels": {"dunning.blocked": ["sms"]}}, "channels.dunning.blocked.0", "'portal'"),
    ({"templates": {"dunning.notice": {"pt-BR": {"subject": "Aviso", "body": "Olá {{ customer.name "}}}},
     "templates.dunning.notice.pt-BR.body", "line 1"),
    ({"templates": {"dunning.notice": {"en": {"subject": "Hi {{ customer.nickname }}", "body": "x"}}}},
     "templates.dunning.notice.en.title", "no field 'nickname'"),
    ({"templates": {"dunning.blocked": {"pt-BR": {"title": "Bloqueio", "body": "{{ payment.amount_cents }}"}}}},
     "templates.dunning.blocked.pt-BR.body", "unknown variable payment"),
    ({"templates": {"dunning.blocked": {"pt-BR": {"title": "x", "body": "{{ ''.__class__.__mro__ }}"}}}},
     "templates.dunning.blocked.pt-BR.body", "not allowed"),
    ({"templates": {"dunning.blocked": {"fr": {"title": "x", "body": "y"}}}},
     "templates.dunning.blocked.fr", "'pt-BR'"),
])
async def test_invalid_changes_are_refused_by_field_and_nothing_is_written(database, tenants, changes, field, words):
    async with database.tenant(tenants.a.id) as session:
        with pytest.raises(ValidationFailed) as refused:
            await update_policy(session, changes=changes, acting=ADMIN, reason="tentativa")
        # The transaction goes on and commits: the refusal itself must have written nothing.
    problems = {e.field: e.message for e in refused.value.errors}
    assert field in problems, problems
    assert words in problems[field]
    assert await _versions(database, tenants.a.id) == 0
    assert await _audit(database, tenants.a.id) == []


async def test_every_problem_is_reported_at_once(database, tenants):
    async with database.tenant(tenants.a.id) as session:
        with pytest.raises(ValidationFailed) as refused:
            await update_policy(session, changes={"grace_days": 99, "auto_block": "sim", "colour": "red"},
                                acting=ADMIN, reason="x" * 501)
    assert {e.field for e in refused.value.errors} == {"grace_days", "auto_block", "colour", "reason"}


async def test_template_overrides_are_saved_when_valid(database, tenants):
    override = {"subject": "{{ tenant.display_name }}: pague até {{ deadline_at|date }}",
                "body": "Olá, {{ customer.name }}. Valor: {{ charge.amount_cents|money }}."}
    async with database.tenant(tenants.a.id) as session:
        version, config = await update_policy(session, changes={"templates": {"dunning.notice": {"pt-BR": override}}},
                                              acting=ADMIN, reason="Tom da marca")
    assert version == 1
    assert config.override_for("dunning.notice", "pt-BR").title == override["subject"]
    assert config.override_for("dunning.notice", "en") is None


@pytest.mark.postgres_only
async def test_concurrent_updates_cannot_both_become_the_next_version(database, tenants):
    first = database.tenant_session(tenants.a.id)
    second = database.tenant_session(tenants.a.id)
    try:
        await first.begin()
        await update_policy(first, changes={"grace_days": 8}, acting=ADMIN, reason="first")
        # The second reads version 0 too (the first is not committed) and blocks on the unique index.
        racing = asyncio.create_task(update_policy(second, changes={"grace_days": 9}, acting=ADMIN, reason="second"))
        await _wait_for_lock_wait(database)
        await first.commit()
        with pytest.raises(Conflict):
            await racing
        # The savepoint kept the loser's transaction usable: it can reload and retry.
        assert (await update_policy(second, changes={"grace_days": 9}, acting=ADMIN, reason="retry"))[0] == 2
        await second.commit()
    finally:
        await first.close()
        await second.close()
    assert [e.reason for e in await _audit(database, tenants.a.id)] == ["first", "retry"]


async def _wait_for_lock_wait(database) -> None:
    for _ in range(200):
        async with database.engine.connect() as connection:
            waiting = (await connection.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            ))).scalar_one()
        if waiting:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the second update never waited on the first")

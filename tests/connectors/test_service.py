"""Connector instances: secrets encrypted at rest and redacted when shown, audited changes, tenant scope."""

from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy import select, text

from backoffice.connectors.models import ConnectorInstance
from backoffice.connectors.service import (
    create_instance, describe, get_instance, load_config, set_enabled, update_instance,
)
from backoffice.platform.audit.models import AuditEntry
from backoffice.platform.db.session import NotFound
from backoffice.platform.errors import Conflict, ValidationFailed
from tests.connectors.conftest import ACTOR, connector_settings

API_KEY = "$aact_live_secret_0123456789"
TOKEN = "hook-token-zyx987"


async def _asaas(database, tenant_id, **extra):
    async with database.provider(tenant_id) as session:
        return await create_instance(session, kind="asaas", name="Asaas principal", acting=ACTOR,
                                     config={"api_key": API_KEY, "webhook_token": TOKEN, **extra},
                                     settings=connector_settings(database))


async def test_secrets_are_encrypted_at_rest_redacted_when_shown_and_never_logged(database, tenants, caplog):
    caplog.set_level(logging.DEBUG)
    created = await _asaas(database, tenants.a.id)
    async with database.system() as session:
        raw = (await session.execute(text("SELECT config FROM connector_instances"))).scalar_one()
    stored = raw if isinstance(raw, str) else json.dumps(raw)
    assert API_KEY not in stored and TOKEN not in stored
    shown = describe(created)
    assert API_KEY not in json.dumps(shown) and TOKEN not in json.dumps(shown)
    assert shown["config"]["api_key"] == "••••••••" and shown["config"]["base_url"] == "https://api.asaas.com/"
    config = load_config(created, connector_settings(database))
    assert config.api_key.get_secret_value() == API_KEY
    assert API_KEY not in repr(config) and API_KEY not in str(config)
    async with database.tenant(tenants.a.id) as session:
        audit = (await session.execute(select(AuditEntry).where(
            AuditEntry.action == "connector.create", AuditEntry.target_id == str(created.id)))).scalars().all()
    assert len(audit) == 1 and API_KEY not in json.dumps(audit[0].detail)
    assert API_KEY not in caplog.text and TOKEN not in caplog.text


async def test_update_keeps_secrets_left_out_and_every_change_is_audited(database, tenants):
    created = await _asaas(database, tenants.a.id)
    settings = connector_settings(database)
    async with database.provider(tenants.a.id) as session:
        await update_instance(session, created.id, config={"base_url": "https://sandbox.asaas.com", "api_key": None},
                              acting=ACTOR, settings=settings)
        await update_instance(session, created.id, config={"webhook_token": "new-token-1234"}, acting=ACTOR,
                              settings=settings)
        await set_enabled(session, created.id, False, acting=ACTOR, reason="maintenance")
        instance = await get_instance(session, created.id)
        actions = (await session.execute(select(AuditEntry.action).where(
            AuditEntry.target_id == str(created.id)))).scalars().all()
    config = load_config(instance, settings)
    assert config.api_key.get_secret_value() == API_KEY
    assert config.webhook_token.get_secret_value() == "new-token-1234"
    assert str(config.base_url) == "https://sandbox.asaas.com/" and instance.enabled is False
    assert sorted(actions) == ["connector.create", "connector.disable", "connector.update", "connector.update"]


async def test_invalid_config_names_the_field_without_echoing_values(database, tenants):
    async with database.provider(tenants.a.id) as session:
        with pytest.raises(ValidationFailed) as refused:
            await create_instance(session, kind="asaas", name="x", config={"api_key": API_KEY, "surprise": 1},
                                  acting=ACTOR, settings=connector_settings(database))
        with pytest.raises(ValidationFailed) as unknown:
            await create_instance(session, kind="paypal", name="y", config={}, acting=ACTOR)
    fields = {e.field for e in refused.value.errors}
    assert fields == {"config.webhook_token", "config.surprise"}
    assert API_KEY not in str(refused.value)
    assert unknown.value.errors[0].field == "kind"


async def test_names_are_unique_per_tenant_only(database, tenants):
    await _asaas(database, tenants.a.id)
    await _asaas(database, tenants.b.id)  # the same name in another tenant is fine
    with pytest.raises(Conflict):
        await _asaas(database, tenants.a.id)


async def test_another_tenants_instance_cannot_be_read_changed_or_disabled(database, tenants):
    created = await _asaas(database, tenants.a.id)
    async with database.provider(tenants.b.id) as session:
        with pytest.raises(NotFound):
            await get_instance(session, created.id)
        with pytest.raises(NotFound):
            await update_instance(session, created.id, config={"webhook_token": "stolen"}, acting=ACTOR,
                                  settings=connector_settings(database))
        with pytest.raises(NotFound):
            await set_enabled(session, created.id, False, acting=ACTOR)
        assert (await session.execute(select(ConnectorInstance))).all() == []
    async with database.tenant(tenants.a.id) as session:
        instance = await get_instance(session, created.id)
    assert instance.enabled is True
    assert load_config(instance, connector_settings(database)).webhook_token.get_secret_value() == TOKEN


SECRETS_BY_KIND = [
    ("smtp", {"host": "smtp.example.com", "username": "u", "password": "smtp-Pa55word",
              "sender_address": "no-reply@example.com"}, "smtp-Pa55word"),
    ("chat", {"webhook_url": "https://hooks.slack.com/services/T1/B2/sEcReTtoKeN"}, "sEcReTtoKeN"),
    ("stripe", {"webhook_secret": "whsec_abcdef123456"}, "whsec_abcdef123456"),
    ("clicksign", {"hmac_secret": "cs-hmac-abcdef"}, "cs-hmac-abcdef"),
    ("focusnfe", {"token": "focus-tok-abcdef"}, "focus-tok-abcdef"),
]


async def test_every_kinds_secret_is_encrypted_and_redacted(database, tenants):
    for kind, config, secret in SECRETS_BY_KIND:
        async with database.provider(tenants.a.id) as session:
            created = await create_instance(session, kind=kind, name=kind, config=config, acting=ACTOR,
                                            settings=connector_settings(database))
        assert secret not in json.dumps(created.config) and secret not in json.dumps(describe(created)), kind
        assert secret not in repr(load_config(created, connector_settings(database))), kind

"""Rotating the secrets key: everything written under key A, rotated with "B,A", still reads with "B" alone,
in every tenant, on PostgreSQL and SQLite; re-running changes nothing; a value no key reads is reported;
and the CLI command does it with a progress bar and counts."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.fernet import Fernet
from sqlalchemy import select

from backoffice.connectors.models import ConnectorInstance
from backoffice.connectors.service import load_config
from backoffice.platform.audit.models import AuditEntry
from backoffice.platform.audit.service import Actor
from backoffice.web.entry.cli import main
from backoffice.web.entry.wiring import SECRET_COLUMNS
from backoffice.platform.security import secrets
from backoffice.platform.security.secrets import SecretUnreadable, rotate_all
from backoffice.platform.settings import get_settings
from backoffice.tenants.staff.second_factor import StaffSecondFactor
from backoffice.tenants.staff.service import create_staff
from backoffice.tenants.users.oidc import OidcSettings
from backoffice.tenants.webhooks.models import WebhookEndpoint
from backoffice.tenants.webhooks.service import live_secrets
from tests.conftest import env_for_subprocess

KEY_A, KEY_B = Fernet.generate_key().decode(), Fernet.generate_key().decode()
ROOT = Path(__file__).resolve().parents[3]


def keyed(database, keys: str):
    return database.settings.model_copy(update={"secrets_keys": keys})


async def store_secrets(database, tenants, settings) -> dict:
    """Each tenant's connector credentials, webhook signing secrets (two: a rotation's overlap) and SSO
    client secret, written under ``settings``' key as the services write them."""
    plain = {}
    for tenant in (tenants.a, tenants.b):
        p = {name: f"{name}-{tenant.slug}" for name in ("api_key", "webhook_token", "whsec_1", "whsec_2", "sso")}
        async with database.tenant(tenant.id) as session:
            connector = ConnectorInstance(kind="asaas", name="asaas", config={
                "base_url": "https://api.asaas.com/", "host_override": None,
                "api_key": secrets.encrypt(p["api_key"], settings),
                "webhook_token": secrets.encrypt(p["webhook_token"], settings)})
            now = datetime.now(UTC).isoformat()
            endpoint = WebhookEndpoint(url="https://hooks.example/in", description="", event_types=[], enabled=True,
                                       consecutive_failures=0, consecutive_dead=0, secrets=[
                {"secret": secrets.encrypt(p["whsec_1"], settings), "created_at": now, "expires_at": None},
                {"secret": secrets.encrypt(p["whsec_2"], settings), "created_at": now, "expires_at": None}])
            sso = OidcSettings(issuer="https://id.example", client_id="portal", allowed_domains=["a.example"],
                               client_secret_encrypted=secrets.encrypt(p["sso"], settings),
                               updated_at=datetime.now(UTC), updated_by="tests")
            session.add_all([connector, endpoint, sso])
        plain[tenant.id] = p
    # A staff member's TOTP secret (a provider table, keyed by staff_id).
    async with database.system() as session:
        staff = await create_staff(session, email="totp@provider.example", name="Totp", role="provider_operator",
                                   password="correct-horse-battery", acting=Actor.system("tests"))
        session.add(StaffSecondFactor(staff_id=staff.id, secret_encrypted=secrets.encrypt("TOTPSECRET", settings),
                                      last_step=0, enrolled_at=datetime.now(UTC)))
    plain["staff"] = "TOTPSECRET"
    return plain


async def read_secrets(database, tenants, settings) -> dict:
    found = {}
    for tenant in (tenants.a, tenants.b):
        async with database.tenant(tenant.id) as session:
            [connector] = (await session.execute(select(ConnectorInstance))).scalars()
            [endpoint] = (await session.execute(select(WebhookEndpoint))).scalars()
            [sso] = (await session.execute(select(OidcSettings))).scalars()
            config = load_config(connector, settings)
            whsec_1, whsec_2 = live_secrets(endpoint, settings=settings)
            found[tenant.id] = {"api_key": config.api_key.get_secret_value(),
                                "webhook_token": config.webhook_token.get_secret_value(),
                                "whsec_1": whsec_1, "whsec_2": whsec_2,
                                "sso": secrets.decrypt(sso.client_secret_encrypted, settings)}
    async with database.system() as session:
        [factor] = (await session.execute(select(StaffSecondFactor))).scalars()
        found["staff"] = secrets.decrypt(factor.secret_encrypted, settings)
    return found


async def test_rotating_lets_the_old_key_go_in_every_tenant(database, tenants):
    under_a, a_then_b, only_b = keyed(database, KEY_A), keyed(database, f"{KEY_B},{KEY_A}"), keyed(database, KEY_B)
    plain = await store_secrets(database, tenants, under_a)
    with pytest.raises(SecretUnreadable):  # without the rotation, dropping A would lose every secret
        await read_secrets(database, tenants, only_b)

    seen = []
    report = await rotate_all(database, list(SECRET_COLUMNS), acting=Actor.system("tests"), settings=a_then_b,
                              batch_size=1, progress=seen.append)  # one row a batch: the paging is exercised
    assert report.done and report.unreadable == []
    assert report.rows == {"connector configs": 2, "webhook signing secrets": 2, "SSO client secrets": 2,
                           "staff TOTP secrets": 1}
    assert report.resealed == report.rows and sum(seen) == 7
    assert await read_secrets(database, tenants, only_b) == plain  # A can go

    again = await rotate_all(database, list(SECRET_COLUMNS), acting=Actor.system("tests"), settings=a_then_b)
    assert again.resealed == {label: 0 for label in again.rows}  # idempotent: nothing left to re-encrypt
    assert await read_secrets(database, tenants, only_b) == plain
    async with database.system() as session:
        audited = (await session.execute(select(AuditEntry).where(AuditEntry.action == "secrets.rotated"))).scalars()
        assert [entry.detail["resealed"]["connector configs"] for entry in audited] == [2, 0]


async def test_a_value_no_key_reads_is_reported_and_left_alone(database, tenants):
    stranger = keyed(database, Fernet.generate_key().decode())
    await store_secrets(database, tenants, stranger)
    report = await rotate_all(database, list(SECRET_COLUMNS), acting=Actor.system("tests"),
                              settings=keyed(database, f"{KEY_B},{KEY_A}"))
    assert not report.done and len(report.unreadable) == 2 * 5 + 1  # every value, named by column and row
    assert any(where.startswith("staff TOTP secrets ") for where in report.unreadable)
    assert any(where.startswith(f"SSO client secrets {tenants.a.id}/") for where in report.unreadable)
    assert await read_secrets(database, tenants, stranger)  # untouched: still readable with its own key


def test_every_module_that_encrypts_declares_its_column():
    # A new place that stores encrypted values must give rotate_all its column (web/entry/wiring.py SECRET_COLUMNS).
    encrypting = sorted(
        str(path.relative_to(ROOT)) for folder in ("platform", "tenants", "connectors", "web")
        for path in (ROOT / folder).rglob("*.py")
        if re.search(r"\b(secrets|vault)\.encrypt\(", path.read_text()) and path.name != "secrets.py")
    declaring = sorted(str(Path(*column.reseal.__module__.split(".")[1:])) + ".py" for column in list(SECRET_COLUMNS))
    assert encrypting == declaring


async def test_the_cli_rotates_with_a_progress_bar_and_counts(database, tenants):
    plain = await store_secrets(database, tenants, keyed(database, KEY_A))
    env = env_for_subprocess(keyed(database, f"{KEY_B},{KEY_A}"))
    get_settings.cache_clear()  # the command reads its settings from this environment, as a process would
    try:
        result = await _invoke(["secrets", "rotate", "--batch-size", "1"], env)
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "Re-encrypting secrets" in result.stderr  # the progress bar's label (a terminal gets the bar)
    assert "connector configs: 2 rows read, 2 re-encrypted" in result.stdout
    assert "webhook signing secrets: 2 rows read, 2 re-encrypted" in result.stdout
    assert "SSO client secrets: 2 rows read, 2 re-encrypted" in result.stdout
    assert "staff TOTP secrets: 1 rows read, 1 re-encrypted" in result.stdout
    assert await read_secrets(database, tenants, keyed(database, KEY_B)) == plain
    async with database.system() as session:
        [entry] = (await session.execute(select(AuditEntry).where(AuditEntry.action == "secrets.rotated"))).scalars()
    assert entry.actor_label.startswith("cli:")


def test_the_cli_makes_a_key():
    result = CliRunner().invoke(main, ["secrets", "new-key"], env={"BACKOFFICE_DATABASE_URL": "postgresql+asyncpg://x"})
    assert result.exit_code == 0 and Fernet(result.stdout.strip().encode())  # no configuration needed


async def _invoke(args: list[str], env: dict[str, str]):
    import asyncio

    # The command runs its own event loop (asyncio.run), so it runs in a thread beside this one.
    return await asyncio.to_thread(CliRunner().invoke, main, args, env=env)

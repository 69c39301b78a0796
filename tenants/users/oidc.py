"""A tenant's own OIDC single sign-on: its provider settings and admitting the people it vouches for.

The client secret is stored encrypted (``platform.security.secrets``). Only e-mail addresses of the
tenant's allowed domains are admitted; a new address becomes a member without a password (SSO only), an
existing user of the tenant is linked by e-mail, an inactive one stays out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import JSON, ForeignKeyConstraint, String, UniqueConstraint, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from backoffice.platform import clock
from backoffice.platform.audit.service import Actor, record
from backoffice.platform.db.base import Base, TenantOwned
from backoffice.platform.errors import Collector
from backoffice.platform.security import secrets
from backoffice.platform.security.outbound import TargetRefused, check_target
from backoffice.platform.settings import Settings
from backoffice.tenants.users.models import TenantRole, TenantUser
from backoffice.tenants.users.service import create_tenant_user


class OidcSettings(TenantOwned, Base):
    __tablename__ = "oidc_settings"
    __table_args__ = (UniqueConstraint("tenant_id"), ForeignKeyConstraint(["tenant_id"], ["tenants.id"]))

    issuer: Mapped[str] = mapped_column(String(500))
    client_id: Mapped[str] = mapped_column(String(200))
    client_secret_encrypted: Mapped[str] = mapped_column(String(1000))
    allowed_domains: Mapped[list[str]] = mapped_column(JSON, default=list)
    enabled: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime] = mapped_column()
    updated_by: Mapped[str] = mapped_column(String(254))


class SsoRefused(PermissionError):
    """The provider's answer does not admit this person to this tenant; the message says why."""


async def get_oidc_settings(session: AsyncSession) -> OidcSettings | None:
    return (await session.execute(select(OidcSettings))).scalar_one_or_none()


def _issuer(value: str, *, allow_http: bool) -> str:
    """https only: discovery, keys and the token exchange (with the client secret) all start from the issuer.
    Plain http only where BACKOFFICE_ALLOW_PRIVATE_TARGETS is on (tests and local development, whose
    provider is a local server), the same switch that lets webhook URLs be http."""
    value = (value or "").strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError("expected the provider's issuer URL, like https://login.example.com")
    if parts.scheme != "https" and not allow_http:
        raise ValueError("expected an https URL: the provider's keys and tokens must not travel in clear")
    return value


def _domains(value: str | list[str]) -> list[str]:
    items = value.replace(",", " ").split() if isinstance(value, str) else list(value)
    domains = sorted({item.strip().lower().lstrip("@") for item in items if item.strip()})
    if not domains or any("." not in d or "/" in d for d in domains):
        raise ValueError("expected one or more e-mail domains, like aurora.example")
    return domains


async def save_oidc_settings(
    session: AsyncSession, *, issuer: str, client_id: str, client_secret: str | None, allowed_domains: str | list[str],
    enabled: bool, settings: Settings, acting: Actor,
) -> OidcSettings:
    """Create or change the tenant's SSO; an empty ``client_secret`` keeps the stored one."""
    current = await get_oidc_settings(session)
    errors = Collector()
    clean_issuer = errors.check("issuer", lambda v: _issuer(v, allow_http=settings.allow_private_targets), issuer)
    if clean_issuer:
        try:  # the one outbound check, at save time (and again whenever the platform connects)
            await check_target(clean_issuer, settings)
        except TargetRefused as refused:
            errors.add("issuer", str(refused))
    domains = errors.check("allowed_domains", _domains, allowed_domains)
    if not (client_id or "").strip():
        errors.add("client_id", "expected the client id the provider gave this company")
    if current is None and not client_secret:
        errors.add("client_secret", "expected the client secret the provider gave this company")
    errors.raise_if_any()
    row = current or OidcSettings()
    row.issuer, row.client_id, row.allowed_domains, row.enabled = clean_issuer, client_id.strip(), domains, enabled
    if client_secret:
        row.client_secret_encrypted = secrets.encrypt(client_secret, settings)
    row.updated_at, row.updated_by = clock.now(), acting.label[:254]
    session.add(row)
    await session.flush()
    await record(session, actor=acting, action="sso.configured", target_type="oidc_settings", target_id=row.id,
                 tenant_id=row.tenant_id, detail={"issuer": row.issuer, "client_id": row.client_id,
                                                  "allowed_domains": domains, "enabled": enabled,
                                                  "secret_changed": bool(client_secret)})
    return row


async def admit_sso_user(session: AsyncSession, config: OidcSettings, claims: dict[str, Any]) -> TenantUser:
    """The tenant user the verified ID token speaks for, created or linked by e-mail."""
    email = str(claims.get("email") or "").strip().lower()
    if not email or "@" not in email:
        raise SsoRefused("the provider did not give an e-mail address")
    if claims.get("email_verified") is False:
        raise SsoRefused("the provider says this e-mail address is not verified")
    domain = email.rsplit("@", 1)[1]
    if domain not in config.allowed_domains:
        raise SsoRefused(f"e-mail addresses of {domain} are not admitted to this company")
    actor = Actor(type="sso", label=f"sso:{config.issuer}", id=str(claims.get("sub") or ""))
    user = (await session.execute(select(TenantUser).where(TenantUser.email == email))).scalar_one_or_none()
    if user is None:
        name = str(claims.get("name") or email.split("@")[0])[:200]
        user = await create_tenant_user(session, email=email, name=name, role=TenantRole.MEMBER.value, password=None,
                                        acting=actor)
    elif not user.active:
        raise SsoRefused("this user is deactivated in this company")
    return user




# The SSO client secret, for ``secrets.rotate_all``.
SECRET_COLUMN = secrets.SecretColumn("SSO client secrets", OidcSettings.__table__, "client_secret_encrypted",
                                     lambda row, one: one(row["client_secret_encrypted"]))

"""Registering, suspending and reactivating the client companies the provider serves."""

from __future__ import annotations

import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform.audit.service import Actor, record
from backoffice.platform.documents import normalize_cnpj
from backoffice.platform.errors import Collector, Conflict, FieldError, ValidationFailed
from backoffice.tenants.registry.branding import sniff_logo, validate_colours
from backoffice.tenants.registry.models import Tenant, TenantStatus

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# Path segments the platform itself uses at the root; a tenant slug may not take them.
RESERVED_SLUGS = frozenset(
    {"api", "hooks", "static", "healthz", "readyz", "staff", "docs", "schema", "admin", "login", "logout", "assets"}
)
LOCALES = ("pt-BR", "en")


class TenantNotFound(LookupError):
    pass


class TenantSuspended(PermissionError):
    def __init__(self, tenant: Tenant) -> None:
        super().__init__(f"{tenant.display_name} is suspended")
        self.tenant = tenant


def _slug(value: str) -> str:
    if not isinstance(value, str) or not SLUG.match(value):
        raise ValueError("expected 1-63 lowercase letters, digits or hyphens, not starting or ending with a hyphen")
    if value in RESERVED_SLUGS:
        raise ValueError(f"'{value}' is reserved by the platform")
    return value


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("expected an IANA time zone such as America/Sao_Paulo") from None
    return value


def _locale(value: str) -> str:
    if value not in LOCALES:
        raise ValueError(f"expected one of {', '.join(LOCALES)}")
    return value


def _name(value: str) -> str:
    value = (value or "").strip()
    if not 1 <= len(value) <= 200:
        raise ValueError("expected 1-200 characters")
    return value


async def create_tenant(
    session: AsyncSession,
    *,
    slug: str,
    display_name: str,
    legal_name: str,
    cnpj: str,
    timezone: str = "America/Sao_Paulo",
    locale: str = "pt-BR",
    branding: dict[str, Any] | None = None,
    acting: Actor,
    reason: str | None = None,
) -> Tenant:
    errors = Collector()
    fields = {
        "slug": errors.check("slug", _slug, slug),
        "display_name": errors.check("display_name", _name, display_name),
        "legal_name": errors.check("legal_name", _name, legal_name),
        "cnpj": errors.check("cnpj", normalize_cnpj, cnpj),
        "timezone": errors.check("timezone", _timezone, timezone),
        "locale": errors.check("locale", _locale, locale),
        "branding": errors.check("branding", validate_colours, branding),
    }
    errors.raise_if_any()
    await _refuse_duplicates(session, slug=fields["slug"], cnpj=fields["cnpj"])
    tenant = Tenant(**fields, status=TenantStatus.ACTIVE)
    session.add(tenant)
    try:
        await session.flush()
    except IntegrityError as error:  # a concurrent creation won the race
        raise _conflict_from(error) from None
    await record(
        session,
        actor=acting,
        action="tenant.created",
        target_type="tenant",
        target_id=tenant.id,
        tenant_id=tenant.id,
        reason=reason,
        detail={"slug": tenant.slug, "cnpj": tenant.cnpj},
    )
    return tenant


async def _refuse_duplicates(session: AsyncSession, *, slug: str, cnpj: str) -> None:
    rows = (await session.execute(select(Tenant.slug, Tenant.cnpj).where((Tenant.slug == slug) | (Tenant.cnpj == cnpj)))).all()
    problems = []
    if any(row.slug == slug for row in rows):
        problems.append(FieldError("slug", f"a tenant with slug '{slug}' already exists"))
    if any(row.cnpj == cnpj for row in rows):
        problems.append(FieldError("cnpj", "a tenant with this CNPJ already exists"))
    if problems:
        raise Conflict(problems)


def _conflict_from(error: IntegrityError) -> Conflict:
    text = str(error.orig)
    field = "cnpj" if "cnpj" in text else "slug" if "slug" in text else "tenant"
    return Conflict(FieldError(field, f"a tenant with this {field} already exists"))


async def get_tenant_by_slug(session: AsyncSession, slug: str) -> Tenant:
    tenant = (await session.execute(select(Tenant).where(Tenant.slug == slug))).scalar_one_or_none()
    if tenant is None:
        raise TenantNotFound(slug)
    return tenant


async def list_tenants(session: AsyncSession) -> list[Tenant]:
    return list((await session.execute(select(Tenant).order_by(Tenant.slug))).scalars())


async def suspend_tenant(session: AsyncSession, tenant: Tenant, *, reason: str, acting: Actor) -> Tenant:
    """Refuse the tenant's portal and API; its data is kept untouched."""
    if not (reason or "").strip():
        raise ValidationFailed(FieldError("reason", "expected the reason for the suspension"))
    if tenant.status == TenantStatus.SUSPENDED:
        return tenant
    tenant.status = TenantStatus.SUSPENDED
    tenant.suspended_reason = reason.strip()
    await session.flush()
    await record(session, actor=acting, action="tenant.suspended", target_type="tenant",
                 target_id=tenant.id, tenant_id=tenant.id, reason=reason,
                 detail={"before": TenantStatus.ACTIVE.value, "after": TenantStatus.SUSPENDED.value})
    return tenant


async def reactivate_tenant(session: AsyncSession, tenant: Tenant, *, reason: str | None, acting: Actor) -> Tenant:
    if tenant.status == TenantStatus.ACTIVE:
        return tenant
    tenant.status = TenantStatus.ACTIVE
    tenant.suspended_reason = None
    await session.flush()
    await record(session, actor=acting, action="tenant.reactivated", target_type="tenant",
                 target_id=tenant.id, tenant_id=tenant.id, reason=reason,
                 detail={"before": TenantStatus.SUSPENDED.value, "after": TenantStatus.ACTIVE.value})
    return tenant


def ensure_active(tenant: Tenant) -> Tenant:
    if tenant.status != TenantStatus.ACTIVE:
        raise TenantSuspended(tenant)
    return tenant


async def update_branding(session: AsyncSession, tenant_id, *, colours: dict[str, Any] | None = None,
                          logo: bytes | None = None, acting: Actor) -> Tenant:
    """Change the tenant's colours and/or logo: validated data only (hex colours; PNG, JPEG or WebP)."""

    tenant = await session.get(Tenant, tenant_id)
    if tenant is None:
        raise TenantNotFound(str(tenant_id))
    errors = Collector()
    for key, value in (colours or {}).items():  # each colour's problem named by its own field
        errors.check(key, lambda v, key=key: validate_colours({key: v}), value)
    new_colours = {**tenant.branding, **colours} if colours is not None else None
    content_type = errors.check("logo", sniff_logo, logo) if logo is not None else None
    errors.raise_if_any()
    changed = []
    before = validate_colours(tenant.branding)
    if new_colours is not None and validate_colours(new_colours) != validate_colours(tenant.branding):
        tenant.branding = validate_colours(new_colours)
        changed.append("colours")
    if logo is not None:
        tenant.logo, tenant.logo_content_type = logo, content_type
        changed.append("logo")
    if not changed:
        return tenant
    await session.flush()
    await record(session, actor=acting, action="tenant.branding_changed", target_type="tenant", target_id=tenant.id,
                 tenant_id=tenant.id, detail={"changed": changed, "colours": tenant.branding, "before": before,
                                              "after": tenant.branding,
                                              "logo_bytes": len(logo) if logo is not None else None})
    return tenant

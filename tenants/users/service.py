"""Front-office users of a tenant."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform.audit.service import Actor, record
from backoffice.platform.errors import Collector, Conflict, FieldError
from backoffice.platform.security.passwords import check_password_strength, hash_password
from backoffice.platform.staff.service import normalize_email
from backoffice.tenants.users.models import TenantRole, TenantUser


def _role(value: str) -> TenantRole:
    try:
        return TenantRole(value)
    except ValueError:
        raise ValueError(f"expected one of {', '.join(r.value for r in TenantRole)}") from None


async def create_tenant_user(
    session: AsyncSession, *, email: str, name: str, role: str, password: str | None, acting: Actor
) -> TenantUser:
    """Create a user in the session's tenant. ``password=None`` admits the user only through SSO."""
    errors = Collector()
    email = errors.check("email", normalize_email, email)
    role_value = errors.check("role", _role, role)
    if password is not None:
        errors.check("password", check_password_strength, password)
    if not (name or "").strip():
        errors.add("name", "expected the person's name")
    errors.raise_if_any()
    if (await session.execute(select(TenantUser.id).where(TenantUser.email == email))).first():
        raise Conflict(FieldError("email", f"a user with e-mail {email} already exists in this company"))
    user = TenantUser(
        email=email, name=name.strip(), role=role_value,
        password_hash=hash_password(password) if password is not None else None,
    )
    try:
        async with session.begin_nested():
            session.add(user)
    except IntegrityError:  # a concurrent creation with the same e-mail won the race
        raise Conflict(FieldError("email", f"a user with e-mail {email} already exists in this company")) from None
    await record(session, actor=acting, action="user.created", target_type="tenant_user", target_id=user.id,
                 tenant_id=user.tenant_id, detail={"email": email, "role": role_value.value})
    return user


async def list_tenant_users(session: AsyncSession) -> list[TenantUser]:
    return list((await session.execute(select(TenantUser).order_by(TenantUser.email))).scalars())

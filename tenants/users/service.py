"""Front-office users of a tenant."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform.audit.service import Actor, record
from backoffice.platform.db.session import get_owned
from backoffice.platform.errors import Collector, Conflict, FieldError, ValidationFailed
from backoffice.platform.security.passwords import check_password_strength, hash_password, verify_password
from backoffice.tenants.staff.service import normalize_email
from backoffice.tenants.users.models import TenantRole, TenantUser
from backoffice.tenants.users.queries import user_by_email


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


async def _other_active_admins(session: AsyncSession, user: TenantUser) -> int:

    query = select(func.count()).select_from(TenantUser).where(
        TenantUser.role == TenantRole.ADMIN, TenantUser.active.is_(True), TenantUser.id != user.id)
    return (await session.execute(query)).scalar_one()


async def change_tenant_user_role(session: AsyncSession, user_id, *, role: str, acting: Actor) -> TenantUser:
    """Change a user's role; the company always keeps at least one active admin."""

    user = await get_owned(session, TenantUser, user_id)
    try:
        new_role = _role(role)
    except ValueError as error:
        raise ValidationFailed(FieldError("role", str(error))) from None
    if new_role == user.role:
        return user
    if user.role == TenantRole.ADMIN and not await _other_active_admins(session, user):
        raise ValidationFailed(FieldError("role", "the company must keep at least one active admin"))
    before = user.role.value
    user.role = new_role
    await session.flush()
    await record(session, actor=acting, action="user.role_changed", target_type="tenant_user", target_id=user.id,
                 tenant_id=user.tenant_id, detail={"email": user.email, "old": before, "new": new_role.value})
    return user


async def set_tenant_user_active(session: AsyncSession, user_id, *, active: bool, acting: Actor) -> TenantUser:
    """Deactivate (no more log-in, sessions refused at their next request) or reactivate a user."""

    user = await get_owned(session, TenantUser, user_id)
    if user.active == active:
        return user
    if not active and user.role == TenantRole.ADMIN and not await _other_active_admins(session, user):
        raise ValidationFailed(FieldError("active", "the company must keep at least one active admin"))
    user.active = active
    await session.flush()
    await record(session, actor=acting, action="user.reactivated" if active else "user.deactivated",
                 target_type="tenant_user", target_id=user.id, tenant_id=user.tenant_id, detail={"email": user.email})
    return user


def user_actor(user: TenantUser) -> Actor:
    return Actor(type="tenant_user", label=user.email, id=str(user.id))


async def log_in_with_password(session: AsyncSession, *, email: str, password: str, address: str) -> TenantUser | None:
    """The active user with this e-mail and password, their log-in audited; None when either is wrong (the
    caller answers the same whichever it was)."""
    user = await user_by_email(session, email)
    # The password is checked (or the same work done) whether or not the account exists or is active.
    matches = verify_password(user.password_hash if user is not None else None, password)
    if user is None or not matches or not user.active:
        return None
    await record_log_in(session, user, method="password", address=address)
    return user


async def record_log_in(session: AsyncSession, user: TenantUser, *, method: str, **detail: str) -> None:
    """A user's log-in (``method``: password, oidc; ``detail``: where from, which identity provider)."""
    await record(session, actor=user_actor(user), action="user.logged_in", target_type="tenant_user",
                 target_id=user.id, tenant_id=user.tenant_id, detail={"method": method, **detail})

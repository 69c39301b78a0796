"""Provider staff, and mobilising/demobilising them on tenants."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform.audit.service import Actor, record
from backoffice.platform.db.base import utcnow
from backoffice.platform.errors import Collector, Conflict, FieldError, ValidationFailed
from backoffice.platform.security.passwords import check_password_strength, hash_password
from backoffice.tenants.staff.models import Assignment, Staff, StaffRole
from backoffice.tenants.registry.models import Tenant

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalize_email(value: str) -> str:
    value = (value or "").strip().lower()
    if len(value) > 254 or not EMAIL.match(value) or any(ord(char) < 32 for char in value):
        raise ValueError("expected an e-mail address like name@example.com")
    return value


def _role(value: str) -> StaffRole:
    try:
        return StaffRole(value)
    except ValueError:
        raise ValueError(f"expected one of {', '.join(r.value for r in StaffRole)}") from None


class StaffNotFound(LookupError):
    pass


REASON_MAX = 1000


def require_reason(value: str | None) -> str:
    """Every change to who serves a tenant says why: the audit log keeps it."""
    value = (value or "").strip()
    if not value:
        raise ValidationFailed(FieldError("reason", "expected why (kept in the audit log)"))
    if "\x00" in value or len(value) > REASON_MAX:
        raise ValidationFailed(FieldError("reason", f"expected at most {REASON_MAX} characters of text"))
    return value


class OpenWork(Protocol):
    """A kind of work a staff member holds in a tenant (the routine runs they follow up, ...), which a hand-over
    moves to someone else. The domains that hold such work implement it (``tenants/``); the edges that call
    :func:`hand_over` and :func:`unassign_staff` pass them in, so this layer names no domain above it."""

    kind: str

    async def hand_over(self, session: AsyncSession, *, tenant_id: uuid.UUID, from_staff_id: uuid.UUID,
                        to_staff_id: uuid.UUID) -> list[uuid.UUID]:
        """Moves the open work in one statement; answers the ids moved."""
        ...


async def create_staff(
    session: AsyncSession, *, email: str, name: str, role: str, password: str, acting: Actor
) -> Staff:
    errors = Collector()
    email = errors.check("email", normalize_email, email)
    role_value = errors.check("role", _role, role)
    errors.check("password", check_password_strength, password)
    if not (name or "").strip():
        errors.add("name", "expected the person's name")
    errors.raise_if_any()
    if (await session.execute(select(Staff.id).where(Staff.email == email))).first():
        raise Conflict(FieldError("email", f"a staff member with e-mail {email} already exists"))
    staff = Staff(email=email, name=name.strip(), role=role_value, password_hash=hash_password(password))
    try:
        async with session.begin_nested():
            session.add(staff)
    except IntegrityError:  # a concurrent creation with the same e-mail won the race
        raise Conflict(FieldError("email", f"a staff member with e-mail {email} already exists")) from None
    await record(session, actor=acting, action="staff.created", target_type="staff", target_id=staff.id,
                 tenant_id=None, detail={"email": email, "role": role_value.value})
    return staff


async def get_staff_by_email(session: AsyncSession, email: str) -> Staff:
    staff = (await session.execute(select(Staff).where(Staff.email == email.strip().lower()))).scalar_one_or_none()
    if staff is None:
        raise StaffNotFound(email)
    return staff


def _active(staff_id: uuid.UUID, tenant_id: uuid.UUID):
    return select(Assignment).where(
        Assignment.staff_id == staff_id, Assignment.tenant_id == tenant_id, Assignment.ended_at.is_(None)
    )


async def active_assignment(session: AsyncSession, staff_id: uuid.UUID, tenant_id: uuid.UUID) -> Assignment | None:
    # Two concurrent mobilisations can each see none and both insert (nothing in the schema stops it),
    # so more than one active row is tolerated here instead of failing every later check.
    query = _active(staff_id, tenant_id).order_by(Assignment.started_at).limit(1)
    return (await session.execute(query)).scalars().first()


async def assign_staff(
    session: AsyncSession, *, staff: Staff, tenant: Tenant, acting: Actor, reason: str
) -> Assignment:
    """Mobilise: the staff member may act on the tenant from now on. Idempotent."""
    reason = require_reason(reason)
    existing = await active_assignment(session, staff.id, tenant.id)
    if existing:
        return existing
    assignment = Assignment(staff_id=staff.id, tenant_id=tenant.id)
    try:
        async with session.begin_nested():
            session.add(assignment)
    except IntegrityError:  # mobilised concurrently: the other assignment stands (one active at a time)
        return await active_assignment(session, staff.id, tenant.id)
    await record(session, actor=acting, action="staff.assigned", target_type="staff", target_id=staff.id,
                 tenant_id=tenant.id, reason=reason, detail={"email": staff.email})
    return assignment


async def unassign_staff(
    session: AsyncSession, *, staff: Staff, tenant: Tenant, acting: Actor, reason: str,
    hand_over_to: Staff | None = None, work: Sequence[OpenWork] = (),
) -> Assignment:
    """Demobilise: access ends now (the next request for the tenant is refused, whatever session it comes
    from: every door checks the assignment per request); the assignment stays as history. With
    ``hand_over_to``, the person's open work in the tenant moves to them first, in the same transaction."""
    reason = require_reason(reason)
    active = list((await session.execute(_active(staff.id, tenant.id).order_by(Assignment.started_at))).scalars())
    if not active:
        raise ValidationFailed(FieldError("staff", f"{staff.email} is not assigned to {tenant.slug}"))
    if hand_over_to is not None:
        await hand_over(session, tenant=tenant, from_staff=staff, to_staff=hand_over_to, acting=acting,
                        reason=reason, work=work)
    ended_at = utcnow()
    for assignment in active:  # all of them: a duplicate left active would keep the access open
        assignment.ended_at = ended_at
    await session.flush()
    await record(session, actor=acting, action="staff.unassigned", target_type="staff", target_id=staff.id,
                 tenant_id=tenant.id, reason=reason, detail={"email": staff.email})
    return active[0]


async def hand_over(
    session: AsyncSession, *, tenant: Tenant, from_staff: Staff, to_staff: Staff, acting: Actor, reason: str,
    work: Sequence[OpenWork],
) -> dict[str, list[uuid.UUID]]:
    """Move ``from_staff``'s open work in the tenant to ``to_staff`` in one action; the receiver must serve
    the tenant (an operator mobilised on it, or an admin). Audited with the ids moved; answers them by kind."""
    reason = require_reason(reason)
    if to_staff.id == from_staff.id:
        raise ValidationFailed(FieldError("to_staff", "expected someone else to hand the work to"))
    if not await can_act_on(session, to_staff, tenant.id):
        raise ValidationFailed(FieldError("to_staff", "does not serve this company; mobilise them first"))
    moved: dict[str, list[uuid.UUID]] = {}
    for kind in work:
        moved[kind.kind] = await kind.hand_over(session, tenant_id=tenant.id, from_staff_id=from_staff.id,
                                                to_staff_id=to_staff.id)
    await record(session, actor=acting, action="staff.handed_over", target_type="staff", target_id=from_staff.id,
                 tenant_id=tenant.id, reason=reason,
                 detail={"from": from_staff.email, "to": to_staff.email, "to_id": str(to_staff.id),
                         **{kind: {"count": len(ids), "ids": [str(i) for i in ids[:200]]}
                            for kind, ids in moved.items()}})
    return moved


async def can_act_on(session: AsyncSession, staff: Staff, tenant_id: uuid.UUID) -> bool:
    """Provider admins act on every tenant; operators only where they are mobilised."""
    if not staff.active:
        return False
    if staff.role == StaffRole.ADMIN:
        return True
    return await active_assignment(session, staff.id, tenant_id) is not None


async def assigned_tenant_ids(session: AsyncSession, staff: Staff) -> list[uuid.UUID]:
    query = select(Assignment.tenant_id).where(Assignment.staff_id == staff.id, Assignment.ended_at.is_(None))
    return list((await session.execute(query)).scalars())

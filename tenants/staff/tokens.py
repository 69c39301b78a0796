"""Bearer tokens for provider staff on /api/v1/staff: ``bo_staff_`` + 32 random bytes, stored as SHA-256.

Issued by e-mail and password (argon2 verify), expiring after a working day; revocable by deleting the
row. A wrong password and an unknown e-mail fail alike, after the same argon2 work.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ForeignKey, String, Uuid, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from backoffice.platform import clock
from backoffice.platform.audit.service import Actor, record
from backoffice.platform.db.base import Base, PlatformOwned, new_id, utcnow
from backoffice.platform.security.passwords import hash_password, verify_password
from backoffice.tenants.staff.models import Staff

PREFIX = "bo_staff_"
LIFETIME = timedelta(hours=12)
# Verified against when the e-mail is unknown, so both failures cost the same argon2 work.
_DUMMY_HASH: str | None = None


class StaffToken(PlatformOwned, Base):
    __tablename__ = "staff_tokens"

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, default=new_id)
    staff_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("staff.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    display_prefix: Mapped[str] = mapped_column(String(24))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: datetime
    staff: Staff


class InvalidCredentials(PermissionError):
    pass


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def issue_token(system_session: AsyncSession, *, email: str, password: str) -> IssuedToken:
    global _DUMMY_HASH
    address = (email or "").strip().lower()
    # PostgreSQL refuses NUL in text; such an address cannot exist, so it is just another wrong log-in.
    staff = None if "\x00" in address or len(address) > 254 else (await system_session.execute(
        select(Staff).where(Staff.email == address))).scalar_one_or_none()
    if staff is None:
        _DUMMY_HASH = _DUMMY_HASH or hash_password(secrets.token_urlsafe(16))
        verify_password(_DUMMY_HASH, password or "")
        raise InvalidCredentials()
    if not verify_password(staff.password_hash, password or "") or not staff.active:
        raise InvalidCredentials()
    now = clock.now()
    token = PREFIX + secrets.token_urlsafe(32)
    row = StaffToken(staff_id=staff.id, token_hash=_hash(token), display_prefix=token[:15], created_at=now,
                     expires_at=now + LIFETIME)
    system_session.add(row)
    await system_session.flush()
    await record(system_session, actor=Actor(type="staff", label=staff.email, id=str(staff.id)),
                 action="staff.token_issued", target_type="staff_token", target_id=row.id, tenant_id=None,
                 detail={"prefix": row.display_prefix})
    return IssuedToken(token, row.expires_at, staff)


async def staff_for_token(system_session: AsyncSession, token: str) -> Staff | None:
    if not token or not token.startswith(PREFIX) or len(token) > 100:
        return None
    row = (await system_session.execute(
        select(StaffToken, Staff).join(Staff, Staff.id == StaffToken.staff_id)
        .where(StaffToken.token_hash == _hash(token))
    )).first()
    if row is None or row.StaffToken.expires_at <= clock.now() or not row.Staff.active:
        return None
    return row.Staff

"""One-time password links: the token is e-mailed, only its hash is stored; single use. A reset link lasts
30 minutes; an invitation (a new user's first password, same page and token) a week."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime, timedelta

from sqlalchemy import ForeignKeyConstraint, String, UniqueConstraint, Uuid, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from backoffice.platform import clock
from backoffice.platform.audit.service import Actor, record
from backoffice.platform.db.base import Base, TenantOwned
from backoffice.platform.errors import FieldError, ValidationFailed
from backoffice.platform.outbox.service import add_to_outbox
from backoffice.platform.security.passwords import check_password_strength, hash_password
from backoffice.tenants.effects.models import Channel, OutboundMessage
from backoffice.tenants.effects.service import DELIVER_JOB
from backoffice.tenants.users.models import TenantUser
from backoffice.tenants.users.service import create_tenant_user

RESET_TTL = timedelta(minutes=30)
INVITATION_TTL = timedelta(days=7)


class PasswordReset(TenantOwned, Base):
    __tablename__ = "password_resets"
    __table_args__ = (
        UniqueConstraint("tenant_id", "token_hash"),
        ForeignKeyConstraint(["tenant_id", "user_id"], ["tenant_users.tenant_id", "tenant_users.id"]),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(Uuid())
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column()


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def request_password_reset(
    session: AsyncSession, *, email: str, link_for, tenant_name: str, acting: Actor
) -> PasswordReset | None:
    """E-mail a reset link to the active user with this e-mail, if there is one; None otherwise.

    The caller answers the same either way, so the form does not reveal who has an account.
    ``link_for(token)`` builds the absolute URL of the reset page.
    """
    normalized = (email or "").strip().lower()
    if "\x00" in normalized or len(normalized) > 254:  # cannot be anyone's address
        return None
    user = (await session.execute(
        select(TenantUser).where(TenantUser.email == normalized, TenantUser.active.is_(True))
    )).scalar_one_or_none()
    if user is None:
        return None
    reset = await _email_link(
        session, user, RESET_TTL, link_for, kind="password.reset", effect="password-reset",
        subject=f"{tenant_name}: redefinição de senha / password reset",
        text=lambda link: (f"Olá, {user.name}.\n\nPara definir uma nova senha, abra este link em até 30 minutos:\n"
                           f"{link}\n\nTo set a new password, open this link within 30 minutes:\n{link}\n\n"
                           "Se você não pediu, ignore esta mensagem. / If you did not ask, ignore this message."))
    await record(session, actor=acting, action="user.password_reset_requested", target_type="tenant_user",
                 target_id=user.id, tenant_id=user.tenant_id)
    return reset


async def _email_link(session: AsyncSession, user: TenantUser, ttl: timedelta, link_for, *, kind: str, effect: str,
                      subject: str, text) -> PasswordReset:
    """A one-time token for ``user`` (only its hash kept) and the e-mail carrying its link, through the outbox."""
    token = secrets.token_urlsafe(32)
    now = clock.now()
    reset = PasswordReset(user_id=user.id, token_hash=_hash(token), created_at=now, expires_at=now + ttl)
    session.add(reset)
    await session.flush()
    link = link_for(token)
    message = OutboundMessage(
        effect_key=f"{effect}:{reset.id}", channel=Channel.EMAIL, target=user.email, created_at=now,
        payload={"kind": kind, "to": user.email, "to_name": user.name, "subject": subject, "text": text(link)},
    )
    session.add(message)
    await session.flush()
    add_to_outbox(session, user.tenant_id, DELIVER_JOB, message_id=str(message.id))
    return reset


async def invite_user(session: AsyncSession, user: TenantUser, *, link_for, tenant_name: str,
                      acting: Actor) -> PasswordReset:
    """E-mail a new user (made without a password) the link to set one: the reset page and token, valid
    for a week. Inviting again sends a new link; the older ones stay valid until used or expired."""
    if user.password_hash is not None:
        raise ValidationFailed(FieldError("email", "this user has a password already; they can reset it"))
    days = INVITATION_TTL.days
    reset = await _email_link(
        session, user, INVITATION_TTL, link_for, kind="user.invitation", effect="invitation",
        subject=f"{tenant_name}: convite para o portal / portal invitation",
        text=lambda link: (f"Olá, {user.name}.\n\nVocê foi convidado(a) para o portal de {tenant_name}. Para "
                           f"definir sua senha, abra este link em até {days} dias:\n{link}\n\n"
                           f"You are invited to {tenant_name}'s portal. To set your password, open this link "
                           f"within {days} days:\n{link}"))
    await record(session, actor=acting, action="user.invited", target_type="tenant_user", target_id=user.id,
                 tenant_id=user.tenant_id, detail={"email": user.email, "expires_at": reset.expires_at.isoformat()})
    return reset


async def valid_reset(session: AsyncSession, token: str) -> PasswordReset | None:
    """The unused, unexpired reset for this token in the session's tenant, else None."""
    if "\x00" in (token or ""):
        return None
    reset = (await session.execute(
        select(PasswordReset).where(PasswordReset.token_hash == _hash(token or ""))
    )).scalar_one_or_none()
    if reset is None or reset.used_at is not None or reset.expires_at <= clock.now():
        return None
    return reset


async def reset_password(session: AsyncSession, *, token: str, password: str) -> TenantUser:
    """Set the new password and spend the token (and every other open token of the user)."""
    reset = await valid_reset(session, token)
    if reset is None:
        raise ValidationFailed(FieldError("token", "this link is invalid, expired or already used"))
    try:
        check_password_strength(password)
    except ValueError as error:
        raise ValidationFailed(FieldError("password", str(error))) from None
    now = clock.now()
    # Spend it with a guarded update so two concurrent uses cannot both succeed.
    spent = await session.execute(
        update(PasswordReset).where(PasswordReset.id == reset.id, PasswordReset.used_at.is_(None)).values(used_at=now)
    )
    if spent.rowcount != 1:
        raise ValidationFailed(FieldError("token", "this link is invalid, expired or already used"))
    await session.execute(update(PasswordReset).where(
        PasswordReset.user_id == reset.user_id, PasswordReset.used_at.is_(None)).values(used_at=now))
    user = (await session.execute(select(TenantUser).where(TenantUser.id == reset.user_id))).scalar_one()
    user.password_hash = hash_password(password)
    await session.flush()
    await record(session, actor=Actor(type="tenant_user", label=user.email, id=str(user.id)),
                 action="user.password_reset", target_type="tenant_user", target_id=user.id, tenant_id=user.tenant_id)
    return user


async def invite_new_user(session: AsyncSession, *, email: str, name: str, role: str, link_for, tenant_name: str,
                          acting: Actor) -> TenantUser:
    """A new user of the session's tenant, with no password yet, e-mailed the link to set one (the first
    tenant admin, when the provider onboards a company)."""
    user = await create_tenant_user(session, email=email, name=name, role=role, password=None, acting=acting)
    await invite_user(session, user, link_for=link_for, tenant_name=tenant_name, acting=acting)
    return user

"""The staff console's sign-in: password, then a second factor (TOTP, or a single-use recovery code).

- The TOTP secret is stored encrypted (``platform/security/secrets.py``) and is
  enrolled at the first sign-in: the console shows it as a QR code and as text, and keeps it only once the
  staff member has typed a code it generates.
- A code is accepted for the current 30-second step and one step either side (clock drift), and only for
  a step later than the last one accepted: ``last_step`` moves forward with a conditional UPDATE, so a code
  seen over a shoulder (or sent twice by two tabs) cannot be used again, even by concurrent requests.
- Ten recovery codes are made at enrolment, shown once and stored as SHA-256 (80 random bits each: a hash
  is enough, as for API keys); each one works once.
Every sign-in, failure and enrolment is an audit entry (tenant-less, actor the staff member).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets as pysecrets
import uuid
from dataclasses import dataclass
from datetime import datetime

import pyotp
import segno
from sqlalchemy import ForeignKey, String, Uuid, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from backoffice.platform import clock
from backoffice.platform.audit.service import Actor, record
from backoffice.platform.db.base import Base, PlatformOwned, new_id, utcnow
from backoffice.platform.ratelimit import AttemptLimits
from backoffice.platform.security import secrets
from backoffice.platform.security.passwords import hash_password, verify_password
from backoffice.platform.settings import Settings
from backoffice.tenants.staff.models import Staff

log = logging.getLogger(__name__)
ISSUER = "Backoffice"
RECOVERY_CODES = 10
STEP_WINDOW = 1  # steps accepted either side of the current one
_DUMMY_HASH: str | None = None


class StaffSecondFactor(PlatformOwned, Base):
    __tablename__ = "staff_second_factors"

    staff_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("staff.id"), primary_key=True)
    secret_encrypted: Mapped[str] = mapped_column(String(500))
    last_step: Mapped[int] = mapped_column(default=0)
    enrolled_at: Mapped[datetime] = mapped_column(default=utcnow)


class StaffRecoveryCode(PlatformOwned, Base):
    __tablename__ = "staff_recovery_codes"

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, default=new_id)
    staff_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("staff.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column()


class WrongCredentials(PermissionError):
    """E-mail, password or code not right (the same answer whichever it was)."""


def staff_actor(staff: Staff) -> Actor:
    return Actor(type="staff", label=staff.email, id=str(staff.id))


# --- first factor -----------------------------------------------------------------------------------

async def check_password(session: AsyncSession, *, email: str, password: str, address: str) -> Staff:
    """The active staff member with this e-mail and password; a failure is audited and costs the same
    argon2 work whether or not the e-mail is known."""
    global _DUMMY_HASH
    address_value = (email or "").strip().lower()
    plausible = "\x00" not in address_value and len(address_value) <= 254
    staff = (await session.execute(select(Staff).where(Staff.email == address_value))).scalar_one_or_none() \
        if plausible else None
    if staff is None:
        _DUMMY_HASH = _DUMMY_HASH or hash_password(pysecrets.token_urlsafe(16))
        verify_password(_DUMMY_HASH, password or "")
    elif verify_password(staff.password_hash, password or "") and staff.active:
        return staff
    await record(session, actor=Actor(type="anonymous", label=f"staff console ({address})"),
                 action="staff.sign_in_failed", target_type="staff", target_id=staff.id if staff else None,
                 tenant_id=None, detail={"email": address_value[:254] if plausible else "", "step": "password"})
    raise WrongCredentials()


# --- TOTP -------------------------------------------------------------------------------------------

def new_totp_secret() -> str:
    return pyotp.random_base32()


def seal_pending_secret(secret: str, settings: Settings) -> str:
    """The secret being enrolled, encrypted for the pending session (where it waits for the first code)."""
    return secrets.encrypt(secret, settings)


def open_pending_secret(sealed: str, settings: Settings) -> str:
    return secrets.decrypt(sealed, settings)


def provisioning_uri(secret: str, email: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)


def qr_svg(uri: str) -> str:
    """The QR code as an inline ``<svg>`` element (no JavaScript, no image request)."""
    return segno.make(uri, error="m").svg_inline(scale=5, border=2, dark="#0f172a", light="#ffffff")


def _matching_step(secret: str, code: str, after: int) -> int | None:
    """The step (later than ``after``) in the accepted window whose code is ``code``."""
    code = (code or "").strip().replace(" ", "")
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    now = totp.timecode(clock.now())
    for step in range(now - STEP_WINDOW, now + STEP_WINDOW + 1):
        if step > after and hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


async def has_second_factor(session: AsyncSession, staff_id: uuid.UUID) -> bool:
    return await session.get(StaffSecondFactor, staff_id) is not None


def _hash_code(code: str) -> str:
    return hashlib.sha256(code.strip().replace("-", "").replace(" ", "").lower().encode()).hexdigest()


def _new_recovery_code() -> str:
    raw = pysecrets.token_hex(10)  # 80 bits
    return "-".join(raw[i:i + 5] for i in range(0, 20, 5))


@dataclass(frozen=True)
class Enrolled:
    recovery_codes: list[str]


async def enrol_totp(session: AsyncSession, *, staff: Staff, secret: str, code: str, settings: Settings,
                     address: str) -> Enrolled:
    """Keep ``secret`` as the staff member's second factor once ``code`` proves their app has it; make the
    recovery codes (returned in clear this once). Refused when a factor is already enrolled."""
    step = _matching_step(secret, code, after=0)
    if step is None or await has_second_factor(session, staff.id):
        await record(session, actor=staff_actor(staff), action="staff.totp_enrolment_failed", target_type="staff",
                     target_id=staff.id, tenant_id=None, detail={"address": address})
        raise WrongCredentials()
    session.add(StaffSecondFactor(staff_id=staff.id, secret_encrypted=secrets.encrypt(secret, settings),
                                  last_step=step, enrolled_at=clock.now()))
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODES)]
    session.add_all([StaffRecoveryCode(staff_id=staff.id, code_hash=_hash_code(c)) for c in codes])
    await session.flush()
    await record(session, actor=staff_actor(staff), action="staff.totp_enrolled", target_type="staff",
                 target_id=staff.id, tenant_id=None, detail={"address": address, "recovery_codes": len(codes)})
    return Enrolled(codes)


async def check_second_factor(session: AsyncSession, *, staff: Staff, code: str, settings: Settings,
                              address: str) -> str:
    """``"totp"`` or ``"recovery"`` when ``code`` is a fresh TOTP code or an unused recovery code (which is
    then spent); otherwise the failure is audited and WrongCredentials raised."""
    factor = await session.get(StaffSecondFactor, staff.id)
    method = None
    if factor is not None:
        try:
            secret = secrets.decrypt(factor.secret_encrypted, settings)
        except secrets.SecretUnreadable:
            # Its key was retired before `backoffice secrets rotate` re-encrypted it: the recovery codes still
            # work; the log says what to do.
            log.error("the TOTP secret of staff %s is unreadable: keep its key in BACKOFFICE_SECRETS_KEYS and "
                      "run `backoffice secrets rotate`", staff.id)
            secret = None
        step = _matching_step(secret, code, after=factor.last_step) if secret else None
        if step is not None:
            moved = await session.execute(
                update(StaffSecondFactor).where(StaffSecondFactor.staff_id == staff.id,
                                                StaffSecondFactor.last_step < step)
                .values(last_step=step).execution_options(synchronize_session=False))
            method = "totp" if moved.rowcount == 1 else None
        elif len(code or "") <= 64:
            spent = await session.execute(
                update(StaffRecoveryCode).where(StaffRecoveryCode.staff_id == staff.id,
                                                StaffRecoveryCode.code_hash == _hash_code(code or ""),
                                                StaffRecoveryCode.used_at.is_(None))
                .values(used_at=clock.now()).execution_options(synchronize_session=False))
            method = "recovery" if spent.rowcount == 1 else None
    if method is None:
        await record(session, actor=staff_actor(staff), action="staff.sign_in_failed", target_type="staff",
                     target_id=staff.id, tenant_id=None, detail={"address": address, "step": "second_factor"})
        raise WrongCredentials()
    return method


async def record_sign_in(session: AsyncSession, *, staff: Staff, method: str, address: str) -> None:
    await record(session, actor=staff_actor(staff), action="staff.signed_in", target_type="staff",
                 target_id=staff.id, tenant_id=None, detail={"method": method, "address": address})


async def record_sign_in_refused(session: AsyncSession, *, email: str, step: str, reason: str, address: str) -> None:
    """A sign-in refused before any staff member was known (single sign-on naming no active member)."""
    await record(session, actor=Actor(type="anonymous", label=f"staff console ({address})"),
                 action="staff.sign_in_failed", target_type="staff", target_id=None, tenant_id=None,
                 detail={"email": email[:254], "step": step, "reason": reason})


async def active_staff(session: AsyncSession, staff_id: uuid.UUID) -> Staff | None:
    """The staff member behind a console session, if still active (a deactivated one is signed out)."""
    return (await session.execute(select(Staff).where(Staff.id == staff_id, Staff.active.is_(True)))
            ).scalar_one_or_none()


async def active_staff_by_email(session: AsyncSession, email: str) -> Staff | None:
    value = (email or "").strip().lower()
    if not value or "\x00" in value or len(value) > 254:
        return None
    return (await session.execute(select(Staff).where(Staff.email == value, Staff.active.is_(True)))
            ).scalar_one_or_none()


# Every staff TOTP secret, for ``secrets.rotate_all`` (``backoffice secrets rotate``).
SECRET_COLUMN = secrets.SecretColumn("staff TOTP secrets", StaffSecondFactor.__table__, "secret_encrypted",
                                     lambda row, one: one(row["secret_encrypted"]), key=("staff_id",))


# Second-factor guesses: 6 digits are a million codes, three of which are valid at any time; five tries per
# account in 15 minutes keeps a guesser's odds near 1 in 65,000 per window (the address gets more: an office).
SECOND_FACTOR_LIMITS = AttemptLimits(per_account=5, per_address=30, window=15 * 60)

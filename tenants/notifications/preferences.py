"""A front-office person's notification preferences, on top of the tenant's policy.

The policy says, per kind, on which channels the responsible people are told (``policy.channels``). A
person may replace that, per kind, with their own choice among the channels that reach *them*: the
portal inbox and e-mail (the team chat is the team's, not a person's, and stays as the policy says). A
kind they never chose follows the policy, so a later policy change still reaches them. They may also ask
for a daily digest: one e-mail each morning with the previous day's notifications (``digest.py``), in the
language they pick.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform import clock
from backoffice.platform.audit.service import Actor, record
from backoffice.platform.errors import FieldError, ValidationFailed
from backoffice.tenants.notifications import queries
from backoffice.tenants.notifications.models import NotificationPreference
from backoffice.tenants.policies.schemas import LOCALES, NOTIFICATION_KINDS

PERSONAL_CHANNELS: tuple[str, ...] = ("portal", "email")


def channels_for(kind: str, policy_channels: list[str], preference: NotificationPreference | None) -> list[str]:
    """The personal channels ``kind`` reaches this person on: their own choice for the kind if they made
    one, else the policy's."""
    chosen = (preference.channels or {}).get(kind) if preference is not None else None
    source = policy_channels if chosen is None else chosen
    return [channel for channel in source if channel in PERSONAL_CHANNELS]


@dataclass(frozen=True)
class Choice:
    """What the preferences page shows for one kind: the channels in force, and whether they are the policy's."""

    kind: str
    channels: tuple[str, ...]
    policy: tuple[str, ...]
    own: bool


def choices(policy_channels: dict[str, list[str]], preference: NotificationPreference | None) -> list[Choice]:
    own = (preference.channels or {}) if preference is not None else {}
    result = []
    for kind in NOTIFICATION_KINDS:
        policy = tuple(c for c in policy_channels.get(kind, ["portal"]) if c in PERSONAL_CHANNELS)
        mine = own.get(kind)
        result.append(Choice(kind, tuple(mine) if mine is not None else policy, policy, mine is not None))
    return result


async def save_preferences(session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID, *, channels: dict[str, list[str]],
                           policy_channels: dict[str, list[str]], digest: bool, locale: str | None,
                           acting: Actor) -> NotificationPreference:
    """Keep the person's choices. A kind whose channels equal the policy's is stored as "follow the
    policy" (not as a copy), so a later policy change still reaches them. Audited."""
    problems = []
    for kind, wanted in channels.items():
        if kind not in NOTIFICATION_KINDS:
            problems.append(FieldError(f"channels.{kind}", "unknown notification kind"))
        for channel in wanted:
            if channel not in PERSONAL_CHANNELS:
                problems.append(FieldError(f"channels.{kind}", f"unknown channel {channel!r}: portal or email"))
    if locale is not None and locale not in LOCALES:
        problems.append(FieldError("locale", f"expected one of {', '.join(LOCALES)}"))
    if problems:
        raise ValidationFailed(problems)
    own: dict[str, list[str]] = {}
    for kind in NOTIFICATION_KINDS:
        wanted = sorted(set(channels.get(kind, [])), key=PERSONAL_CHANNELS.index)
        policy = [c for c in policy_channels.get(kind, ["portal"]) if c in PERSONAL_CHANNELS]
        if wanted != policy:
            own[kind] = wanted
    preference = await queries.preference_of(session, user_id)
    if preference is None:
        preference = NotificationPreference(user_id=user_id)
        session.add(preference)
    before = {"channels": dict(preference.channels or {}), "digest": bool(preference.digest),
              "locale": preference.locale}
    preference.channels = own
    preference.digest = digest
    preference.locale = locale
    preference.updated_at = clock.now()
    await session.flush()
    await record(session, actor=acting, action="notification_preferences.saved", target_type="tenant_user",
                 target_id=user_id, tenant_id=tenant_id, detail={"before": before, "after": {"channels": own, "digest": digest,
                                                                        "locale": locale}})
    return preference

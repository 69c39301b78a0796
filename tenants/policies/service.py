"""Reading and changing a tenant's versioned policy.

Each change writes a new :class:`PolicyVersion` holding the whole configuration, never an edit in
place: a dunning case records the version it opened with and keeps running on it (:func:`policy_at`),
so a change applies to new cases only, and the history says who changed what, when and why.
Every function works on the session's tenant (the tenant-scoped session filters and stamps the rows).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform.audit.service import Actor, record
from backoffice.platform.db.session import TENANT_KEY, NotFound
from backoffice.platform.errors import Conflict, FieldError, ValidationFailed
from backoffice.tenants.policies.models import PolicyVersion
from backoffice.tenants.policies.schemas import LOCALES, TEMPLATE_KINDS, PolicyConfig, TemplateOverride, field_errors
from backoffice.tenants.policies.templates import (
    Rendered, render, sample_context, validate_override, validate_overrides,
)
from backoffice.tenants.users.models import TenantUser

REASON_MAX = 500  # policy_versions.reason


async def current_policy(session: AsyncSession) -> tuple[int, PolicyConfig]:
    """The tenant's latest version, or (0, defaults) when it never saved one."""
    row = await _latest(session)
    if row is None:
        return 0, PolicyConfig()
    return row.version, PolicyConfig.model_validate(row.config)


async def policy_at(session: AsyncSession, version: int) -> PolicyConfig:
    """The configuration a case opened with; version 0 is the defaults. NotFound for a version never saved."""
    if version == 0:
        return PolicyConfig()
    row = (await session.execute(select(PolicyVersion).where(PolicyVersion.version == version))).scalar_one_or_none()
    if row is None:
        raise NotFound(PolicyVersion, version)
    return PolicyConfig.model_validate(row.config)


async def policy_history(session: AsyncSession) -> list[PolicyVersion]:
    """Every saved version, newest first."""
    return list((await session.execute(select(PolicyVersion).order_by(PolicyVersion.version.desc()))).scalars())


async def update_policy(
    session: AsyncSession, *, changes: dict[str, Any], acting: Actor, reason: str | None
) -> tuple[int, PolicyConfig]:
    """Save a new version with ``changes`` merged in (top-level keys replace) and audit it.

    Every problem is reported at once, named by its path, and nothing is written. A change that
    changes nothing saves nothing and returns the current version. Two concurrent changes cannot both
    become version N+1: the loser gets a Conflict and may reload and retry.
    """
    if not isinstance(changes, dict):
        raise ValidationFailed(FieldError("policy", "expected an object of settings to change"))
    version, current = await current_policy(session)
    before = current.model_dump(mode="json")
    config = await _validated(session, {**before, **changes}, _clean_reason(reason))
    after = config.model_dump(mode="json")
    changed = [key for key in after if after[key] != before[key]]
    if not changed:
        return version, current

    row = PolicyVersion(
        version=version + 1, config=after, created_by=acting.label[:254], reason=_clean_reason(reason)
    )
    try:
        # A savepoint, so a lost race leaves the caller's transaction usable.
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError:
        raise Conflict(FieldError(
            "policy", "the policy was changed by someone else at the same time; reload it and try again"
        )) from None
    await record(
        session,
        actor=acting,
        action="policy.updated",
        target_type="policy",
        target_id=row.id,
        tenant_id=row.tenant_id,
        reason=row.reason,
        detail=_audit_detail(row.version, changed, before, after),
    )
    return row.version, config


async def _latest(session: AsyncSession) -> PolicyVersion | None:
    query = select(PolicyVersion).order_by(PolicyVersion.version.desc()).limit(1)
    return (await session.execute(query)).scalar_one_or_none()


def _clean_reason(reason: str | None) -> str | None:
    return (reason or "").strip() or None


async def _validated(session: AsyncSession, merged: dict[str, Any], reason: str | None) -> PolicyConfig:
    problems: list[FieldError] = []
    if reason is not None and len(reason) > REASON_MAX:
        problems.append(FieldError("reason", f"expected at most {REASON_MAX} characters"))
    try:
        config = PolicyConfig.model_validate(merged)
    except ValidationError as error:
        raise ValidationFailed(problems + field_errors(error)) from None
    # Validation trial-renders every template: in a worker thread, never on the event loop (a slow
    # template would stall every request this process serves). The sandbox bounds the thread's time.
    problems += await asyncio.to_thread(validate_overrides, config.templates)
    problems += await _unknown_users(session, config)
    if problems:
        raise ValidationFailed(problems)
    return config


async def _unknown_users(session: AsyncSession, config: PolicyConfig) -> list[FieldError]:
    """Recipients must be active users of this tenant; another tenant's user is as unknown as a missing one."""
    wanted: list[tuple[str, uuid.UUID]] = [
        (f"notify.team_user_ids.{index}", user_id) for index, user_id in enumerate(config.notify.team_user_ids)
    ]
    if config.notify.fallback_user_id is not None:
        wanted.append(("notify.fallback_user_id", config.notify.fallback_user_id))
    if not wanted:
        return []
    if session.info.get(TENANT_KEY) is None:
        raise RuntimeError("policies are read and written through a tenant session")
    found = await _active_user_ids(session, (user_id for _, user_id in wanted))
    return [FieldError(path, "no active user with this id in this company") for path, user_id in wanted
            if user_id not in found]


async def _active_user_ids(session: AsyncSession, ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    query = select(TenantUser.id).where(TenantUser.id.in_(set(ids)), TenantUser.active.is_(True))
    return set((await session.execute(query)).scalars())


def _audit_detail(version: int, changed: list[str], before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    # Scalars are small and tell the story ("grace_days 5 -> 10"); lists and nested settings are named
    # only, and the full configurations stay in the two policy versions.
    scalar = (str, int, float, bool, type(None))
    values = {
        key: {"old": before[key], "new": after[key]}
        for key in changed
        if isinstance(before[key], scalar) and isinstance(after[key], scalar)
    }
    return {"version": version, "changed": changed, "values": values}


def _preview(kind: str, locale: str, title: str, body: str, tenant: dict[str, Any] | None):
    override = {"title": title, "body": body}
    try:
        TemplateOverride.model_validate(override)
    except ValidationError as error:
        return None, [FieldError(f"templates.{kind}.{locale}.{e.field}", e.message) for e in field_errors(error)]
    problems = validate_override(kind, locale, override)
    if problems:
        return None, problems
    context = sample_context(kind)
    if tenant:
        context["tenant"] = {**context["tenant"], **tenant}
    return render(kind, locale, context, {kind: {locale: override}}), []


async def preview_template(kind: str, locale: str, *, title: str, body: str,
                           tenant: dict[str, Any] | None = None) -> tuple[Rendered | None, list[FieldError]]:
    """A template as it would read, rendered with the sample case of its kind (``defaults/samples.json``),
    the company's name and time zone in place of the sample's; or the problems that would refuse it when
    saved, named by path. Checked and rendered in a worker thread, as saving does: the sandbox bounds it."""
    if kind not in TEMPLATE_KINDS:
        return None, [FieldError("kind", f"expected one of {', '.join(TEMPLATE_KINDS)}")]
    if locale not in LOCALES:
        return None, [FieldError("locale", f"expected one of {', '.join(LOCALES)}")]
    return await asyncio.to_thread(_preview, kind, locale, title or "", body or "", tenant)

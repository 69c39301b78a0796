"""Managing a tenant's webhook endpoints and their delivery log: each change an audited action.

Secrets are shown once (on creation and rotation) and stored encrypted. The delivery machinery lives in
``port.py`` (fan-out of an outbound message into deliveries) and ``jobs.py`` (sending, retries).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.platform import clock
from backoffice.platform.db.base import new_id
from backoffice.platform.audit.service import Actor, record
from backoffice.platform.db.session import NotFound, get_owned
from backoffice.platform.errors import Collector, ValidationFailed, FieldError
from backoffice.platform.outbox.service import add_to_outbox
from backoffice.platform.security import secrets as vault
from backoffice.platform.security.outbound import TargetRefused, check_target, check_url_shape
from backoffice.platform.security.standard_webhooks import new_secret
from backoffice.platform.settings import Settings, get_settings
from backoffice.tenants.events.catalogue import EVENT_TYPES
from backoffice.tenants.notifications.models import Notification
from backoffice.tenants.users.models import TenantRole, TenantUser
from backoffice.tenants.webhooks.models import WebhookDelivery, WebhookDeliveryStatus, WebhookEndpoint

DELIVER_JOB = "webhooks.deliver"
TEST_EVENT = "webhook.test"
MAX_ENDPOINTS = 20
MAX_OVERLAP_HOURS = 24 * 7


# --- validation -----------------------------------------------------------------------------------

async def _valid_url(errors: Collector, url: str, settings: Settings) -> str | None:
    url = (url or "").strip()
    if len(url) > 2000:
        errors.add("url", "at most 2000 characters")
        return None
    try:
        check_url_shape(url, require_https=not settings.allow_private_targets)
        # Refused at save as well as at send time (DNS may change in between).
        await check_target(url, settings)
    except TargetRefused as error:
        errors.add("url", str(error))
        return None
    return url


def _valid_event_types(errors: Collector, event_types: list[str] | None) -> list[str]:
    if event_types is None:
        return []
    if not isinstance(event_types, list) or not all(isinstance(t, str) for t in event_types):
        errors.add("event_types", "expected a list of event types")
        return []
    unknown = sorted(set(event_types) - set(EVENT_TYPES))
    if unknown:
        errors.add("event_types", f"unknown event types: {', '.join(unknown)}; expected some of {', '.join(EVENT_TYPES)}")
    return sorted(set(event_types))


def _valid_description(errors: Collector, description: str | None) -> str:
    description = (description or "").strip()
    if len(description) > 500:
        errors.add("description", "at most 500 characters")
    return description


# --- secrets --------------------------------------------------------------------------------------

def _secret_entry(plaintext: str, now: datetime, settings: Settings) -> dict[str, Any]:
    return {"secret": vault.encrypt(plaintext, settings), "created_at": now.isoformat(), "expires_at": None}


def live_secrets(endpoint: WebhookEndpoint, now: datetime | None = None, settings: Settings | None = None
                 ) -> list[str]:
    """Every secret a message is signed with now (more than one during a rotation's overlap)."""
    now = now or clock.now()
    return [vault.decrypt(entry["secret"], settings) for entry in endpoint.secrets
            if entry.get("expires_at") is None or datetime.fromisoformat(entry["expires_at"]) > now]


# --- endpoints ------------------------------------------------------------------------------------

async def get_endpoint(session: AsyncSession, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    return await get_owned(session, WebhookEndpoint, endpoint_id)


def endpoints_query() -> Select:
    """The session's tenant's endpoints, for a paginated list (the caller adds the order)."""
    return select(WebhookEndpoint)


async def list_endpoints(session: AsyncSession) -> list[WebhookEndpoint]:
    query = endpoints_query().order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
    return list((await session.execute(query)).scalars())


async def create_endpoint(
    session: AsyncSession, *, url: str, event_types: list[str] | None = None, description: str | None = None,
    acting: Actor, settings: Settings | None = None,
) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint; returns it and its signing secret (shown this once)."""
    settings = settings or get_settings()
    errors = Collector()
    url = await _valid_url(errors, url, settings)
    types = _valid_event_types(errors, event_types)
    description = _valid_description(errors, description)
    if len(await list_endpoints(session)) >= MAX_ENDPOINTS:
        errors.add("url", f"at most {MAX_ENDPOINTS} endpoints per company")
    errors.raise_if_any()
    now = clock.now()
    secret = new_secret()
    endpoint = WebhookEndpoint(url=url, event_types=types, description=description, enabled=True,
                               secrets=[_secret_entry(secret, now, settings)], created_at=now, updated_at=now)
    session.add(endpoint)
    await session.flush()
    await _audit(session, endpoint, acting, "webhook_endpoint.created",
                 detail={"url": url, "event_types": types})
    return endpoint, secret


async def update_endpoint(
    session: AsyncSession, endpoint_id: uuid.UUID, *, url: str | None = None, event_types: list[str] | None = None,
    description: str | None = None, acting: Actor, settings: Settings | None = None,
) -> WebhookEndpoint:
    """Change what is given (None keeps the current value; ``event_types=[]`` means every type)."""
    endpoint = await get_endpoint(session, endpoint_id)
    settings = settings or get_settings()
    errors = Collector()
    changes: dict[str, Any] = {}
    if url is not None:
        checked = await _valid_url(errors, url, settings)
        if checked is not None and checked != endpoint.url:
            changes["url"] = checked
    if event_types is not None:
        types = _valid_event_types(errors, event_types)
        if types != endpoint.event_types:
            changes["event_types"] = types
    if description is not None:
        text = _valid_description(errors, description)
        if text != endpoint.description:
            changes["description"] = text
    errors.raise_if_any()
    if changes:
        before = {name: getattr(endpoint, name) for name in changes}
        for name, value in changes.items():
            setattr(endpoint, name, value)
        endpoint.updated_at = clock.now()
        await _audit(session, endpoint, acting, "webhook_endpoint.updated", detail={"before": before, "after": changes})
    return endpoint


async def disable_endpoint(
    session: AsyncSession, endpoint_id: uuid.UUID, *, reason: str, acting: Actor,
) -> WebhookEndpoint:
    endpoint = await get_endpoint(session, endpoint_id)
    if not (reason or "").strip():
        raise ValidationFailed(FieldError("reason", "say why the endpoint is disabled"))
    if endpoint.enabled:
        _disable(endpoint, reason.strip()[:500])
        await _audit(session, endpoint, acting, "webhook_endpoint.disabled", reason=endpoint.disabled_reason)
    return endpoint


async def enable_endpoint(session: AsyncSession, endpoint_id: uuid.UUID, *, acting: Actor) -> WebhookEndpoint:
    """Enable again; the failure streak starts over (dead deliveries can then be replayed)."""
    endpoint = await get_endpoint(session, endpoint_id)
    if not endpoint.enabled:
        endpoint.enabled = True
        endpoint.disabled_reason = None
        endpoint.disabled_at = None
        endpoint.consecutive_failures = 0
        endpoint.consecutive_dead = 0
        endpoint.first_failure_at = None
        endpoint.updated_at = clock.now()
        await _audit(session, endpoint, acting, "webhook_endpoint.enabled")
    return endpoint


async def rotate_secret(
    session: AsyncSession, endpoint_id: uuid.UUID, *, overlap_hours: float = 24, acting: Actor,
    settings: Settings | None = None,
) -> str:
    """A new secret, returned once; the current ones keep signing for ``overlap_hours`` so the receiver
    can switch without losing a message."""
    if not 0 <= overlap_hours <= MAX_OVERLAP_HOURS:
        raise ValidationFailed(FieldError("overlap_hours", f"expected 0 to {MAX_OVERLAP_HOURS} hours"))
    endpoint = await get_endpoint(session, endpoint_id)
    now = clock.now()
    expires = (now + timedelta(hours=overlap_hours)).isoformat()
    kept = []
    for entry in endpoint.secrets:
        if entry.get("expires_at") is not None and datetime.fromisoformat(entry["expires_at"]) <= now:
            continue  # already out of its overlap: dropped
        kept.append({**entry, "expires_at": entry.get("expires_at") or expires})
    secret = new_secret()
    endpoint.secrets = [*kept, _secret_entry(secret, now, settings or get_settings())]
    endpoint.updated_at = now
    await _audit(session, endpoint, acting, "webhook_endpoint.secret_rotated",
                 detail={"overlap_hours": overlap_hours, "previous_expire_at": expires})
    return secret


# --- what screens and the API show (never a secret) ----------------------------------------------

def describe_endpoint(endpoint: WebhookEndpoint, now: datetime | None = None) -> dict[str, Any]:
    now = now or clock.now()
    live = [entry for entry in endpoint.secrets
            if entry.get("expires_at") is None or datetime.fromisoformat(entry["expires_at"]) > now]
    return {
        "id": str(endpoint.id), "url": endpoint.url, "description": endpoint.description,
        "event_types": list(endpoint.event_types), "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "disabled_at": endpoint.disabled_at.isoformat() if endpoint.disabled_at else None,
        "secrets": [{"created_at": e["created_at"], "expires_at": e.get("expires_at")} for e in live],
        "consecutive_failures": endpoint.consecutive_failures,
        "failing_since": endpoint.first_failure_at.isoformat() if endpoint.first_failure_at else None,
        "created_at": endpoint.created_at.isoformat(),
    }


def describe_delivery(delivery: WebhookDelivery) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": str(delivery.id), "endpoint_id": str(delivery.endpoint_id), "webhook_id": delivery.message_id,
        "event_type": delivery.event_type, "status": delivery.status.value, "attempts": delivery.attempts,
        "replays": delivery.replays, "last_status_code": delivery.last_status_code,
        "response_snippet": delivery.response_snippet, "last_error": delivery.last_error,
        "next_attempt_at": iso(delivery.next_attempt_at), "created_at": iso(delivery.created_at),
        "last_attempt_at": iso(delivery.last_attempt_at), "delivered_at": iso(delivery.delivered_at),
    }


# --- deliveries -----------------------------------------------------------------------------------

def new_delivery(
    session: AsyncSession, endpoint: WebhookEndpoint, *, message_id: str, event_type: str, payload: dict[str, Any],
    outbound_message_id: uuid.UUID | None = None,
) -> WebhookDelivery:
    """A delivery and the outbox entry that sends it after this transaction commits."""
    now = clock.now()
    delivery = WebhookDelivery(
        tenant_id=endpoint.tenant_id, id=new_id(), endpoint_id=endpoint.id, message_id=message_id, event_type=event_type,
        payload=payload, outbound_message_id=outbound_message_id, status=WebhookDeliveryStatus.PENDING,
        attempts=0, replays=0, created_at=now, next_attempt_at=now,
    )
    session.add(delivery)
    return delivery


async def schedule(session: AsyncSession, delivery: WebhookDelivery, at: datetime | None = None) -> None:
    entry = add_to_outbox(session, delivery.tenant_id, DELIVER_JOB, delivery_id=str(delivery.id))
    if at is not None:
        entry.available_at = at


async def send_test(session: AsyncSession, endpoint_id: uuid.UUID, *, acting: Actor) -> WebhookDelivery:
    """A ``webhook.test`` message to one endpoint, whatever its filter, to check the receiver."""
    endpoint = await get_endpoint(session, endpoint_id)
    now = clock.now()
    message_id = f"test_{uuid.uuid4().hex}"
    delivery = new_delivery(session, endpoint, message_id=message_id, event_type=TEST_EVENT, payload={
        "type": TEST_EVENT, "event_id": message_id, "occurred_at": now.isoformat(),
        "data": {"endpoint_id": str(endpoint.id)}})
    await schedule(session, delivery)
    await _audit(session, endpoint, acting, "webhook_endpoint.test_sent", detail={"message_id": message_id})
    return delivery


async def get_delivery(session: AsyncSession, delivery_id: uuid.UUID) -> WebhookDelivery:
    return await get_owned(session, WebhookDelivery, delivery_id)


async def replay_delivery(session: AsyncSession, delivery_id: uuid.UUID, *, acting: Actor) -> WebhookDelivery:
    """Send again now with a fresh schedule (same webhook-id, so a receiver that has it can drop it)."""
    delivery = await get_delivery(session, delivery_id)
    endpoint = await get_endpoint(session, delivery.endpoint_id)
    _refuse_disabled(endpoint)
    await _replay(session, delivery)
    await _audit(session, endpoint, acting, "webhook_delivery.replayed",
                 detail={"delivery_id": str(delivery.id), "message_id": delivery.message_id})
    return delivery


async def replay_message(session: AsyncSession, message_id: str, *, acting: Actor) -> list[WebhookDelivery]:
    """Replay one message (one ``webhook-id``) to every enabled endpoint it was delivered to."""
    deliveries = list((await session.execute(
        select(WebhookDelivery).where(WebhookDelivery.message_id == message_id).order_by(WebhookDelivery.created_at)
    )).scalars())
    if not deliveries:
        raise NotFound(WebhookDelivery, message_id)
    replayed = []
    for delivery in deliveries:
        endpoint = await get_endpoint(session, delivery.endpoint_id)
        if endpoint.enabled:
            await _replay(session, delivery)
            await _audit(session, endpoint, acting, "webhook_delivery.replayed",
                         detail={"delivery_id": str(delivery.id), "message_id": message_id})
            replayed.append(delivery)
    return replayed


async def replay_window(
    session: AsyncSession, endpoint_id: uuid.UUID, *, since: datetime, until: datetime, acting: Actor,
    only_failed: bool = True,
) -> list[WebhookDelivery]:
    """Replay the endpoint's deliveries created in [since, until): by default the dead and failed ones,
    e.g. after the receiver's outage is fixed."""
    if since.tzinfo is None or until.tzinfo is None or since >= until:
        raise ValidationFailed(FieldError("since", "expected an aware datetime before until"))
    endpoint = await get_endpoint(session, endpoint_id)
    _refuse_disabled(endpoint)
    query = select(WebhookDelivery).where(
        WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.created_at >= since,
        WebhookDelivery.created_at < until)
    if only_failed:
        query = query.where(WebhookDelivery.status.in_([WebhookDeliveryStatus.DEAD, WebhookDeliveryStatus.FAILED]))
    deliveries = list((await session.execute(query.order_by(WebhookDelivery.created_at))).scalars())
    for delivery in deliveries:
        await _replay(session, delivery)
    await _audit(session, endpoint, acting, "webhook_endpoint.window_replayed", detail={
        "since": since.isoformat(), "until": until.isoformat(), "deliveries": len(deliveries)})
    return deliveries


async def requeue(session: AsyncSession, delivery: WebhookDelivery) -> None:
    """Send again with a fresh schedule, for a replay that audits itself (``tenants/deadletters``); the caller
    has checked the endpoint is enabled."""
    await _replay(session, delivery)


async def _replay(session: AsyncSession, delivery: WebhookDelivery) -> None:
    now = clock.now()
    delivery.status = WebhookDeliveryStatus.PENDING
    delivery.attempts = 0
    delivery.replays += 1
    delivery.next_attempt_at = now
    delivery.last_error = None
    await schedule(session, delivery)


def _refuse_disabled(endpoint: WebhookEndpoint) -> None:
    if not endpoint.enabled:
        raise ValidationFailed(FieldError("endpoint", "the endpoint is disabled; enable it before replaying"))


# --- failure bookkeeping (used by the delivery job) -----------------------------------------------

def _disable(endpoint: WebhookEndpoint, reason: str) -> None:
    now = clock.now()
    endpoint.enabled = False
    endpoint.disabled_reason = reason
    endpoint.disabled_at = now
    endpoint.updated_at = now


async def disable_for_failure(session: AsyncSession, endpoint: WebhookEndpoint, reason: str) -> None:
    """The platform disables the endpoint and tells the company's admins in the portal."""
    if not endpoint.enabled:
        return
    _disable(endpoint, reason[:500])
    await _audit(session, endpoint, Actor.system("webhooks"), "webhook_endpoint.disabled", reason=reason[:500])
    admins = (await session.execute(select(TenantUser).where(
        TenantUser.role == TenantRole.ADMIN, TenantUser.active.is_(True)))).scalars().all()
    stamp = endpoint.disabled_at.isoformat()
    for admin in admins:
        session.add(Notification(
            effect_key=f"webhook-disabled:{endpoint.id}:{stamp}:{admin.id}", recipient_id=admin.id,
            kind="webhook.endpoint_disabled", title=f"Webhook endpoint disabled: {endpoint.url}"[:300],
            body=(f"The platform stopped sending webhooks to {endpoint.url}: {reason}. Fix the receiver, then "
                  "enable the endpoint again and replay what it missed."),
            detail={"endpoint_id": str(endpoint.id), "url": endpoint.url, "reason": reason,
                    "disabled_at": stamp},
            created_at=clock.now()))
    await session.flush()


async def _audit(session: AsyncSession, endpoint: WebhookEndpoint, acting: Actor, action: str, *,
                 reason: str | None = None, detail: dict[str, Any] | None = None) -> None:
    await record(session, actor=acting, action=action, target_type="webhook_endpoint", target_id=endpoint.id,
                 tenant_id=endpoint.tenant_id, reason=reason, detail=detail)


def _reseal_secrets(row: Mapping[str, Any], one: Callable[[str], str]) -> list[dict[str, Any]]:
    return [{**entry, "secret": one(entry["secret"])} for entry in row["secrets"] or []]


# Every endpoint's signing secrets (also those still in a rotation's overlap), for ``secrets.rotate_all``.
SECRET_COLUMN = vault.SecretColumn("webhook signing secrets", WebhookEndpoint.__table__, "secrets", _reseal_secrets)

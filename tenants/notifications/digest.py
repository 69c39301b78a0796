"""The daily digest: each front-office person who asked for it (their preferences) gets one e-mail each
morning with the previous day's notifications, in the language they chose.

The scheduler runs ``send_daily_digests`` every few minutes (web/entry/loops.py). A tenant's "yesterday"
and "morning" are its own: its time zone, and its clock's offset where one runs ahead (demo, staging).
Set-based across every tenant: the subscribers in one statement, the digests already sent today in
another (a later tick reads nothing more), their notifications of the day in a third, the e-mails and
their outbox rows in one INSERT each. The e-mail's effect key names the person
and the day (unique per tenant), so a second run, or two schedulers racing, send nothing more: the
insert's conflict is the idempotency check. A person with no notification that day gets no e-mail.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from backoffice.platform import clock
from backoffice.platform.db.base import new_id
from backoffice.platform.db.session import Database, dialect_insert
from backoffice.platform.outbox.models import OutboxEntry
from backoffice.platform.settings import get_settings
from backoffice.platform.timers.clock import offsets
from backoffice.tenants.effects.models import Channel, DeliveryStatus, OutboundMessage
from backoffice.tenants.effects.service import DELIVER_JOB
from backoffice.tenants.notifications import queries
from backoffice.tenants.notifications.models import Notification, NotificationPreference
from backoffice.tenants.notifications.reading import in_reader_locale
from backoffice.tenants.policies.templates import format_date, format_datetime
from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.users.models import TenantUser

log = logging.getLogger(__name__)
DIGEST_HOUR = 7  # local time from which yesterday's digest goes out
KIND = "notifications.digest"

_TEXT = {
    "pt-BR": {
        "subject": "{tenant}: resumo de {day} ({count})",
        "hello": "Olá, {name}.",
        "intro": "Suas notificações de {day} no portal de {tenant}:",
        "open": "Abrir: {link}",
        "footer": "Você recebe este resumo porque o pediu nas suas preferências de notificação: {link}",
    },
    "en": {
        "subject": "{tenant}: digest of {day} ({count})",
        "hello": "Hello, {name}.",
        "intro": "Your notifications of {day} on {tenant}'s portal:",
        "open": "Open: {link}",
        "footer": "You receive this digest because you asked for it in your notification preferences: {link}",
    },
}


def effect_key(user_id: uuid.UUID, day: date) -> str:
    return f"digest:{user_id}:{day.isoformat()}"


def _portal(tenant: Tenant) -> str:
    settings = get_settings()
    base = settings.base_url or f"http://{settings.host}:{settings.port}"
    return f"{base.rstrip('/')}/{tenant.slug}"


def _window(tenant: Tenant, now: datetime, offset: timedelta) -> tuple[date, datetime, datetime] | None:
    """The tenant's previous local day as a real-time interval, once its local morning has come."""
    zone = ZoneInfo(tenant.timezone)
    local = (now + offset).astimezone(zone)
    if local.hour < DIGEST_HOUR:
        return None
    day = local.date() - timedelta(days=1)
    start = datetime.combine(day, time(0), tzinfo=zone) - offset
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone) - offset
    return day, start, end


def compose(tenant: Tenant, user: TenantUser, locale: str, day: date, items: list[Notification],
            wording: Mapping[str, Any]) -> dict[str, Any]:
    """The e-mail's payload (what the e-mail connector sends): subject and plain text in ``locale``, each
    notification's title too where its kind's template can say it there (``reading``; ``wording``: the
    company's template overrides)."""
    text = _TEXT.get(locale, _TEXT["pt-BR"])
    portal = _portal(tenant)
    shown_day = format_date(day, tenant.timezone, locale)
    lines = [text["hello"].format(name=user.name), "",
             text["intro"].format(day=shown_day, tenant=tenant.display_name), ""]
    for item in items:
        title = in_reader_locale(item, locale, wording, company_locale=tenant.locale).title
        lines.append(f"- {format_datetime(item.created_at, tenant.timezone, locale)}: {title}")
        lines.append("  " + text["open"].format(link=f"{portal}/inbox/{item.id}"))
    lines += ["", text["footer"].format(link=f"{portal}/preferences")]
    return {"kind": KIND, "to": user.email, "to_name": user.name,
            "subject": text["subject"].format(tenant=tenant.display_name, day=shown_day, count=len(items)),
            "text": "\n".join(lines)}


async def send_daily_digests(database: Database, *, now: datetime | None = None) -> int:
    """Queue today's digests that are due and not yet sent; returns how many were queued."""
    now = now or clock.now()
    async with database.system() as session:
        subscribers = await queries.digest_subscribers(session)
        if not subscribers:
            return 0
        shifted = await offsets(session, {tenant.id for _, _, tenant in subscribers})
        windows: dict[uuid.UUID, tuple[date, datetime, datetime] | None] = {}
        due: list[tuple[NotificationPreference, TenantUser, Tenant]] = []
        for preference, user, tenant in subscribers:
            if tenant.id not in windows:
                windows[tenant.id] = _window(tenant, now, shifted.get(tenant.id, timedelta(0)))
            if windows[tenant.id] is not None:
                due.append((preference, user, tenant))
        # Who already had today's digest (a run earlier this morning) is not read again: the loop ticks
        # every few minutes all day, and only the first tick after the morning hour has work.
        sent = await queries.sent_digests(
            session, [(tenant.id, effect_key(user.id, windows[tenant.id][0])) for _, user, tenant in due])
        due = [(p, user, tenant) for p, user, tenant in due
               if (tenant.id, effect_key(user.id, windows[tenant.id][0])) not in sent]
        if not due:
            return 0
        spans = [w for w in windows.values() if w is not None]
        found = await queries.notifications_between(
            session, [(tenant.id, user.id) for _, user, tenant in due],
            min(start for _, start, _ in spans), max(end for _, _, end in spans))
        by_person: dict[tuple[uuid.UUID, uuid.UUID], list[Notification]] = {}
        for item in found:
            day, start, end = windows[item.tenant_id]
            if start <= item.created_at < end:
                by_person.setdefault((item.tenant_id, item.recipient_id), []).append(item)
        # Each company's templates, for the titles of its readers of another language: one statement.
        wording = await queries.wording_by_tenant(session, {tenant_id for tenant_id, _ in by_person})
        rows = []
        for preference, user, tenant in due:
            items = by_person.get((tenant.id, user.id))
            if not items:
                continue
            day = windows[tenant.id][0]
            locale = preference.locale or tenant.locale or "pt-BR"
            rows.append({"tenant_id": tenant.id, "id": new_id(), "effect_key": effect_key(user.id, day),
                         "channel": Channel.EMAIL, "target": user.email,
                         "payload": compose(tenant, user, locale, day, items, wording[tenant.id]),
                         "status": DeliveryStatus.PENDING, "attempts": 0, "response": {}, "created_at": now})
        if not rows:
            return 0
        insert = dialect_insert(session)
        sent = (await session.execute(
            insert(OutboundMessage).values(rows).on_conflict_do_nothing(index_elements=["tenant_id", "effect_key"])
            .returning(OutboundMessage.tenant_id, OutboundMessage.id))).all()
        if sent:
            await session.execute(insert(OutboxEntry).values([
                {"id": new_id(), "tenant_id": tenant_id, "job": DELIVER_JOB, "payload": {"message_id": str(message_id)},
                 "created_at": now, "available_at": now, "attempts": 0} for tenant_id, message_id in sent]))
        log.info("daily digest: %d e-mail(s) queued, %d already sent", len(sent), len(rows) - len(sent))
        return len(sent)

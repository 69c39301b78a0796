"""The embedded demo's mailbox: what the tenant's e-mails and platform commands would have been, as the
recording port kept them (``OutboundMessage`` rows sent with ``{"recorded": true}``), newest first. Read
through the tenant's door; only messages that were sent (recorded), never pending or dead ones."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.tenants.effects.models import Channel, DeliveryStatus, OutboundMessage

LIMIT = 100
_LINK = re.compile(r"https?://[^\s<>\"']+")


@dataclass(frozen=True)
class Recorded:
    at: datetime
    channel: str
    to: str
    subject: str
    text: str
    links: list[str]
    payload: dict[str, Any]


async def recorded_messages(session: AsyncSession, *, limit: int = LIMIT) -> list[Recorded]:
    query = (select(OutboundMessage)
             .where(OutboundMessage.status == DeliveryStatus.SENT,
                    OutboundMessage.channel.in_([Channel.EMAIL, Channel.PLATFORM]))
             .order_by(OutboundMessage.sent_at.desc(), OutboundMessage.id.desc()).limit(limit))
    found = []
    for message in (await session.execute(query)).scalars():
        if not (message.response or {}).get("recorded"):
            continue  # went out through a real connector: it is in someone's real mailbox, not here
        payload = message.payload or {}
        text = str(payload.get("text") or "")
        to = str(payload.get("to") or message.target or "")
        if message.channel == Channel.PLATFORM:
            # A command names its customer by CPF/CNPJ, as the platform knows it; its reason is the
            # process's English log text, left out so the page keeps to one language.
            customer = payload.get("customer") or {}
            to = f"CPF/CNPJ {customer['tax_id']}" if customer.get("tax_id") else to
        found.append(Recorded(
            at=message.sent_at or message.created_at, channel=message.channel.value,
            to=to,
            subject=str(payload.get("subject") or payload.get("command") or message.target or ""),
            text=text, links=list(dict.fromkeys(_LINK.findall(text))), payload=payload))
    return found

"""What invoicing asks of a fiscal-document issuer (Focus NFe today), in the domain's words.

An issuer is one of the tenant's connections (``tenants/connections.py``) opened into this port. A nota is
sent under a ``ref`` we choose; the issuer dedupes by it, so a repeat of a send is harmless, and its state
is read back by the same ref. What a settled nota means for the platform comes back as canonical events
(the same the issuer's hooks produce, with the same external ids, so a hook and a poll never double up).
``connectors/`` implements it (``connectors/focusnfe.py``); calls fail with
``tenants.connections.CallFailed`` subclasses.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from backoffice.tenants.connections import Connection


class NotaState(enum.StrEnum):
    PROCESSING = "processing"  # the city hall has not answered yet
    AUTHORIZED = "authorized"
    REJECTED = "rejected"
    CANCELED = "canceled"  # canceled or replaced: its ref no longer holds the charge's nota
    UNKNOWN = "unknown"  # a status the issuer documents nothing for


@dataclass(frozen=True)
class Nota:
    ref: str
    state: NotaState
    word: str  # the issuer's own status word, for messages
    number: str | None = None
    pdf_url: str | None = None
    verification_code: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)  # canonical events its state means


@dataclass(frozen=True)
class Tomador:
    """Who the nota is issued to."""

    tax_id_kind: str  # cpf | cnpj
    tax_id: str
    name: str
    email: str | None = None


class FiscalIssuer(Protocol):
    connection: Connection
    title: str  # how people know the issuer ("Focus NFe"), for messages

    @property
    def source(self) -> str: ...

    def missing_for_issuing(self) -> list[str]:
        """Configuration fields issuing still needs (the prestador as the city hall knows it, ...)."""

    def description_opening(self) -> str | None:
        """The tenant's own opening of every nota's description, if it set one."""

    def ref_for(self, customer_id: uuid.UUID, suffix: str) -> str:
        """The nota's ref: it names the customer, so the issuer's hook finds whose nota it is."""

    async def submit(self, ref: str, *, issued_at: datetime, tomador: Tomador, amount_cents: int,
                     description: str) -> Nota:
        """Send the nota once whatever happened before (a ref the issuer already holds is followed, not sent
        again); a refusal of the data raises, not retryable, in the issuer's words."""

    async def status(self, ref: str) -> Nota | None:
        """The nota's state now; None when the issuer does not know the ref."""

"""Testing a connector's connection from the console: one cheap, documented call to the provider through
the instance's outbound check and circuit breaker (``ConnectorKind.check``), its answer shown as is, the
instance's health updated and the test audited.

Services flush; the caller's transaction commits.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from backoffice.connectors.asaas import refusal as asaas_refusal
from backoffice.connectors.http import CircuitOpen, ProviderError
from backoffice.connectors.models import ConnectorInstance
from backoffice.connectors.kinds import CheckResult, ConnectorError, get_kind
from backoffice.connectors.service import open_context, record_failure, record_success
from backoffice.platform.audit.service import Actor, record
from backoffice.platform.db.session import get_owned
from backoffice.platform.security.secrets import SecretUnreadable
from backoffice.platform.settings import Settings

STATUS_OF_REFUSAL = "refused"


def _refusal_text(kind_name: str, error: ProviderError) -> str:
    """The provider's own words: Asaas's ``errors[].description`` (its module reads them), Stripe's
    ``error.message``, a JSON:API ``errors[].detail`` (Clicksign); else the whole error."""
    if kind_name == "asaas":
        return asaas_refusal(error) or str(error)
    text = str(error)
    start = text.find("{")
    try:
        body = json.loads(text[start:]) if start >= 0 else None
    except ValueError:
        body = None
    if isinstance(body, dict):
        stripe_error = body.get("error")
        if isinstance(stripe_error, dict) and stripe_error.get("message"):
            return f"{stripe_error['message']} (HTTP {error.status})"
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            words = errors[0].get("detail") or errors[0].get("title")
            if words:
                return f"{words} (HTTP {error.status})"
    return text


async def check_connection(session: AsyncSession, instance_id: uuid.UUID, *, acting: Actor, settings: Settings,
                          http_options: dict[str, Any] | None = None) -> CheckResult:
    """Call the provider as the instance is configured and say what it answered. A failing answer is a
    result to show (``ok=False``), not an error: only a missing instance raises (NotFound)."""
    instance = await get_owned(session, ConnectorInstance, instance_id)
    kind = get_kind(instance.kind)
    try:
        ctx = open_context(instance, settings, **{"retries": 0, "timeout": 10.0, **(http_options or {})})
        result = await kind.check(ctx)
    except CircuitOpen as error:
        result = CheckResult(False, "circuit-open", str(error))
    except ProviderError as error:
        result = CheckResult(False, str(error.status) if error.status else "no-answer",
                             _refusal_text(instance.kind, error))
    except SecretUnreadable:
        result = CheckResult(False, "secret", "the stored credentials cannot be decrypted: set them again")
    except ConnectorError as error:
        result = CheckResult(False, "error", str(error))
    if result.ok is True:
        record_success(instance)
    elif result.ok is False:
        record_failure(instance, result.message)
    await session.flush()
    await record(session, actor=acting, action="connector.tested", target_type="connector", target_id=instance.id,
                 tenant_id=instance.tenant_id,
                 detail={"kind": instance.kind, "name": instance.name, "ok": result.ok, "status": result.status,
                         "message": result.message[:500]})
    return result

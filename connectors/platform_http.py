"""The tenant's own platform: a generic HTTP connector that takes block, unblock, provision and deprovision
commands.

Each command is POSTed as JSON to the instance's URL, signed per the Standard Webhooks spec with the
instance's ``whsec_`` secret; ``webhook-id`` is the command's effect key, so the tenant's platform can drop
a repeat (a retry after a lost answer). The acknowledgement (status and a snippet of the body) is kept on
the ``OutboundMessage``. A 4xx other than 408/429 means the platform refused the command: dead at once
with its answer (staff replay it from the console once fixed); 408, 429, 5xx, timeouts and unreachable
hosts are retried by ``effects.deliver`` with backoff. Calls go through the instance's circuit breaker
(``connectors/http.py``), whose transport checks the target's address at connect time (and the URL was
checked when saved). The console's connection test sends ``{"command": "ping"}``, signed the same way, which
a platform acknowledges with any 2xx and acts on nothing.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from pydantic import SecretStr, field_validator

from backoffice.connectors.http import ProviderError
from backoffice.connectors.ports import ConnectorPort
from backoffice.connectors.kinds import CheckResult, ConnectorKind, KindConfig
from backoffice.platform import clock
from backoffice.platform.security.outbound import TargetRefused, check_url_shape
from backoffice.platform.security.standard_webhooks import PREFIX, sign
from backoffice.tenants.effects.models import Channel, OutboundMessage
from backoffice.tenants.effects.ports import DeliveryError
from backoffice.tenants.registry.models import Tenant

KIND = "tenant_platform"
COMMANDS = ("block", "unblock", "provision", "deprovision")
SNIPPET = 500
RETRYABLE_4XX = (408, 429)


class PlatformHttpConfig(KindConfig):
    url: str
    secret: SecretStr  # whsec_...: the tenant's platform verifies our signature with it

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        try:
            return check_url_shape(value)
        except TargetRefused as error:
            raise ValueError(str(error)) from None

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(PREFIX):
            raise ValueError(f"expected a Standard Webhooks secret starting with {PREFIX}")
        return value


class TenantPlatform(ConnectorKind):
    name = KIND
    title = "The company's platform (block, unblock, provision, deprovision)"
    config_model = PlatformHttpConfig
    channel = Channel.PLATFORM
    url_fields = ("url",)

    async def check(self, ctx) -> CheckResult:
        """A signed ``{"command": "ping"}`` to the platform's URL, which acts on nothing: a 2xx proves the
        address answers and the secret is the one it verifies with."""
        effect_key = f"ping:{uuid.uuid4()}"
        body = json.dumps({"id": effect_key, "command": "ping", "reason": "connection test", "customer": None,
                           "data": {}, "sent_at": clock.now().isoformat()}, separators=(",", ":")).encode()
        headers = {**sign([ctx.config.secret.get_secret_value()], effect_key, body,
                          timestamp=int(clock.now().timestamp())), "content-type": "application/json"}
        response = await ctx.http.request("POST", ctx.config.url, content=body, headers=headers,
                                          label="POST platform ping")
        if not 200 <= response.status_code < 300:
            raise ProviderError(f"POST platform ping: answered {response.status_code} (redirects are not followed)",
                                retryable=False, status=response.status_code)
        return CheckResult(True, str(response.status_code), f"the platform answered: {response.text[:SNIPPET]}")


def command_body(message: OutboundMessage) -> dict[str, Any]:
    """What the tenant's platform receives: the command, why, the customer and the command's data."""
    payload = message.payload
    return {"id": message.effect_key, "command": payload.get("command", message.target),
            "reason": payload.get("reason"), "customer": payload.get("customer"), "data": payload.get("data", {}),
            "sent_at": clock.now().isoformat()}


class PlatformPort(ConnectorPort):
    channel = Channel.PLATFORM
    label = "platform"

    async def deliver(self, ctx, tenant: Tenant, message: OutboundMessage) -> dict[str, Any]:
        command = message.payload.get("command", message.target)
        if command not in COMMANDS:
            raise DeliveryError(f"payload.command: expected one of {', '.join(COMMANDS)}", retryable=False)
        url = ctx.config.url
        body = json.dumps(command_body(message), separators=(",", ":"), ensure_ascii=False).encode()
        headers = {**sign([ctx.config.secret.get_secret_value()], message.effect_key, body,
                          timestamp=int(clock.now().timestamp())),
                   "content-type": "application/json"}
        try:
            response = await ctx.http.request("POST", url, content=body, headers=headers,
                                              label=f"POST platform command {command}")
        except ProviderError as error:
            raise DeliveryError(str(error), retryable=error.retryable or error.status in RETRYABLE_4XX) from None
        if not 200 <= response.status_code < 300:
            # Redirects are not followed (one could lead anywhere); the configured URL needs fixing.
            raise DeliveryError(f"platform command {command}: answered {response.status_code} "
                                "(redirects are not followed)", retryable=False)
        return {"status": response.status_code, "body": response.text[:SNIPPET], "webhook_id": message.effect_key}

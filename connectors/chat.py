"""Team chat through a Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat, Google Chat's
compatible mode): ``POST <webhook url>`` with ``{"text": ...}``.

The webhook URL is the credential (anyone holding it can post), so it is a secret field: encrypted at
rest, redacted when shown, and never put in an error message. Its address is checked when saved and
again when each message is sent (``platform/security/outbound``, through the connector HTTP client).
"""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr, field_validator

from backoffice.connectors.http import ProviderError
from backoffice.connectors.ports import ConnectorPort
from backoffice.connectors.kinds import CheckResult, ConnectorKind, KindConfig
from backoffice.platform.security.outbound import TargetRefused, check_url_shape
from backoffice.tenants.effects.models import Channel, OutboundMessage
from backoffice.tenants.effects.ports import DeliveryError
from backoffice.tenants.registry.models import Tenant


class ChatConfig(KindConfig):
    webhook_url: SecretStr

    @field_validator("webhook_url")
    @classmethod
    def _shape(cls, value: SecretStr) -> SecretStr:
        try:
            check_url_shape(value.get_secret_value())
        except TargetRefused as error:
            raise ValueError(str(error)) from None
        return value


class Chat(ConnectorKind):
    name = "chat"
    title = "Team chat (Slack-compatible incoming webhook)"
    config_model = ChatConfig
    channel = Channel.CHAT
    url_fields = ("webhook_url",)
    TEST_TEXT = "Teste de conexão do back office. / Back-office connection test."

    async def check(self, ctx) -> CheckResult:
        """An incoming webhook has nothing to read: the test posts one short message, as chat tools'
        own "send test message" buttons do."""
        response = await ctx.http.request("POST", ctx.config.webhook_url.get_secret_value(),
                                          json={"text": self.TEST_TEXT}, label="POST chat webhook")
        return CheckResult(True, str(response.status_code), f"the chat accepted a test message: {response.text[:200]}")


class ChatPort(ConnectorPort):
    channel = Channel.CHAT
    label = "chat"

    async def deliver(self, ctx, tenant: Tenant, message: OutboundMessage) -> dict[str, Any]:
        text = message.payload.get("text")
        if not text:
            raise DeliveryError("payload.text: missing", retryable=False)
        url = ctx.config.webhook_url.get_secret_value()
        try:
            response = await ctx.http.request("POST", url, json={"text": text}, label="POST chat webhook")
        except ProviderError as error:
            raise DeliveryError(str(error), retryable=error.retryable) from None
        return {"status": response.status_code, "body": response.text[:200]}

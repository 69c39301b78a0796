"""Clicksign (e-signature): https://developers.clicksign.com/docs/webhooks

Webhooks carry ``Content-Hmac: sha256=<hex>``, an HMAC-SHA256 of the raw body with the webhook's
secret, compared in constant time. A closed envelope (event ``auto_close``, ``close`` or
``document_closed``, or a document/envelope whose status is ``closed``) becomes ``contract.signed``
with the envelope's id and the signed document's URL. The customer is matched by the first signer whose
CPF/CNPJ the company knows (signers' ``documentation``); ``customer_tax_id`` in the document's metadata
takes precedence when present.

Receiving needs only the HMAC secret. An optional ``access_token`` lets the console test the connection
with the read Clicksign's own guide uses to check a token: ``GET /api/v3/envelopes`` (``Authorization:
<token>``), asking for one envelope.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Any

from pydantic import Field, HttpUrl, SecretStr

from backoffice.connectors.common import json_body, required_field
from backoffice.connectors.http import json_of
from backoffice.connectors.kinds import (
    CheckResult, ConnectorKind, Context, InboundRequest, MalformedPayload, ProviderConfig, VerificationFailed,
)

log = logging.getLogger(__name__)
CLOSING_EVENTS = {"auto_close", "close", "document_closed"}


class ClicksignConfig(ProviderConfig):
    hmac_secret: SecretStr
    access_token: SecretStr | None = None  # only for the connection test
    base_url: HttpUrl = Field(default=HttpUrl("https://app.clicksign.com"))


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Clicksign(ConnectorKind):
    name = "clicksign"
    title = "Clicksign (e-signature)"
    config_model = ClicksignConfig
    inbound = True
    # Clicksign's API hosts (production, sandbox): receiving needs no call, and any call added later can
    # reach only these.
    hosts = frozenset({"app.clicksign.com", "sandbox.clicksign.com"})
    url_fields = ("base_url",)

    def targets(self, config: ClicksignConfig) -> dict[str, tuple[str, int]]:
        return super().targets(config) if config.access_token is not None else {}  # no token: nothing is called

    async def check(self, ctx: Context) -> CheckResult:
        if ctx.config.access_token is None:
            return await super().check(ctx)
        label = "GET clicksign envelopes"
        response = await ctx.http.request(
            "GET", str(ctx.config.base_url).rstrip("/") + "/api/v3/envelopes", params={"page[size]": "1"},
            label=label, headers={"Authorization": ctx.config.access_token.get_secret_value(),
                                  "Accept": "application/vnd.api+json"})
        count = (json_of(response, label).get("meta") or {}).get("record_count")
        return CheckResult(True, str(response.status_code), f"envelopes: {count if count is not None else '?'}")

    async def receive(self, ctx: Context, request: InboundRequest) -> list[dict[str, Any]]:
        given = request.header("content-hmac") or ""
        expected = sign(ctx.config.hmac_secret.get_secret_value(), request.body)
        if not hmac.compare_digest(given.strip().lower().encode(), expected.encode()):
            raise VerificationFailed("Content-Hmac does not match this connector's secret")
        body = json_body(request)
        event_name = (body.get("event") or {}).get("name")
        document = body.get("envelope") or body.get("document") or {}
        closed = event_name in CLOSING_EVENTS or (
            event_name in (None, "") and document.get("status") == "closed")
        if not closed:
            log.debug("clicksign event %r ignored: not a closed envelope", event_name)
            return []
        envelope_id = str(document.get("id") or required_field(document, "key"))
        downloads = document.get("downloads") or {}
        data: dict[str, Any] = {"envelope_id": envelope_id}
        url = downloads.get("signed_file_url") or downloads.get("original_file_url")
        if url:
            data["document_url"] = url
        occurred = (body.get("event") or {}).get("occurred_at") or document.get("finished_at")
        if occurred:
            data["signed_at"] = occurred
        return [{"type": "contract.signed", "source": self.source, "external_id": f"{envelope_id}:closed",
                 "customer": {"tax_id": self._customer_tax_id(document)}, "data": data}]

    def _customer_tax_id(self, document: dict[str, Any]) -> str:
        metadata = document.get("metadata") or {}
        if metadata.get("customer_tax_id"):
            return str(metadata["customer_tax_id"])
        for signer in document.get("signers") or []:
            if isinstance(signer, dict) and signer.get("documentation"):
                return str(signer["documentation"])
        raise MalformedPayload("no signer documentation (CPF/CNPJ) to match the customer by")

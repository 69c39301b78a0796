"""Focus NFe (NFS-e issuing): https://focusnfe.com.br/doc/#nfse

- API: HTTP Basic with the token as the user and an empty password.
- ``POST {base_url}/v2/nfse?ref=<ref>``: issue; idempotent by ``ref`` (a repeat answers that the ref
  exists), so a retry after a timeout is safe.
- ``GET {base_url}/v2/nfse/<ref>``: the nota's status (polling, and verification of hooks).
- Hooks post the nota's JSON. Focus NFe signs nothing, so a hook is only a hint: we re-fetch the nota by
  its ref and trust only what the API says. ``autorizado`` becomes ``invoice.issued`` (number, PDF and
  XML links); ``erro_autorizacao`` becomes ``invoice.rejected`` with the city hall's messages.

Customer matching: the refs this connector creates are ``<customer uuid hex>-<suffix>`` (see
:func:`make_ref`), so a hook names the customer without the nota having to carry our ids; a nota that
carries the tomador's CPF/CNPJ is matched by it otherwise.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any
from urllib.parse import urljoin

from pydantic import Field, HttpUrl, SecretStr

from backoffice.connectors.common import cents, json_body, need
from backoffice.connectors.http import ProviderError, json_of
from backoffice.connectors.registry import ConnectorKind, Context, InboundRequest, KindConfig, MalformedPayload, register

log = logging.getLogger(__name__)
REF = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
OUR_REF = re.compile(r"^([0-9a-f]{32})-")


class FocusNfeConfig(KindConfig):
    base_url: HttpUrl = Field(default=HttpUrl("https://api.focusnfe.com.br"))
    token: SecretStr


def make_ref(customer_id: uuid.UUID, suffix: str) -> str:
    ref = f"{customer_id.hex}-{suffix}"
    if not REF.match(ref):
        raise ValueError("ref: expected letters, digits, '-' or '_' (at most 100)")
    return ref


@register
class FocusNfe(ConnectorKind):
    name = "focusnfe"
    title = "Focus NFe (NFS-e)"
    config_model = FocusNfeConfig
    inbound = True

    def _url(self, ctx: Context, path: str) -> str:
        return str(ctx.config.base_url).rstrip("/") + path

    def _auth(self, ctx: Context) -> tuple[str, str]:
        return (ctx.config.token.get_secret_value(), "")

    async def issue(self, ctx: Context, ref: str, nfse: dict[str, Any]) -> dict[str, Any]:
        """Send a nota for issuing. Retried on timeouts and 5xx: the ref makes a repeat harmless."""
        if not REF.match(ref):
            raise ValueError("ref: expected letters, digits, '-' or '_' (at most 100)")
        response = await ctx.http.request("POST", self._url(ctx, "/v2/nfse"), params={"ref": ref}, json=nfse,
                                          auth=self._auth(ctx), repeatable=True,
                                          label="POST focusnfe nfse")
        return json_of(response, "POST focusnfe nfse")

    async def status(self, ctx: Context, ref: str) -> dict[str, Any] | None:
        try:
            response = await ctx.http.request("GET", self._url(ctx, f"/v2/nfse/{ref}"), auth=self._auth(ctx),
                                              label="GET focusnfe nfse")
        except ProviderError as error:
            if error.status == 404:
                return None
            raise
        return json_of(response, "GET focusnfe nfse")

    async def receive(self, ctx: Context, request: InboundRequest) -> list[dict[str, Any]]:
        hint = json_body(request)
        ref = need(hint, "ref")
        if not isinstance(ref, str) or not REF.match(ref):
            raise MalformedPayload("ref: expected letters, digits, '-' or '_'")
        nota = await self.status(ctx, ref)
        if nota is None:
            log.info("focusnfe hook for unknown ref %s not stored", ref)
            return []
        return self.normalise(ctx, ref, nota)

    def normalise(self, ctx: Context, ref: str, nota: dict[str, Any]) -> list[dict[str, Any]]:
        """Canonical events for a nota's status as fetched from the API (the polling path uses it too)."""
        status = nota.get("status")
        customer = self._customer(ref, nota)
        if status == "autorizado":
            document = {"external_id": ref, "number": _str(nota.get("numero"), 32),
                        "verification_code": _str(nota.get("codigo_verificacao"), 64),
                        "pdf_url": nota.get("url_danfse") or nota.get("url"),
                        "xml_url": self._link(ctx, nota.get("caminho_xml_nota_fiscal")),
                        "issued_at": nota.get("data_emissao")}
            if nota.get("valor_servicos") is not None:
                document["amount_cents"] = cents(nota["valor_servicos"], "valor_servicos")
            data = {"document": {k: v for k, v in document.items() if v}}
            return [{"type": "invoice.issued", "source": self.source, "external_id": f"{ref}:autorizado",
                     "customer": customer, "data": data}]
        if status == "erro_autorizacao":
            messages = [str(e.get("mensagem")) for e in nota.get("erros") or [] if isinstance(e, dict) and e.get("mensagem")]
            message = "; ".join(messages)[:1000] or "rejected without a message from the city hall"
            return [{"type": "invoice.rejected", "source": self.source, "external_id": f"{ref}:erro_autorizacao",
                     "customer": customer, "data": {"document": {"external_id": ref}, "message": message}}]
        log.debug("focusnfe nota %s in status %s: nothing to store yet", ref, status)
        return []

    def _link(self, ctx: Context, path: str | None) -> str | None:
        if not path:
            return None
        return urljoin(str(ctx.config.base_url), path)

    def _customer(self, ref: str, nota: dict[str, Any]) -> dict[str, Any]:
        match = OUR_REF.match(ref)
        if match:
            return {"id": str(uuid.UUID(match.group(1)))}
        tomador = nota.get("tomador") or {}
        tax_id = tomador.get("cnpj") or tomador.get("cpf")
        if tax_id:
            return {"tax_id": str(tax_id)}
        raise MalformedPayload("cannot tell whose nota this is: ref not made by the platform and no tomador")


def _str(value: Any, limit: int) -> str | None:
    return None if value in (None, "") else str(value)[:limit]


async def poll(session, instance, ref: str, settings=None, **http_options: Any) -> list:
    """The polling path: fetch the nota's status now and store what it means, in the caller's transaction
    (the same canonical events and external ids as the hook, so a hook and a poll never double up)."""
    from backoffice.connectors.service import open_context, record_success
    from backoffice.tenants.events.intake import ingest

    kind = FocusNfe()
    ctx = open_context(instance, settings, **http_options)
    nota = await kind.status(ctx, ref)
    results = [await ingest(session, instance.tenant_id, event) for event in kind.normalise(ctx, ref, nota or {})]
    record_success(instance)
    return results

"""Focus NFe (NFS-e issuing): https://focusnfe.com.br/doc/#nfse

- API: HTTP Basic with the token as the user and an empty password.
- ``POST {base_url}/v2/nfse?ref=<ref>``: issue; idempotent by ``ref`` (a repeat answers that the ref
  exists, except a rejected one, which is issued anew), so :meth:`FocusNfe.submit` looks the ref up first
  and POSTs only a ref Focus NFe does not know.
- ``GET {base_url}/v2/nfse/<ref>``: the nota's status (polling, and verification of hooks).
- Hooks post the nota's JSON. Focus NFe signs nothing, so a hook is only a hint: we re-fetch the nota by
  its ref and trust only what the API says. ``autorizado`` becomes ``invoice.issued`` (number, PDF and
  XML links); ``erro_autorizacao`` becomes ``invoice.rejected`` with the city hall's messages.

Customer matching: the refs this connector creates are ``<customer uuid hex>-<suffix>`` (see
:func:`make_ref`), so a hook names the customer without the nota having to carry our ids; a nota that
carries the tomador's CPF/CNPJ is matched by it otherwise.

Hosts: production ``api.focusnfe.com.br``, homologation ``homologacao.focusnfe.com.br``; any other host
only by a provider admin's override. A ref goes into a path only when it has the documented shape
(letters, digits, ``-`` and ``_``), escaped as one segment.

Issuing (the invoices routine) also needs the prestador as the city hall knows it and the service code:
optional configuration fields, so an instance that only receives hooks stays valid without them
(:func:`missing_for_issuing` names what an issuing tenant still has to fill in).
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urljoin

from pydantic import Field, HttpUrl, SecretStr, field_validator

from backoffice.connectors.common import cents, json_body, required_field, segment
from backoffice.connectors.http import ProviderError, json_of
from backoffice.connectors.kinds import (
    CheckResult, ConnectorKind, Context, InboundRequest, MalformedPayload, ProviderConfig,
)
from backoffice.connectors.models import ConnectorInstance
from backoffice.platform.documents import InvalidDocument, normalize_cnpj
from backoffice.tenants.connections import Connection
from backoffice.tenants.fiscal.ports import Nota, NotaState, Tomador

log = logging.getLogger(__name__)
REF = re.compile(r"[A-Za-z0-9_-]{1,100}")  # used with fullmatch: "$" would let a final newline through
OUR_REF = re.compile(r"^([0-9a-f]{32})-")


HOSTS = frozenset({"api.focusnfe.com.br", "homologacao.focusnfe.com.br"})
PROBE_REF = "backoffice-connection-test"  # never issued: a connection test asks for it and expects 404


class FocusNfeConfig(ProviderConfig):
    base_url: HttpUrl = Field(default=HttpUrl("https://api.focusnfe.com.br"))
    token: SecretStr
    # The prestador (this company, as its city hall registers it) and the service it invoices: needed to
    # issue notas, not to receive hooks, hence optional.
    prestador_cnpj: str | None = None
    inscricao_municipal: str | None = Field(default=None, min_length=1, max_length=32)
    codigo_municipio: str | None = None  # IBGE code of the prestador's city (where the service is rendered)
    item_lista_servico: str | None = Field(default=None, min_length=1, max_length=16)  # LC 116/2003 item
    codigo_tributario_municipio: str | None = Field(default=None, min_length=1, max_length=32)
    aliquota: Decimal | None = Field(default=None, ge=0, le=100, decimal_places=4)  # ISS rate, percent (2.5 = 2,5%)
    iss_retido: bool = False
    optante_simples_nacional: bool | None = None
    discriminacao: str | None = Field(default=None, min_length=1, max_length=500)  # opens every nota's description

    @field_validator("prestador_cnpj")
    @classmethod
    def _cnpj(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return normalize_cnpj(value)
        except InvalidDocument as error:
            raise ValueError(str(error)) from None

    @field_validator("codigo_municipio")
    @classmethod
    def _ibge(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[0-9]{7}", value):
            raise ValueError("expected the city's IBGE code: 7 digits (São Paulo is 3550308)")
        return value


# What a nota cannot be issued without (Focus NFe's required prestador and service fields).
ISSUING_FIELDS = ("prestador_cnpj", "inscricao_municipal", "codigo_municipio", "item_lista_servico")


def missing_for_issuing(config: FocusNfeConfig) -> list[str]:
    return [name for name in ISSUING_FIELDS if getattr(config, name) in (None, "")]


def nfse_body(config: FocusNfeConfig, *, issued_at: datetime, tomador_kind: str, tomador_tax_id: str,
              tomador_name: str, tomador_email: str | None, amount_cents: int, description: str) -> dict[str, Any]:
    """The NFS-e as ``POST /v2/nfse`` takes it (one format for every city; Focus NFe translates)."""
    missing = missing_for_issuing(config)
    if missing:
        raise ValueError(f"cannot issue a nota without {', '.join(missing)} in the connector's configuration")
    if tomador_kind not in ("cpf", "cnpj"):
        raise ValueError(f"tomador: expected a cpf or cnpj, got {tomador_kind!r}")
    tomador: dict[str, Any] = {tomador_kind: tomador_tax_id, "razao_social": tomador_name[:115]}
    if tomador_email:
        tomador["email"] = tomador_email[:80]
    servico: dict[str, Any] = {
        "valor_servicos": float(Decimal(amount_cents) / 100), "discriminacao": description[:2000],
        "iss_retido": config.iss_retido, "item_lista_servico": config.item_lista_servico,
        "codigo_municipio": config.codigo_municipio,
    }
    if config.aliquota is not None:
        servico["aliquota"] = float(config.aliquota)
    if config.codigo_tributario_municipio:
        servico["codigo_tributario_municipio"] = config.codigo_tributario_municipio
    body: dict[str, Any] = {
        "data_emissao": issued_at.isoformat(timespec="seconds"),
        "prestador": {"cnpj": config.prestador_cnpj, "inscricao_municipal": config.inscricao_municipal,
                      "codigo_municipio": config.codigo_municipio},
        "tomador": tomador, "servico": servico,
    }
    if config.optante_simples_nacional is not None:
        body["optante_simples_nacional"] = config.optante_simples_nacional
    return body


def make_ref(customer_id: uuid.UUID, suffix: str) -> str:
    ref = f"{customer_id.hex}-{suffix}"
    if not REF.fullmatch(ref):
        raise ValueError("ref: expected letters, digits, '-' or '_' (at most 100)")
    return ref


class FocusNfe(ConnectorKind):
    name = "focusnfe"
    title = "Focus NFe (NFS-e)"
    config_model = FocusNfeConfig
    inbound = True
    hosts = HOSTS
    url_fields = ("base_url",)

    def _url(self, ctx: Context, path: str) -> str:
        return str(ctx.config.base_url).rstrip("/") + path

    def _auth(self, ctx: Context) -> tuple[str, str]:
        return (ctx.config.token.get_secret_value(), "")

    async def issue(self, ctx: Context, ref: str, nfse: dict[str, Any]) -> dict[str, Any]:
        """Send a nota for issuing. Retried on timeouts and 5xx: the ref makes a repeat harmless."""
        if not REF.fullmatch(ref):
            raise ValueError("ref: expected letters, digits, '-' or '_' (at most 100)")
        response = await ctx.http.request("POST", self._url(ctx, "/v2/nfse"), params={"ref": ref}, json=nfse,
                                          auth=self._auth(ctx), repeatable=True,
                                          label="POST focusnfe nfse")
        return json_of(response, "POST focusnfe nfse")

    async def submit(self, ctx: Context, ref: str, nfse: dict[str, Any]) -> dict[str, Any]:
        """Send a nota once, whatever happened before. The ref is looked up first (``GET /v2/nfse/<ref>``):
        a send whose outcome we never recorded (a lost answer, a crash between Focus NFe's acceptance and our
        commit) is found there, processing, authorised or rejected by the city hall, and followed instead of
        sent again (a rejected ref POSTed again would be issued anew). Only an unknown ref (404) is POSTed.
        Focus NFe also refuses a repeat of a ref it holds (422 ``em_processamento`` or ``nfe_autorizada``:
        a race with another send); the nota's current state is returned then. Any other refusal raises
        with Focus NFe's own message (not retryable: the data must be fixed)."""
        held = await self.status(ctx, ref)
        if held is not None:
            log.info("focusnfe ref %s was sent already (%s); following it", ref, held.get("status"))
            return held
        try:
            return await self.issue(ctx, ref, nfse)
        except ProviderError as error:
            if error.retryable or error.status not in (400, 409, 422):
                raise
            held = await self.status(ctx, ref)
            if held is not None:
                log.info("focusnfe ref %s was sent already (%s); following it", ref, held.get("status"))
                return held
            raise ProviderError(f"Focus NFe refused the nota: {refusal(error)}", retryable=False,
                                status=error.status) from None

    async def status(self, ctx: Context, ref: str) -> dict[str, Any] | None:
        path = "/v2/nfse/" + segment(ref, REF, "ref", "letters, digits, '-' or '_' (at most 100)")
        try:
            response = await ctx.http.request("GET", self._url(ctx, path), auth=self._auth(ctx),
                                              label="GET focusnfe nfse")
        except ProviderError as error:
            if error.status == 404:
                return None
            raise
        return json_of(response, "GET focusnfe nfse")

    async def check(self, ctx: Context) -> CheckResult:
        """Ask for a nota by a reference we never use (GET /v2/nfse/{ref}): Focus NFe answers 404
        ``nao_encontrado`` to a token it accepts and 401/403 to one it does not, and nothing is issued."""
        try:
            await self.status(ctx, PROBE_REF)
        except ProviderError as error:
            if error.status in (401, 403):
                raise ProviderError(f"Focus NFe refused the token: {refusal(error)}", retryable=False,
                                    status=error.status) from None
            raise
        return CheckResult(True, "404", "Focus NFe accepted the token (no nota has the probe reference, as expected)")

    async def receive(self, ctx: Context, request: InboundRequest) -> list[dict[str, Any]]:
        hint = json_body(request)
        ref = required_field(hint, "ref")
        if not isinstance(ref, str) or not REF.fullmatch(ref):
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


_REFUSED = re.compile(r"provider refused with (\d{3}): (.*)$", re.DOTALL)
_MENSAGEM = re.compile(r'"mensagem"\s*:\s*"((?:[^"\\]|\\.)*)(?:"|\\?$)')  # the last may be cut short


def refusal(error: ProviderError) -> str:
    """Focus NFe's words in a refusal (``{"codigo": ..., "mensagem": ...}`` or a list of ``erros``),
    from the answer's excerpt the HTTP helper keeps in the error."""
    match = _REFUSED.search(str(error))
    if not match:
        return str(error)
    status, excerpt = match.groups()
    try:
        body = json.loads(excerpt)
    except ValueError:
        body = None
    if isinstance(body, dict):
        entries = [body, *[e for e in body.get("erros") or [] if isinstance(e, dict)]]
        messages = [str(e["mensagem"]) for e in entries if e.get("mensagem")]
        if messages:
            codigo = body.get("codigo")
            return "; ".join(messages) + (f" ({codigo}, HTTP {status})" if codigo else f" (HTTP {status})")
    cut = [_unescape(m) for m in _MENSAGEM.findall(excerpt)]  # the excerpt may stop mid-JSON
    if cut:
        return "; ".join(cut) + f" (HTTP {status})"
    return f"HTTP {status}: {excerpt}" if excerpt else f"HTTP {status}"


def _unescape(fragment: str) -> str:
    try:
        return json.loads(f'"{fragment}"')
    except ValueError:
        return fragment


def _str(value: Any, limit: int) -> str | None:
    return None if value in (None, "") else str(value)[:limit]


STATES = {"processando_autorizacao": NotaState.PROCESSING, "autorizado": NotaState.AUTHORIZED,
          "erro_autorizacao": NotaState.REJECTED, "cancelado": NotaState.CANCELED, "substituido": NotaState.CANCELED}


class FocusNfeIssuer:
    """The tenant's Focus NFe account as the domain's ``FiscalIssuer`` (``tenants/fiscal/ports.py``)."""

    title = "Focus NFe"

    def __init__(self, ctx: Context, instance: ConnectorInstance, connection: Connection,
                 kind: FocusNfe | None = None) -> None:
        self.ctx, self.instance, self.connection = ctx, instance, connection
        self.kind = kind or FocusNfe()

    @property
    def source(self) -> str:
        return self.kind.source

    def missing_for_issuing(self) -> list[str]:
        return missing_for_issuing(self.ctx.config)

    def description_opening(self) -> str | None:
        return self.ctx.config.discriminacao

    def ref_for(self, customer_id: uuid.UUID, suffix: str) -> str:
        return make_ref(customer_id, suffix)

    async def submit(self, ref: str, *, issued_at: datetime, tomador: Tomador, amount_cents: int,
                     description: str) -> Nota:
        body = nfse_body(self.ctx.config, issued_at=issued_at, tomador_kind=tomador.tax_id_kind,
                         tomador_tax_id=tomador.tax_id, tomador_name=tomador.name, tomador_email=tomador.email,
                         amount_cents=amount_cents, description=description)
        return self.nota(ref, await self.kind.submit(self.ctx, ref, body))

    async def status(self, ref: str) -> Nota | None:
        nota = await self.kind.status(self.ctx, ref)
        return self.nota(ref, nota) if nota is not None else None

    def nota(self, ref: str, nota: dict[str, Any]) -> Nota:
        word = str(nota.get("status") or "")
        state = STATES.get(word, NotaState.UNKNOWN)
        events = self.kind.normalise(self.ctx, ref, nota) if state in (NotaState.AUTHORIZED, NotaState.REJECTED) else []
        return Nota(ref=ref, state=state, word=word, number=_str(nota.get("numero"), 32),
                    pdf_url=nota.get("url_danfse") or nota.get("url"),
                    verification_code=_str(nota.get("codigo_verificacao"), 64), events=events)

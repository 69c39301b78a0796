"""The demo's own provider stand-ins, on loopback, for the seed's month only.

The demo's payments and notas fiscais reach the platform as the providers' webhooks (``/hooks/...``), and
the connectors trust a webhook only after reading the object back from the provider's API: Asaas's payment
(``GET /v3/payments/{id}``, its Pix code and boleto line for the e-mails that chase it, and a customer the
platform does not know yet, ``GET /v3/customers/{id}``), Focus NFe's nota (``GET /v2/nfse/{ref}``). This
server answers those reads from what the demo put in it just before each webhook, with the API's shapes,
statuses and authentication (Asaas's ``access_token`` header, Focus NFe's HTTP Basic token), and a 404 in
the provider's own words for anything it does not hold. Clicksign signs its webhooks and is never called
back, so it needs no stand-in.

One server plays both hosts (their paths do not overlap); the demo's Asaas and Focus NFe connectors point
at it through a provider admin's ``host_override``, as any host outside a provider's list must.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

PAYMENT = re.compile(r"^/v3/payments/(pay_[A-Za-z0-9_]+)(/pixQrCode|/identificationField)?$")
CUSTOMER = re.compile(r"^/v3/customers/(cus_[A-Za-z0-9_]+)$")
NOTA = re.compile(r"^/v2/nfse/([A-Za-z0-9_-]+)$")
# A 1x1 PNG: what ``encodedImage`` carries is a base64 PNG of the QR code.
QR_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
REASONS = {200: "OK", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed"}


@dataclass
class ProviderStandIns:
    """An Asaas account (``asaas_key``) and a Focus NFe account (``focus_token``) in memory; the demo puts
    payments, customers and notas in them as its month goes."""

    asaas_key: str
    focus_token: str
    payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    notas: dict[str, dict[str, Any]] = field(default_factory=dict)
    server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        if self.server is None:
            raise RuntimeError("the stand-ins are not listening")
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def start(self) -> ProviderStandIns:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    def answer(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if method != "GET":
            return 405, {"errors": [{"code": "method_not_allowed", "description": f"{method} is not served here"}]}
        if path.startswith("/v3/"):
            if headers.get("access_token") != self.asaas_key:
                return 401, {"errors": [{"code": "invalid_access_token", "description": "A chave de API "
                                         "informada não pertence a este ambiente"}]}
            return self._asaas(path)
        if path.startswith("/v2/"):
            if headers.get("authorization") != "Basic " + base64.b64encode(f"{self.focus_token}:".encode()).decode():
                return 401, {"codigo": "nao_autorizado", "mensagem": "Token de acesso inválido"}
            found = NOTA.match(path)
            if found and found.group(1) in self.notas:
                return 200, self.notas[found.group(1)]
            return 404, {"codigo": "nao_encontrado", "mensagem": "Nota fiscal não encontrada"}
        return 404, {"errors": [{"code": "not_found", "description": "Recurso não encontrado"}]}

    def _asaas(self, path: str) -> tuple[int, dict[str, Any]]:
        missing = 404, {"errors": [{"code": "invalid_object", "description": "Objeto não encontrado"}]}
        found = CUSTOMER.match(path)
        if found:
            customer = self.customers.get(found.group(1))
            return (200, customer) if customer else missing
        found = PAYMENT.match(path)
        payment = self.payments.get(found.group(1)) if found else None
        if payment is None:
            return missing
        if found.group(2) is None:
            return 200, payment
        if found.group(2) == "/pixQrCode":
            return 200, {"success": True, "encodedImage": QR_PNG, "expirationDate": f"{payment['dueDate']} 23:59:59",
                         "payload": "00020101021226820014br.gov.bcb.pix2560pix.asaas.com/qr/cobv/"
                                    f"{payment['id']}5204000053039865802BR6009SAO PAULO62070503***6304ABCD"}
        digits = "".join(ch for ch in payment["id"] if ch.isdigit()).rjust(8, "0")[-8:]
        cents = round(payment["value"] * 100)
        return 200, {"identificationField": f"00190.00009 01234.567891 {digits[:5]}.{digits[5:]}001 8 {cents:014d}",
                     "nossoNumero": digits, "barCode": f"0019{cents:010d}"}

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            request_line, *lines = head.split("\r\n")
            method, target, _ = request_line.split(" ", 2)
            headers = {name.strip().lower(): value.strip() for name, _, value in
                       (line.partition(":") for line in lines if line)}
            await reader.readexactly(int(headers.get("content-length") or 0))
            path = target.split("?", 1)[0]
            status, body = self.answer(method, path, headers)
            data = json.dumps(body).encode()
            writer.write(f"HTTP/1.1 {status} {REASONS[status]}\r\ncontent-type: application/json\r\n"
                         f"connection: close\r\ncontent-length: {len(data)}\r\n\r\n".encode() + data)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError) as error:
            log.warning("demo stand-in: a request could not be read (%s)", error)
        finally:
            writer.close()

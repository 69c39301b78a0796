"""A stateful Asaas on a loopback port, for the routines that work through a tenant's Asaas account.

One server plays api.asaas.com: each API key (the ``access_token`` header) is its own account with its own
customers and payments, so two tenants' connectors talk to two accounts as they would in production, and a
test can check that a run touched only its tenant's account. It follows the documented API (v3):

- ``POST /v3/customers`` (name, cpfCnpj required; a tax id configured as refused answers Asaas's 400
  ``{"errors": [{"code": "invalid_cpfCnpj", "description": ...}]}``), ``GET /v3/customers`` (filters
  ``externalReference``, ``cpfCnpj``);
- ``POST /v3/payments`` (customer of the account, billingType, value, dueDate not in the past),
  ``GET /v3/payments`` (filters ``externalReference``, ``customer``, ``status``, ``paymentDate[ge]``,
  ``paymentDate[le]``), ``GET /v3/payments/{id}`` (404 when unknown);
- lists paginate with ``offset``/``limit`` and answer ``object``, ``hasMore``, ``totalCount``, ``limit``,
  ``offset``, ``data``. Pages are capped at ``page_cap`` (Asaas caps at 100) so tests follow pages;
- ``GET /v3/customers/{id}`` (404 when unknown): the customer's record (a customer born at Asaas's checkout
  is planted with ``add_customer``);
- ``GET /v3/payments/{id}/pixQrCode`` (``payload``, ``encodedImage``, ``expirationDate``; PIX, BOLETO and
  UNDEFINED charges, and only for an account with a Pix key) and ``GET /v3/payments/{id}/identificationField``
  (the boleto's linha digitável; BOLETO and UNDEFINED); payments carry ``bankSlipUrl`` when they have a
  boleto, and keep the ``fine`` and ``interest`` percentages they were created with;
- ``GET /v3/myAccount/commercialInfo/``: the account's company data (what a connection test reads);
- an unknown query parameter is a 400 here (Asaas ignores it silently, which would hide a typo of ours).

Payments carry ``subscription`` (the ``sub_...`` id of the subscription that generated them, else null), as
Asaas's payment object does; ``plant`` takes it, and ``settle`` marks a planted payment received later.

Renegotiations and repairs (issue 17): ``POST /v3/payments`` with ``installmentCount`` and ``totalValue`` (or
``installmentValue``) creates an instalment plan, one payment a month from ``dueDate``, each with
``installment`` (the plan's id) and ``installmentNumber``, the total split in cents with the remainder on the
last; the answer is the first payment. ``GET /v3/payments?installment=`` lists a plan;
``DELETE /v3/payments/{id}`` answers ``{"deleted": true, "id": ...}`` (404 when unknown or already deleted).
``mark_overdue`` turns a pending payment OVERDUE; ``hook`` builds the webhook body Asaas would POST
(``{"id": "evt_...", "event": ..., "dateCreated": ..., "payment": {...}}``).

Switches: ``fail`` answers some requests with a 5xx and does nothing; ``cut_after_create`` creates the next
payment and then drops the connection before the answer (the provider acted, we never heard); ``plant``
puts a payment in an account as if the customer had paid it. ``calls`` is the log of every request.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qs

from backoffice.connectors.directory import ConnectorDirectory
from backoffice.tenants.connections import install_directory
from backoffice.web.entry.wiring import DOMAIN_PORTS
from tests.connectors.conftest import FAST_HTTP, connector_settings, make_instance
from tests.connectors.conftest import read_request
from tests.connectors.conftest import serving as serve

RECEIVED = ("RECEIVED", "CONFIRMED", "RECEIVED_IN_CASH")
BILLING_TYPES = {"UNDEFINED", "BOLETO", "CREDIT_CARD", "PIX"}
CUSTOMER_FILTERS = {"name", "email", "cpfCnpj", "groupName", "externalReference", "offset", "limit"}
PAYMENT_FILTERS = {
    "customer", "customerGroupName", "billingType", "status", "subscription", "installment", "externalReference",
    "paymentDate", "estimatedCreditDate", "pixQrCodeId", "anticipated", "anticipable", "dateCreated[ge]",
    "dateCreated[le]", "paymentDate[ge]", "paymentDate[le]", "estimatedCreditDate[ge]", "estimatedCreditDate[le]",
    "dueDate[ge]", "dueDate[le]", "user", "offset", "limit",
}
PAYMENT_PATH = re.compile(r"^/v3/payments/(pay_[A-Za-z0-9]+)$")
CUSTOMER_PATH = re.compile(r"^/v3/customers/(cus_[A-Za-z0-9]+)$")
PIX_PATH = re.compile(r"^/v3/payments/(pay_[A-Za-z0-9]+)/pixQrCode$")
BOLETO_LINE_PATH = re.compile(r"^/v3/payments/(pay_[A-Za-z0-9]+)/identificationField$")
# A 1x1 PNG: what ``encodedImage`` carries is a base64 PNG of the QR code.
QR_PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")


class Cut(Exception):
    """Raised inside the app to drop the connection after the answer's headers."""


@dataclass
class Account:
    token: str
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    refused_tax_ids: set[str] = field(default_factory=set)
    pix_key: bool = True  # an account without a Pix key gets no Pix QR code (pixQrCode answers 400)
    company_name: str = "Empresa de Teste Ltda"  # GET /v3/myAccount/commercialInfo/
    cpf_cnpj: str = "11222333000181"


@dataclass
class Call:
    token: str | None
    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int = 0


@dataclass
class Failure:
    method: str
    path: str
    times: int
    status: int
    token: str | None


class FakeAsaas:
    def __init__(self) -> None:
        self.url = ""
        self.page_cap = 2
        self.today: Callable[[], date] | None = None  # Asaas's today, for the due-date check
        self.accounts: dict[str, Account] = {}
        self.log: list[Call] = []
        self._failures: list[Failure] = []
        self._cuts = 0
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    # --- what tests set up and read -------------------------------------------------------------------------

    def account(self, token: str) -> Account:
        with self._lock:
            return self.accounts.setdefault(token, Account(token))

    def fail(self, method: str, path: str, *, times: int = 1, status: int = 503, token: str | None = None) -> None:
        with self._lock:
            self._failures.append(Failure(method, path, times, status, token))

    def cut_after_create(self, times: int = 1) -> None:
        with self._lock:
            self._cuts += times

    def plant(self, token: str, *, customer: str, value: str, status: str = "RECEIVED",
              payment_date: str | None = None, external_reference: str | None = None,
              description: str | None = None, due_date: str | None = None,
              subscription: str | None = None) -> dict[str, Any]:
        """A payment in ``token``'s account, received (or not) as the test says."""
        account = self.account(token)
        with self._lock:
            payment = self._payment(account, customer=customer, value=Decimal(value), billing_type="PIX",
                                    due_date=due_date or payment_date or "2026-11-01", description=description,
                                    external_reference=external_reference)
            payment["status"] = status
            payment["subscription"] = subscription
            if status in RECEIVED:
                payment.update(paymentDate=payment_date, clientPaymentDate=payment_date, confirmedDate=payment_date)
            return dict(payment)

    def settle(self, token: str, payment_id: str, *, payment_date: str, status: str = "RECEIVED") -> dict[str, Any]:
        """The customer paid ``payment_id`` (an overdue one, say) on ``payment_date``."""
        with self._lock:
            payment = self.accounts[token].payments[payment_id]
            payment.update(status=status, paymentDate=payment_date, clientPaymentDate=payment_date,
                           confirmedDate=payment_date)
            return dict(payment)

    def add_customer(self, token: str, *, name: str, cpf_cnpj: str, external_reference: str | None = None,
                     email: str | None = None) -> dict[str, Any]:
        """A customer registered at Asaas directly (its checkout, a payment link, by hand)."""
        account = self.account(token)
        with self._lock:
            return dict(self._customer(account, name=name, cpf_cnpj=cpf_cnpj, email=email,
                                       external_reference=external_reference))

    def calls(self, method: str | None = None, path: str | None = None, token: str | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self.log if (method is None or c.method == method)
                    and (path is None or c.path == path) and (token is None or c.token == token)]

    # --- the API -------------------------------------------------------------------------------------------

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        raw, headers = await read_request(scope, receive)
        query = {k: v[-1] for k, v in parse_qs(scope["query_string"].decode(), keep_blank_values=True).items()}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        call = Call(headers.get("access_token"), scope["method"], scope["path"], query, body)
        with self._lock:
            self.log.append(call)
            try:
                status, answer = self._answer(call)
            except Cut:
                call.status = -1
                cut = True
            else:
                call.status, cut = status, False
        if cut:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")]})
            await send({"type": "http.response.body", "body": b'{"object": "payment", ', "more_body": True})
            raise Cut("connection dropped after the payment was created")
        payload = json.dumps(answer).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": payload})

    def _answer(self, call: Call) -> tuple[int, Any]:
        account = self.accounts.get(call.token or "")
        if account is None:
            return 401, {"errors": [{"code": "invalid_access_token", "description": "A chave de API informada é inválida."}]}
        for failure in self._failures:
            if (failure.times > 0 and failure.method == call.method and failure.path == call.path
                    and failure.token in (None, call.token)):
                failure.times -= 1
                return failure.status, {"errors": [{"code": "unavailable", "description": "Serviço indisponível."}]}
        route = (call.method, call.path)
        if route == ("POST", "/v3/customers"):
            return self._create_customer(account, call.body or {})
        if route == ("GET", "/v3/customers"):
            return self._list(call.query, CUSTOMER_FILTERS, account.customers.values(), {
                "externalReference": "externalReference", "cpfCnpj": "cpfCnpj", "name": "name", "email": "email"})
        if route == ("POST", "/v3/payments") and (call.body or {}).get("installmentCount") is not None:
            return self._create_installment(account, call.body or {})
        if route == ("POST", "/v3/payments"):
            return self._create_payment(account, call.body or {})
        if route == ("GET", "/v3/payments"):
            return self._list_payments(account, call.query)
        if route == ("GET", "/v3/myAccount/commercialInfo/"):
            return 200, {"object": "commercialInfo", "personType": "JURIDICA", "companyName": account.company_name,
                         "name": account.company_name, "cpfCnpj": account.cpf_cnpj, "email": "financeiro@example.com"}
        customer_match = CUSTOMER_PATH.match(call.path)
        if call.method == "GET" and customer_match:
            customer = account.customers.get(customer_match.group(1))
            if customer is None:
                return 404, {"errors": [{"code": "not_found", "description": "Cliente não encontrado."}]}
            return 200, customer
        pix_match = PIX_PATH.match(call.path)
        if call.method == "GET" and pix_match:
            return self._pix(account, pix_match.group(1))
        line_match = BOLETO_LINE_PATH.match(call.path)
        if call.method == "GET" and line_match:
            return self._boleto_line(account, line_match.group(1))
        match = PAYMENT_PATH.match(call.path)
        if call.method == "DELETE" and match:
            payment = account.payments.get(match.group(1))
            if payment is None or payment["deleted"]:
                return 404, {"errors": [{"code": "not_found", "description": "Cobrança não encontrada."}]}
            payment["deleted"] = True
            return 200, {"deleted": True, "id": payment["id"]}
        if call.method == "GET" and match:
            payment = account.payments.get(match.group(1))
            if payment is None:
                return 404, {"errors": [{"code": "not_found", "description": "Cobrança não encontrada."}]}
            return 200, payment
        return 404, {"errors": [{"code": "not_found", "description": f"{call.method} {call.path} não existe."}]}

    def _pix(self, account: Account, payment_id: str) -> tuple[int, Any]:
        """``GET /v3/payments/{id}/pixQrCode``: Pix is offered for PIX, BOLETO and UNDEFINED charges."""
        payment = account.payments.get(payment_id)
        if payment is None or payment["deleted"]:
            return 404, {"errors": [{"code": "not_found", "description": "Cobrança não encontrada."}]}
        if payment["billingType"] not in ("PIX", "BOLETO", "UNDEFINED"):
            return self._refusal("invalid_billingType", "Esta cobrança não aceita Pix.")
        if not account.pix_key:
            return self._refusal("invalid_action", "Não há chave Pix cadastrada para gerar o QR Code.")
        number = payment_id.removeprefix("pay_")
        return 200, {"encodedImage": QR_PNG, "payload": pix_payload(number, payment["value"]),
                     "expirationDate": f"{int(payment['dueDate'][:4]) + 1}{payment['dueDate'][4:]} 23:59:59"}

    def _boleto_line(self, account: Account, payment_id: str) -> tuple[int, Any]:
        """``GET /v3/payments/{id}/identificationField``: the boleto's linha digitável (BOLETO, UNDEFINED)."""
        payment = account.payments.get(payment_id)
        if payment is None or payment["deleted"]:
            return 404, {"errors": [{"code": "not_found", "description": "Cobrança não encontrada."}]}
        if payment["billingType"] not in ("BOLETO", "UNDEFINED"):
            return self._refusal("invalid_billingType", "Esta cobrança não possui boleto.")
        return 200, {"identificationField": boleto_line(payment_id), "nossoNumero": payment_id[-8:],
                     "barCode": "0" * 44}

    @staticmethod
    def _refusal(code: str, description: str) -> tuple[int, Any]:
        return 400, {"errors": [{"code": code, "description": description}]}

    def _create_customer(self, account: Account, body: dict[str, Any]) -> tuple[int, Any]:
        if not body.get("name"):
            return self._refusal("invalid_name", "O nome do cliente deve ser informado.")
        tax_id = re.sub(r"\D", "", str(body.get("cpfCnpj") or ""))
        if len(tax_id) not in (11, 14) or tax_id in account.refused_tax_ids:
            return self._refusal("invalid_cpfCnpj", "O CPF/CNPJ informado é inválido.")
        return 200, self._customer(account, name=body["name"], cpf_cnpj=tax_id, email=body.get("email"),
                                   external_reference=body.get("externalReference"))

    def _customer(self, account: Account, *, name: str, cpf_cnpj: str, email: str | None,
                  external_reference: str | None) -> dict[str, Any]:
        customer = {"object": "customer", "id": f"cus_{next(self._ids):012d}", "name": name, "cpfCnpj": cpf_cnpj,
                    "email": email, "externalReference": external_reference, "deleted": False,
                    "personType": "FISICA" if len(cpf_cnpj) == 11 else "JURIDICA"}
        account.customers[customer["id"]] = customer
        return customer

    def _create_payment(self, account: Account, body: dict[str, Any]) -> tuple[int, Any]:
        if body.get("customer") not in account.customers:
            return self._refusal("invalid_customer", "Customer inválido ou não informado.")
        if body.get("billingType") not in BILLING_TYPES:
            return self._refusal("invalid_billingType", "Forma de pagamento inválida.")
        try:
            value = Decimal(str(body.get("value")))
            due = date.fromisoformat(str(body.get("dueDate")))
        except (InvalidOperation, ValueError):
            return self._refusal("invalid_object", "Valor ou data de vencimento inválidos.")
        if not value.is_finite() or value <= 0:
            return self._refusal("invalid_value", "O valor da cobrança deve ser maior que zero.")
        if self.today is not None and due < self.today():
            return self._refusal("invalid_dueDate", "A data de vencimento não pode ser anterior à data atual.")
        payment = self._payment(account, customer=body["customer"], value=value, billing_type=body["billingType"],
                                due_date=due.isoformat(), description=body.get("description"),
                                external_reference=body.get("externalReference"))
        for name in ("fine", "interest"):  # percentages, as the billing routine sends them
            if isinstance(body.get(name), dict):
                payment[name] = {"value": float(body[name].get("value") or 0), "type": "PERCENTAGE"}
        if self._cuts:
            self._cuts -= 1
            raise Cut
        return 200, payment

    def _payment(self, account: Account, *, customer: str, value: Decimal, billing_type: str, due_date: str,
                 description: str | None, external_reference: str | None) -> dict[str, Any]:
        number = next(self._ids)
        payment = {
            "object": "payment", "id": f"pay_{number:012d}", "customer": customer, "value": float(value),
            "netValue": float(value - Decimal("0.99")), "billingType": billing_type, "status": "PENDING",
            "dueDate": due_date, "originalDueDate": due_date, "description": description,
            "externalReference": external_reference, "invoiceUrl": f"{self.url}/i/{number:012d}",
            "subscription": None, "paymentDate": None, "clientPaymentDate": None, "confirmedDate": None, "deleted": False,
            "bankSlipUrl": f"{self.url}/b/pdf/{number:012d}" if billing_type in ("BOLETO", "UNDEFINED") else None,
            "fine": {"value": 0, "type": "PERCENTAGE"}, "interest": {"value": 0, "type": "PERCENTAGE"},
        }
        account.payments[payment["id"]] = payment
        return payment

    def _create_installment(self, account: Account, body: dict[str, Any]) -> tuple[int, Any]:
        if body.get("customer") not in account.customers:
            return self._refusal("invalid_customer", "Customer inválido ou não informado.")
        if body.get("billingType") not in BILLING_TYPES:
            return self._refusal("invalid_billingType", "Forma de pagamento inválida.")
        try:
            count = int(body["installmentCount"])
            due = date.fromisoformat(str(body.get("dueDate")))
            if body.get("totalValue") is not None:
                total = round(Decimal(str(body["totalValue"])) * 100)
            else:
                total = round(Decimal(str(body.get("installmentValue"))) * 100) * count
        except (InvalidOperation, ValueError, TypeError):
            return self._refusal("invalid_object", "Parcelamento, valor ou data de vencimento inválidos.")
        if not 1 <= count <= 24:
            return self._refusal("invalid_installmentCount", "O número de parcelas deve ser de 1 a 24.")
        if total <= 0:
            return self._refusal("invalid_value", "O valor da cobrança deve ser maior que zero.")
        if self.today is not None and due < self.today():
            return self._refusal("invalid_dueDate", "A data de vencimento não pode ser anterior à data atual.")
        plan = str(uuid.uuid4())
        share, rest = divmod(int(total), count)
        first = None
        for number in range(1, count + 1):
            month = due.month - 1 + number - 1
            day = date(due.year + month // 12, month % 12 + 1, min(due.day, 28))
            cents = share + (rest if number == count else 0)
            payment = self._payment(account, customer=body["customer"], value=Decimal(cents) / 100,
                                    billing_type=body["billingType"], due_date=day.isoformat(),
                                    description=body.get("description"),
                                    external_reference=body.get("externalReference"))
            payment.update(installment=plan, installmentNumber=number)
            first = first or payment
        return 200, first

    def mark_overdue(self, token: str, payment_id: str) -> dict[str, Any]:
        """A pending payment passed its due date unpaid (Asaas turns it OVERDUE and sends PAYMENT_OVERDUE)."""
        with self._lock:
            payment = self.accounts[token].payments[payment_id]
            payment["status"] = "OVERDUE"
            return dict(payment)

    def hook(self, token: str, event: str, payment_id: str) -> dict[str, Any]:
        """The body Asaas POSTs for ``event`` about ``payment_id`` (a fresh ``evt_`` id each time, as Asaas's
        event ids are per delivery of an event, kept across its retries)."""
        with self._lock:
            payment = dict(self.accounts[token].payments[payment_id])
        return {"id": f"evt_{uuid.uuid4().hex}&{next(self._ids)}", "event": event,
                "dateCreated": "2026-11-02 10:00:00", "payment": payment}

    def _list_payments(self, account: Account, query: dict[str, str]) -> tuple[int, Any]:
        entries = list(account.payments.values())
        low, high = query.get("paymentDate[ge]"), query.get("paymentDate[le]")
        if low or high:
            entries = [p for p in entries if p["paymentDate"] and (not low or p["paymentDate"] >= low)
                       and (not high or p["paymentDate"] <= high)]
        return self._list(query, PAYMENT_FILTERS, entries, {
            "externalReference": "externalReference", "customer": "customer", "status": "status",
            "billingType": "billingType", "installment": "installment"})

    def _list(self, query: dict[str, str], known: set[str], entries, exact: dict[str, str]) -> tuple[int, Any]:
        unknown = sorted(set(query) - known)
        if unknown:
            return self._refusal("invalid_parameter", f"Parâmetro desconhecido: {', '.join(unknown)}.")
        try:
            offset, limit = int(query.get("offset", 0)), int(query.get("limit", 10))
        except ValueError:
            return self._refusal("invalid_parameter", "offset e limit devem ser números.")
        if limit > 100:
            return self._refusal("invalid_parameter", "O limite máximo é 100.")
        limit = min(limit, self.page_cap)
        chosen = [e for e in entries if not e.get("deleted")
                  and all(e.get(attribute) == query[name] for name, attribute in exact.items() if name in query)]
        page = chosen[offset:offset + limit]
        return 200, {"object": "list", "hasMore": offset + len(page) < len(chosen), "totalCount": len(chosen),
                     "limit": limit, "offset": offset, "data": page}


def pix_payload(number: str, value: float) -> str:
    """A Pix copia-e-cola (BR Code, EMV) of the charge's shape: what Asaas's ``payload`` carries."""
    amount = f"{value:.2f}"
    return (f"00020101021226820014br.gov.bcb.pix2560pix.example.com/qr/v2/cobv/{number}"
            f"520400005303986540{len(amount)}{amount}5802BR5905ASAAS6009SAO PAULO62070503***6304ABCD")


def boleto_line(payment_id: str) -> str:
    """A linha digitável of 47 digits, as Asaas's ``identificationField`` answers."""
    digits = re.sub(r"\D", "", payment_id).rjust(12, "0")
    return f"00190.00009 0{digits[:4]}.{digits[4:9]}0 {digits[9:12]}00.000000 1 0000000000{digits[-4:]}"


@contextmanager
def serving(fake: FakeAsaas) -> Iterator[FakeAsaas]:
    """Run ``fake`` on a loopback port while the block runs."""
    with serve(fake):
        yield fake


@contextmanager
def gateway_options(database, **http_options: Any) -> Iterator[ConnectorDirectory]:
    """The routines' connection directory with short backoff, reading the connectors' secrets with the test
    database's settings (workers use the process's), put back as it was afterwards.

    No test through it plays a slow provider, so its timeout is not FAST_HTTP's half second: on a loaded
    machine a call to the stand-in once took longer, and a billing test saw a timeout it was not about."""
    directory = ConnectorDirectory(DOMAIN_PORTS, settings=connector_settings(database),
                                   **{**FAST_HTTP, "timeout": 5.0, **http_options})
    previous = install_directory(directory)
    try:
        yield directory
    finally:
        install_directory(previous)


async def connect(database, tenant_id, fake: FakeAsaas, token: str, name: str = "Asaas") -> Any:
    """The tenant's Asaas connector, on ``token``'s account at the fake."""
    fake.account(token)
    return await make_instance(database, tenant_id, "asaas",
                               {"base_url": fake.url, "api_key": token, "webhook_token": f"hook-{token}"}, name=name)

"""A local Focus NFe (NFS-e API v2) that keeps its notas, for the invoices routine's tests.

It follows https://focusnfe.com.br/doc/#nfse (FocusNFe/api-doc, ``_nfse.md``):

- HTTP Basic with the account's token as the user and an empty password, else 401;
- ``POST /v2/nfse?ref=REF``: checks the required fields (400 ``requisicao_invalida`` naming the first one
  missing), stores the nota as ``processando_autorizacao`` and answers 202. A ref it holds is refused:
  422 ``em_processamento`` while processing, 422 ``nfe_autorizada`` once authorised; a ref the city hall
  rejected may be sent again (the docs: "É possível reenviar a nota com a mesma referência");
- ``GET /v2/nfse/REF``: the nota's status (``autorizado`` with numero, codigo_verificacao, url,
  url_danfse and caminho_xml_nota_fiscal; ``erro_autorizacao`` with ``erros``), 404 ``nao_encontrado``.

The test plays the city hall (:meth:`FakeFocusNfe.process` authorises or rejects what is processing) and
the bad days (:meth:`refuse` a customer's notas with a 4xx, :meth:`fail_next` with 503s, before or after
storing the nota). Every request is kept in ``log``. Served under uvicorn on a loopback port, on its own
thread (:func:`serving`).
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from tests.connectors.conftest import read_request
from tests.connectors.conftest import serving as serve

REQUIRED = (("data_emissao",), ("prestador", "cnpj"), ("prestador", "inscricao_municipal"),
            ("prestador", "codigo_municipio"), ("servico", "valor_servicos"), ("servico", "iss_retido"),
            ("servico", "item_lista_servico"), ("servico", "discriminacao"), ("servico", "codigo_municipio"))


@dataclass
class Request:
    method: str
    path: str
    query: str
    auth: str | None
    body: Any


@dataclass
class Nota:
    ref: str
    body: dict[str, Any]
    status: str = "processando_autorizacao"
    numero: str | None = None
    erros: list[dict[str, Any]] = field(default_factory=list)
    sent: int = 1  # POSTs that Focus NFe accepted for this ref


@dataclass
class Failure:
    status: int
    after_store: bool


class FakeFocusNfe:
    def __init__(self, token: str, *, cnpj: str = "11222333000181") -> None:
        self.token, self.cnpj = token, cnpj
        self.url = ""
        self.notas: dict[str, Nota] = {}
        self.log: list[Request] = []
        self._lock = threading.Lock()
        self._numbers = iter(range(1001, 100_000))
        self._rejections: dict[str, list[dict[str, Any]]] = {}  # customer hex -> the city hall's erros
        self._refusals: dict[str, tuple[int, dict[str, Any]]] = {}  # customer hex -> (status, body) on POST
        self._failures: list[Failure] = []

    # --- what the test controls --------------------------------------------------------------------------

    def reject(self, customer_id: uuid.UUID, *erros: tuple[str, str]) -> None:
        """The city hall will reject this customer's notas with these (codigo, mensagem)."""
        with self._lock:
            self._rejections[customer_id.hex] = [{"codigo": c, "mensagem": m, "correcao": None} for c, m in erros]

    def forgive(self, customer_id: uuid.UUID) -> None:
        """The customer's data was fixed: no more rejections or refusals for their notas."""
        with self._lock:
            self._rejections.pop(customer_id.hex, None)
            self._refusals.pop(customer_id.hex, None)

    def refuse(self, customer_id: uuid.UUID, status: int, codigo: str, mensagem: str) -> None:
        """Focus NFe's own validation will refuse this customer's notas on POST."""
        with self._lock:
            self._refusals[customer_id.hex] = (status, {"codigo": codigo, "mensagem": mensagem})

    def fail_next(self, count: int, status: int = 503, *, after_store: bool = False) -> None:
        """The next ``count`` POSTs answer ``status``; ``after_store``: the nota was stored all the same
        (the answer was lost on the way back)."""
        with self._lock:
            self._failures.extend(Failure(status, after_store) for _ in range(count))

    def process(self) -> list[str]:
        """The city hall answers every nota processing: rejected as scripted, else authorised."""
        settled = []
        with self._lock:
            for nota in self.notas.values():
                if nota.status != "processando_autorizacao":
                    continue
                erros = self._rejections.get(nota.ref.split("-", 1)[0])
                if erros:
                    nota.status, nota.erros = "erro_autorizacao", erros
                else:
                    nota.status, nota.numero = "autorizado", str(next(self._numbers))
                settled.append(nota.ref)
        return settled

    def posts(self, ref: str | None = None) -> list[Request]:
        with self._lock:
            return [r for r in self.log if r.method == "POST" and (ref is None or r.query == f"ref={ref}")]

    def gets(self) -> list[Request]:
        with self._lock:
            return [r for r in self.log if r.method == "GET"]

    # --- the API -------------------------------------------------------------------------------------------

    def view(self, nota: Nota) -> dict[str, Any]:
        answer: dict[str, Any] = {"cnpj_prestador": self.cnpj, "ref": nota.ref, "numero_rps": str(nota.sent),
                                  "serie_rps": "1", "status": nota.status}
        if nota.status == "autorizado":
            answer.update({
                "numero": nota.numero, "codigo_verificacao": f"CV-{nota.numero}",
                "data_emissao": nota.body.get("data_emissao"),
                "url": f"https://nfse.prefeitura.example/nota?num={nota.numero}",
                "url_danfse": f"https://focus.example/notas/{nota.numero}.pdf",
                "caminho_xml_nota_fiscal": f"/arquivos/{self.cnpj}/XMLsNFSe/{nota.numero}-nfse.xml",
            })
        elif nota.status == "erro_autorizacao":
            answer["erros"] = nota.erros
        return answer

    def _answer(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, dict[str, Any]]:
        if method == "POST" and path == "/v2/nfse":
            return self._post(query.get("ref", [""])[0], body)
        if method == "GET" and path.startswith("/v2/nfse/"):
            nota = self.notas.get(path.removeprefix("/v2/nfse/"))
            if nota is None:
                return 404, {"codigo": "nao_encontrado", "mensagem": "Nota fiscal não encontrada"}
            return 200, self.view(nota)
        return 404, {"codigo": "nao_encontrado", "mensagem": "Endpoint não encontrado, verifique a documentação"}

    def _post(self, ref: str, body: Any) -> tuple[int, dict[str, Any]]:
        if not ref:
            return 400, {"codigo": "requisicao_invalida", "mensagem": "Parâmetro \"ref\" não informado"}
        if not isinstance(body, dict):
            return 400, {"codigo": "requisicao_invalida", "mensagem": "JSON inválido"}
        held = self.notas.get(ref)
        if held is not None and held.status == "processando_autorizacao":
            return 422, {"codigo": "em_processamento", "mensagem": "Nota fiscal em processamento"}
        if held is not None and held.status == "autorizado":
            return 422, {"codigo": "nfe_autorizada", "mensagem": "Nota fiscal já autorizada"}
        for path in REQUIRED:
            value: Any = body
            for key in path:
                value = value.get(key) if isinstance(value, dict) else None
            if value in (None, ""):
                return 400, {"codigo": "requisicao_invalida", "mensagem": f"Parâmetro \"{'.'.join(path)}\" não informado"}
        tomador = body.get("tomador") or {}
        if not (tomador.get("cpf") or tomador.get("cnpj")):
            return 400, {"codigo": "requisicao_invalida", "mensagem": "Parâmetro \"tomador.cpf\" ou \"tomador.cnpj\" não informado"}
        refusal = self._refusals.get(ref.split("-", 1)[0])
        if refusal:
            return refusal
        failure = self._failures.pop(0) if self._failures else None
        if failure is not None and not failure.after_store:
            return failure.status, {"codigo": "erro_interno", "mensagem": "Serviço temporariamente indisponível"}
        if held is not None:  # a rejected nota sent again: processed anew
            held.body, held.status, held.erros, held.sent = body, "processando_autorizacao", [], held.sent + 1
        else:
            self.notas[ref] = Nota(ref, body)
        if failure is not None:
            return failure.status, {"codigo": "erro_interno", "mensagem": "Serviço temporariamente indisponível"}
        return 202, {"cnpj_prestador": self.cnpj, "ref": ref, "status": "processando_autorizacao"}

    def _authorised(self, header: str | None) -> bool:
        expected = "Basic " + base64.b64encode(f"{self.token}:".encode()).decode()
        return header == expected

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        raw, headers = await read_request(scope, receive)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        query = scope["query_string"].decode()
        with self._lock:
            self.log.append(Request(scope["method"], scope["path"], query, headers.get("authorization"), body))
            if not self._authorised(headers.get("authorization")):
                status, answer = 401, {"codigo": "nao_autorizado", "mensagem": "Token inválido ou não informado"}
            else:
                status, answer = self._answer(scope["method"], scope["path"], parse_qs(query), body)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json; charset=utf-8")]})
        await send({"type": "http.response.body", "body": json.dumps(answer, ensure_ascii=False).encode()})


@contextmanager
def serving(fake: FakeFocusNfe) -> Iterator[FakeFocusNfe]:
    """Run ``fake`` on a loopback port while the block runs."""
    with serve(fake):
        yield fake

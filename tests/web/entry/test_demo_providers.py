"""The demo's provider stand-ins answer as the APIs do: only with the account's credential (Asaas's
``access_token``, Focus NFe's HTTP Basic token), the object the demo put in them, and the provider's 404
for anything else; over a real loopback socket, as the connectors reach them during the seed."""

from __future__ import annotations

import httpx

from backoffice.web.entry.demo_providers import ProviderStandIns


async def test_the_stand_ins_answer_only_their_accounts_credential_and_what_they_hold():
    stand_ins = await ProviderStandIns("asaas-key", "focus-token").start()
    stand_ins.payments["pay_1"] = {"id": "pay_1", "value": 199.9, "dueDate": "2026-12-10", "status": "PENDING"}
    stand_ins.notas["ref-1"] = {"ref": "ref-1", "status": "autorizado"}
    try:
        async with httpx.AsyncClient(base_url=stand_ins.url) as client:
            asaas = {"access_token": "asaas-key"}
            assert (await client.get("/v3/payments/pay_1", headers=asaas)).json()["status"] == "PENDING"
            line = (await client.get("/v3/payments/pay_1/identificationField", headers=asaas)).json()
            assert line["identificationField"].endswith("00000000019990")
            assert (await client.get("/v3/payments/pay_2", headers=asaas)).status_code == 404
            assert (await client.get("/v3/payments/pay_1", headers={"access_token": "other"})).status_code == 401
            assert (await client.get("/v2/nfse/ref-1", auth=("focus-token", ""))).json()["status"] == "autorizado"
            assert (await client.get("/v2/nfse/ref-2", auth=("focus-token", ""))).json()["codigo"] == "nao_encontrado"
            assert (await client.get("/v2/nfse/ref-1", auth=("asaas-key", ""))).status_code == 401
            assert (await client.post("/v3/payments", headers=asaas, json={})).status_code == 405
    finally:
        await stand_ins.close()

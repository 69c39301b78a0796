"""Onboarding a client company end to end in a real browser (Debian's chromium driven by Playwright): a
provider admin signs in with TOTP, creates the company (alphanumeric CNPJ), sets its branding with a logo,
asks for a custom host and verifies it against a local DNS server, adds an Asaas connector pointed at the
local Asaas stand-in and tests it (and a wrong key, whose refusal is shown), sets the late-payment policy
while the template preview follows the typing, and invites the first admin; the invited admin opens the
e-mailed link (taken from the outbox), sets a password and signs in to the new company's portal.
Screenshots of every step in pt-BR, and the flow's first page in English, go to tests/artifacts/."""

from __future__ import annotations

import re
import struct
import uuid
import zlib

import pytest
from sqlalchemy import select

from backoffice.tenants.effects.models import OutboundMessage
from backoffice.tenants.registry.models import Tenant
from backoffice.web.app import create_app
from tests.providers.dns import dns_server
from tests.providers.asaas import FakeAsaas, serving
from tests.web.console.conftest import PASSWORD, make_member
from tests.web.portal.test_browser import ARGS, ARTIFACTS, LiveServer, _chromium


def _png(width: int = 24, height: int = 24, rgb: tuple[int, int, int] = (10, 125, 90)) -> bytes:
    """A small solid PNG (a real one: signature, IHDR, IDAT, IEND) for the logo upload."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def shot(name: str):
    return ARTIFACTS / f"console-onboarding-{name}.png"


@pytest.mark.postgres_only
async def test_onboard_a_company_end_to_end_in_a_real_browser(database, tenants, tmp_path):
    from playwright.async_api import async_playwright, expect

    executable = _chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    ana = await make_member(database, email="ana@provider.example", name="Ana Lima", role="provider_admin")
    logo = tmp_path / "logo.png"
    logo.write_bytes(_png())
    with dns_server() as dns, serving(FakeAsaas()) as asaas:
        asaas.account("key-gama").company_name = "Gama Serviços Financeiros Ltda"
        settings = database.settings.model_copy(update={"dns_nameserver": dns.nameserver,
                                                        "allow_private_targets": True})
        async with LiveServer(create_app(settings)) as server, async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=executable, args=ARGS)
            try:
                page = await browser.new_page(viewport={"width": 1366, "height": 900}, locale="pt-BR")
                await page.goto(f"{server.url}/staff/login")
                await page.get_by_label("E-mail").fill(ana.email)
                await page.get_by_label("Senha").fill(PASSWORD)
                await page.get_by_label("Senha").press("Enter")
                await page.get_by_label("Código", exact=True).fill(ana.totp.code())
                await page.get_by_role("button", name="Entrar").click()
                await expect(page.get_by_role("heading", name="Visão geral")).to_be_visible()

                # 1. The company.
                await page.get_by_role("link", name="Nova empresa").click()
                await expect(page.get_by_role("heading", name="Implantar uma empresa cliente")).to_be_visible()
                await page.get_by_label("Razão social").fill("Gama Serviços Financeiros Ltda")
                await page.get_by_label("Nome fantasia").fill("Gama")
                await page.get_by_label("Nome no endereço (slug)").fill("gama")
                await page.get_by_label("CNPJ").fill("12.ABC.345/01DE-99")  # wrong check digits first
                await page.get_by_label("Fuso horário").fill("America/Recife")
                await page.get_by_role("button", name="Cadastrar a empresa e continuar").click()
                await expect(page.locator("#e-cnpj")).to_contain_text("dígitos verificadores não conferem")
                await page.screenshot(path=shot("1-company-refused-pt-BR"), full_page=True)
                await page.get_by_label("CNPJ").fill("12.ABC.345/01DE-35")
                await page.screenshot(path=shot("1-company-pt-BR"), full_page=True)
                await page.get_by_role("button", name="Cadastrar a empresa e continuar").click()

                # 2. Branding, with its preview following the colour.
                await expect(page.get_by_role("heading", name="2. Identidade visual")).to_be_visible()
                tenant_id = re.search(r"/staff/onboarding/([0-9a-f-]{36})/", page.url).group(1)
                await page.locator("#f-primary").fill("#0a7d5a")
                await page.locator("#f-logo").set_input_files(str(logo))
                preview_colour = await page.locator(".bp-top").evaluate("e => getComputedStyle(e).backgroundColor")
                assert preview_colour == "rgb(10, 125, 90)"
                await page.screenshot(path=shot("2-branding-pt-BR"), full_page=True)
                await page.get_by_role("button", name="Salvar e continuar").click()

                # 3. Custom host, verified by its TXT record.
                await expect(page.get_by_role("heading", name="3. Domínio próprio")).to_be_visible()
                await page.get_by_label("Nome do host").fill("portal.gama.example")
                await page.get_by_role("button", name="Solicitar este domínio").click()
                name, value = await page.locator("#txt-name").inner_text(), await page.locator("#txt-value").inner_text()
                assert name == "_backoffice-verify.portal.gama.example" and value.startswith("bo-verify=")
                await page.get_by_role("button", name="Verificar").click()
                await expect(page.locator("#verify-error")).to_contain_text("nenhum registro TXT")
                await page.screenshot(path=shot("3-host-waiting-pt-BR"), full_page=True)
                dns.publish(name, value)
                await page.get_by_role("button", name="Verificar").click()
                await expect(page.get_by_text("Verificado: o portal agora responde em portal.gama.example.")).to_be_visible()
                await page.screenshot(path=shot("3-host-verified-pt-BR"), full_page=True)
                await page.get_by_role("link", name="Continuar").click()

                # 4. Connectors: Asaas at the local stand-in, tested; a wrong key's refusal shown too.
                await expect(page.get_by_role("heading", name="4. Conectores")).to_be_visible()
                for label, key in (("Asaas", "key-gama"), ("Asaas chave errada", "key-wrong")):
                    await page.locator("#f-kind").select_option("asaas")
                    await page.get_by_role("button", name="Escolher").click()
                    await page.get_by_label("Nome", exact=True).fill(label)
                    await page.locator("#c-base_url").fill(asaas.url)
                    await page.locator("#c-api_key").fill(key)
                    await page.locator("#c-webhook_token").fill(f"hook-{key}")
                    await page.locator("#f-host_override").fill("127.0.0.1")
                    if label == "Asaas":
                        await page.screenshot(path=shot("4-connector-form-pt-BR"), full_page=True)
                    await page.get_by_role("button", name="Adicionar o conector").click()
                    await expect(page.get_by_role("row", name=re.compile(label))).to_be_visible()
                good = page.get_by_role("row", name=re.compile(r"^Asaas Asaas"))
                await good.get_by_role("button", name="Testar conexão").click()
                await expect(good.get_by_text("Conectado")).to_be_visible()
                await expect(good.get_by_text("funcionando")).to_be_visible()  # the health cell follows
                await expect(good.get_by_text("Gama Serviços Financeiros Ltda")).to_be_visible()
                bad = page.get_by_role("row", name=re.compile("chave errada"))
                await bad.get_by_role("button", name="Testar conexão").click()
                await expect(bad.get_by_text("Falhou")).to_be_visible()
                await expect(bad.get_by_text("A chave de API informada é inválida.")).to_be_visible()
                assert "key-wrong" not in await page.content()  # a secret is never shown back
                await page.screenshot(path=shot("4-connectors-tested-pt-BR"), full_page=True)
                assert [c.token for c in asaas.calls("GET", "/v3/myAccount/commercialInfo/")] == ["key-gama",
                                                                                                  "key-wrong"]
                await page.get_by_role("button", name="Continuar").click()

                # 5. Late payment and a template, the preview following the typing (htmx).
                await expect(page.get_by_role("heading", name="5. Inadimplência")).to_be_visible()
                await page.get_by_label("Dias de carência após o vencimento").fill("7")
                await page.get_by_label("Título ou assunto").fill("{{ tenant.display_name }}: pagamento de {{ customer.name }}")
                await page.get_by_label("Corpo", exact=True).fill(
                    "Olá, {{ customer.name }}. A cobrança de {{ charge.amount_cents|money }} vence em {{ deadline_at|date }}.")
                await expect(page.locator("#preview .preview-title")).to_have_text("Gama: pagamento de Casa do Pão Ltda")
                await expect(page.locator("#preview .preview-body")).to_contain_text("R$ 1.234,56")
                await page.screenshot(path=shot("5-policy-preview-pt-BR"), full_page=True)
                await page.get_by_role("button", name="Salvar a política e continuar").click()

                # 6. The first admin.
                await expect(page.get_by_role("heading", name="6. O primeiro administrador")).to_be_visible()
                await page.get_by_label("Nome", exact=True).fill("Rita Gama")
                await page.get_by_label("E-mail", exact=True).fill("rita@gama.example")
                await page.screenshot(path=shot("6-admin-pt-BR"), full_page=True)
                await page.get_by_role("button", name="Enviar o convite").click()
                await expect(page.get_by_text("Convite enviado para rita@gama.example.")).to_be_visible()
                await expect(page.get_by_role("heading", name="Implantação concluída")).to_be_visible()
                await page.screenshot(path=shot("7-done-pt-BR"), full_page=True)

                await page.get_by_role("link", name="Configurações da empresa").click()
                await expect(page.get_by_role("heading", name="Configurações de Gama")).to_be_visible()
                await page.screenshot(path=shot("8-settings-pt-BR"), full_page=True)

                # The flow's first page in English.
                await page.locator("#locale-choice").select_option("en")
                await page.get_by_role("button", name="Trocar").click()
                await page.goto(f"{server.url}/staff/onboarding")
                await expect(page.get_by_role("heading", name="Onboard a client company")).to_be_visible()
                await page.screenshot(path=shot("1-company-en"), full_page=True)

                # The invited admin: the link from the e-mail in the outbox, a password, the portal.
                async with database.provider(uuid.UUID(tenant_id)) as session:
                    email = (await session.execute(select(OutboundMessage).where(
                        OutboundMessage.target == "rita@gama.example"))).scalar_one()
                link = re.search(r"http://\S+/gama/password/reset/\S+", email.payload["text"]).group(0)
                invited = await browser.new_page(viewport={"width": 1200, "height": 800}, locale="pt-BR")
                await invited.goto(link)
                await invited.locator("#password").fill("uma-senha-bem-longa-da-rita")
                await invited.locator("#password_confirm").fill("uma-senha-bem-longa-da-rita")
                await invited.screenshot(path=shot("9-invited-sets-password-pt-BR"), full_page=True)
                await invited.get_by_role("button", name="Salvar a nova senha").click()
                await invited.get_by_label("E-mail").fill("rita@gama.example")
                await invited.get_by_label("Senha").fill("uma-senha-bem-longa-da-rita")
                await invited.get_by_role("button", name="Entrar").click()
                await expect(invited.get_by_role("heading", name="Painel")).to_be_visible()
                await invited.screenshot(path=shot("10-invited-admin-portal-pt-BR"), full_page=True)
            finally:
                await browser.close()
    async with database.system() as session:
        tenant = await session.get(Tenant, uuid.UUID(tenant_id))
        assert tenant.custom_host == "portal.gama.example" and tenant.logo_content_type == "image/png"
        assert tenant.branding["primary"] == "#0a7d5a" and tenant.onboarding_steps[-1] == "admin"

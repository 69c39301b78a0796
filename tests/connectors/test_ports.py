"""E-mail and chat ports through the real delivery job: a local aiosmtpd server (plain + AUTH, STARTTLS,
implicit TLS with a certificate made here) and the local provider HTTP server as the chat webhook."""

from __future__ import annotations

import email
import ssl
import uuid
from email import policy

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from sqlalchemy import select

from backoffice.connectors.chat import ChatPort
from backoffice.connectors.models import ConnectorInstance, Health
from backoffice.connectors.smtp import SmtpPort
from backoffice.tenants.effects.jobs import deliver
from backoffice.tenants.effects.models import Channel, DeliveryStatus, OutboundMessage
from backoffice.tenants.effects.ports import RecordingPort, set_port
from tests.providers.certs import self_signed
from tests.connectors.conftest import FAST_HTTP, Answer, connector_settings, free_port, make_instance

PASSWORD = "smtp-pass-Qw3rty!"


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []
        self.connections = 0

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.connections += 1  # once per connection (aiosmtplib greets once, again only after STARTTLS)
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("gone@"):
            return "550 5.1.1 mailbox unavailable"
        if address.startswith("busy@"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((list(envelope.rcpt_tos), email.message_from_bytes(envelope.content, policy=policy.default)))
        return "250 2.0.0 queued as 42"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == b"aurora" and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself


def tls_context(tmp_path) -> ssl.SSLContext:
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


@pytest.fixture
def smtp_server():
    servers = []

    def start(**options) -> tuple[Inbox, int]:
        inbox, port = Inbox(), free_port()
        controller = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=authenticator,
                                auth_required=True, auth_require_tls=False, **options)
        controller.start()
        servers.append(controller)
        return inbox, port

    yield start
    for controller in servers:
        controller.stop()


@pytest.fixture
def ports(database):
    settings = connector_settings(database)
    fallback = {Channel.EMAIL: RecordingPort(Channel.EMAIL), Channel.CHAT: RecordingPort(Channel.CHAT)}
    installed = {Channel.EMAIL: SmtpPort(settings=settings, fallback=fallback[Channel.EMAIL]),
                 Channel.CHAT: ChatPort(settings=settings, fallback=fallback[Channel.CHAT], http_options=FAST_HTTP)}
    previous = {channel: set_port(channel, port) for channel, port in installed.items()}
    yield fallback
    for channel, port in previous.items():
        set_port(channel, port)


def smtp_config(port: int, **extra) -> dict:
    return {"host": "127.0.0.1", "port": port, "security": "none", "username": "aurora", "password": PASSWORD,
            "sender_address": "cobranca@aurora.example", "sender_name": "Aurora Cobrança",
            "reply_to": "financeiro@aurora.example", "timeout_seconds": 5, **extra}


async def send(database, tenant_id, channel: Channel, payload: dict) -> OutboundMessage:
    async with database.tenant(tenant_id) as session:
        message = OutboundMessage(effect_key=f"test:{uuid.uuid4()}", channel=channel, target=payload.get("to"),
                                  payload=payload)
        session.add(message)
        await session.flush()
        await deliver(session, tenant_id=tenant_id, message_id=str(message.id))
    async with database.tenant(tenant_id) as session:
        return await session.get(OutboundMessage, (tenant_id, message.id))


EMAIL = {"kind": "dunning.notice", "to": "cliente@example.com", "to_name": "Cliente Exemplo",
         "subject": "Pagamento em atraso", "text": "Olá,\n\nsua fatura <script>venceu</script> em 01/11."}


async def test_email_leaves_through_the_tenants_smtp_server_with_auth(database, tenants, ports, smtp_server):
    inbox, port = smtp_server()
    await make_instance(database, tenants.a.id, "smtp", smtp_config(port))
    message = await send(database, tenants.a.id, Channel.EMAIL, EMAIL)
    assert message.status == DeliveryStatus.SENT, message.last_error
    assert "queued as 42" in message.response["smtp"]
    [(recipients, mail)] = inbox.messages
    assert recipients == ["cliente@example.com"]
    assert mail["From"] == "Aurora Cobrança <cobranca@aurora.example>"
    assert mail["Reply-To"] == "financeiro@aurora.example" and mail["Subject"] == "Pagamento em atraso"
    assert mail.get_content_type() == "multipart/alternative"
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert "<script>venceu</script>" in text
    assert "&lt;script&gt;venceu&lt;/script&gt;" in html and "<script>" not in html
    # The boundary is ours ("=_..."), safe only because no part is sent as raw text: "=_" never occurs in
    # base64 (nor in quoted-printable); a part in 8bit could contain it and end the part early.
    assert mail.get_boundary().startswith("=_")
    assert [part["Content-Transfer-Encoding"] for part in mail.get_payload()] == ["base64", "base64"]
    # Tenant B has no e-mail connector: nothing of A's reaches it, and A's server saw only A's mail.
    other = await send(database, tenants.b.id, Channel.EMAIL, EMAIL)
    assert len(inbox.messages) == 1
    assert other.status in (DeliveryStatus.DEAD, DeliveryStatus.SENT)


async def test_a_delivery_batch_shares_its_connections_and_one_refusal_is_that_message_s_only(
        database, tenants, ports, smtp_server):
    """Nine e-mails of one batch go over at most LANES connections (a connection per message cost a connect,
    the outbound check, EHLO and QUIT each); a recipient refused mid-way fails its own message and the
    connection goes on with the next (the envelope reset); every other message is sent once."""
    from backoffice.connectors.smtp import LANES
    from backoffice.tenants.effects.jobs import deliver_batch
    from backoffice.platform.worker.jobs import BatchItem

    inbox, port = smtp_server()
    await make_instance(database, tenants.a.id, "smtp", smtp_config(port))
    recipients = [f"c{n}@example.com" for n in range(9)]
    recipients[4] = "gone@example.com"
    async with database.tenant(tenants.a.id) as session:
        messages = [OutboundMessage(effect_key=f"test:batch:{n}", channel=Channel.EMAIL, target=to,
                                    payload={**EMAIL, "to": to}) for n, to in enumerate(recipients)]
        session.add_all(messages)
        await session.flush()
        ids = [m.id for m in messages]
    async with database.provider(tenants.a.id) as session:
        await deliver_batch(session, tenant_id=tenants.a.id,
                            items=[BatchItem(outbox_id=None, attempts=1, payload={"message_id": str(i)}) for i in ids])
    async with database.tenant(tenants.a.id) as session:
        stored = {m.id: m for m in (await session.execute(
            select(OutboundMessage).where(OutboundMessage.id.in_(ids)))).scalars()}
    statuses = [stored[i].status for i in ids]
    assert statuses == [DeliveryStatus.SENT] * 4 + [DeliveryStatus.DEAD] + [DeliveryStatus.SENT] * 4, \
        [stored[i].last_error for i in ids]
    assert "550" in stored[ids[4]].last_error
    assert sorted(to for [to], _ in inbox.messages) == sorted(r for r in recipients if not r.startswith("gone@"))
    assert 1 <= inbox.connections <= LANES


async def test_smtp_failures_map_to_retry_or_dead_letter_with_the_reason(database, tenants, ports, smtp_server):
    inbox, port = smtp_server()
    instance_id = await make_instance(database, tenants.a.id, "smtp", smtp_config(port))
    gone = await send(database, tenants.a.id, Channel.EMAIL, {**EMAIL, "to": "gone@example.com"})
    busy = await send(database, tenants.a.id, Channel.EMAIL, {**EMAIL, "to": "busy@example.com"})
    assert gone.status == DeliveryStatus.DEAD and "550" in gone.last_error
    assert busy.status == DeliveryStatus.FAILED and "451" in busy.last_error and busy.next_attempt_at
    async with database.tenant(tenants.a.id) as session:
        instance = await session.get(ConnectorInstance, (tenants.a.id, instance_id))
        instance.config = {**instance.config, "port": free_port()}  # nobody listens there
    down = await send(database, tenants.a.id, Channel.EMAIL, EMAIL)
    assert down.status == DeliveryStatus.FAILED and "unreachable" in down.last_error
    async with database.tenant(tenants.a.id) as session:
        instance = await session.get(ConnectorInstance, (tenants.a.id, instance_id))
    assert instance.health == Health.FAILING and PASSWORD not in (instance.last_error or "")
    assert inbox.messages == []


async def test_wrong_smtp_password_is_permanent(database, tenants, ports, smtp_server):
    _, port = smtp_server()
    await make_instance(database, tenants.a.id, "smtp", smtp_config(port, password="wrong"))
    message = await send(database, tenants.a.id, Channel.EMAIL, EMAIL)
    assert message.status == DeliveryStatus.DEAD and "535" in message.last_error, message.last_error
    assert "wrong" not in message.last_error and PASSWORD not in message.last_error


async def test_starttls_and_implicit_tls(database, tenants, ports, smtp_server, tmp_path):
    context = tls_context(tmp_path)
    inbox, port = smtp_server(tls_context=context, require_starttls=True)
    await make_instance(database, tenants.a.id, "smtp",
                        smtp_config(port, security="starttls", verify_certificate=False), name="starttls")
    message = await send(database, tenants.a.id, Channel.EMAIL, EMAIL)
    assert message.status == DeliveryStatus.SENT, message.last_error
    assert len(inbox.messages) == 1

    tls_inbox, tls_port = smtp_server(ssl_context=context)
    await make_instance(database, tenants.b.id, "smtp", smtp_config(tls_port, security="tls", verify_certificate=False))
    message = await send(database, tenants.b.id, Channel.EMAIL, EMAIL)
    assert message.status == DeliveryStatus.SENT, message.last_error
    assert len(tls_inbox.messages) == 1


async def test_starttls_with_an_untrusted_certificate_is_refused(database, tenants, ports, smtp_server, tmp_path):
    inbox, port = smtp_server(tls_context=tls_context(tmp_path), require_starttls=True)
    await make_instance(database, tenants.a.id, "smtp", smtp_config(port, security="starttls"))
    message = await send(database, tenants.a.id, Channel.EMAIL, EMAIL)
    assert message.status == DeliveryStatus.FAILED and inbox.messages == []


async def test_no_email_connector_dead_letters_with_the_reason_or_records_in_embedded_mode(database, tenants, ports):
    message = await send(database, tenants.a.id, Channel.EMAIL, EMAIL)
    if database.settings.embedded:
        assert message.status == DeliveryStatus.SENT and ports[Channel.EMAIL].for_tenant(tenants.a.id)
    else:
        assert message.status == DeliveryStatus.DEAD
        assert message.last_error == "no e-mail connector configured for this company"


async def test_chat_posts_text_to_the_tenants_webhook(database, tenants, ports, provider):
    secret_path = "/services/T000/B000/XXXXsecretXXXX"
    provider.on("POST", secret_path, Answer(200, "ok"))
    await make_instance(database, tenants.a.id, "chat", {"webhook_url": provider.url + secret_path})
    message = await send(database, tenants.a.id, Channel.CHAT, {"kind": "customer.started", "text": "*Novo cliente*"})
    assert message.status == DeliveryStatus.SENT, message.last_error
    [seen] = provider.requests("POST", secret_path)
    assert seen.json() == {"text": "*Novo cliente*"}
    provider.on("POST", secret_path, Answer(500))
    failed = await send(database, tenants.a.id, Channel.CHAT, {"kind": "x", "text": "again"})
    assert failed.status == DeliveryStatus.FAILED and "XXXXsecretXXXX" not in failed.last_error
    provider.on("POST", secret_path, Answer(404))
    gone = await send(database, tenants.a.id, Channel.CHAT, {"kind": "x", "text": "again"})
    assert gone.status == DeliveryStatus.DEAD and "404" in gone.last_error


async def test_chat_webhook_on_a_private_address_is_refused_without_the_setting(database, tenants):
    from backoffice.connectors.service import instance_for_channel
    from backoffice.tenants.registry.models import Tenant

    await make_instance(database, tenants.a.id, "chat", {"webhook_url": "http://127.0.0.1:9/hook"})
    strict = ChatPort(settings=database.settings.model_copy(update={"allow_private_targets": False}))
    async with database.tenant(tenants.a.id) as session:
        tenant = await session.get(Tenant, tenants.a.id)
        assert await instance_for_channel(session, Channel.CHAT) is not None
        message = OutboundMessage(effect_key="k", channel=Channel.CHAT, payload={"text": "x"})
        from backoffice.tenants.effects.ports import DeliveryError
        with pytest.raises(DeliveryError) as refused:
            await strict.send(session, tenant, message)
    assert not refused.value.retryable and "not a public address" in str(refused.value)

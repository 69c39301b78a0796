"""E-mail over SMTP, with each tenant's own server, sender name and reply-to.

Security: ``starttls`` (submission, port 587: the connection is upgraded before authenticating and
refused if the server cannot), ``tls`` (implicit TLS, port 465) or ``none`` (a relay on a trusted
network; credentials are then sent in the clear, so use it only there). Messages are
multipart/alternative: the text as written, and an HTML part with the same text escaped.

The server's address is checked when saved and at every connection: the host is resolved once, the
address checked (``platform/security/outbound``) and the connection opened to it, with the host name kept
for TLS (SNI and certificate).

Failures: a 4xx reply or a connection problem is temporary (retried by the delivery job); a 5xx reply
(bad credentials, recipient refused, message rejected) is permanent and dead-letters with the reply.

Identity: an effect's e-mail has one ``Message-ID`` on every attempt (:func:`message_id`), so a send
repeated after a crash between the send and our commit is the same message to the receiver's dedup.
"""

from __future__ import annotations

import asyncio

import hashlib
import html
import secrets
import uuid
from email.generator import BytesGenerator
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import Compat32
from email.utils import formataddr, getaddresses, make_msgid
from io import BytesIO
from typing import Annotated, Any, Literal

import aiosmtplib
from pydantic import Field, SecretStr

from backoffice.connectors.kinds import CheckResult, ConnectorError, ConnectorKind, KindConfig
from backoffice.connectors.ports import ConnectorPort
from backoffice.platform.security.outbound import TargetRefused, Unresolvable, open_socket
from backoffice.platform.settings import Settings
from backoffice.tenants.effects.models import Channel, OutboundMessage
from backoffice.tenants.effects.ports import DeliveryError
from backoffice.tenants.registry.models import Tenant

# A plain address check: header injection (CR/LF, angle brackets) is what must never get through.
Address = Annotated[str, Field(pattern=r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$", max_length=254)]


class SmtpConfig(KindConfig):
    host: str = Field(min_length=1, max_length=253)
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = Field(default=None, max_length=254)
    password: SecretStr | None = None
    sender_address: Address
    sender_name: str | None = Field(default=None, max_length=200)
    reply_to: Address | None = None
    timeout_seconds: float = Field(default=20.0, gt=0, le=120)
    verify_certificate: bool = True


class Smtp(ConnectorKind):
    name = "smtp"
    title = "E-mail (SMTP)"
    config_model = SmtpConfig
    channel = Channel.EMAIL

    def targets(self, config: SmtpConfig) -> dict[str, tuple[str, int]]:
        return {"host": (config.host, config.port)}

    async def check(self, ctx) -> CheckResult:
        """Connect, secure the connection as configured, log in when a user is set, NOOP and QUIT: the
        server's own replies, and no message sent."""
        return await check_server(ctx.config, ctx.settings)


async def check_server(config: SmtpConfig, settings: Settings | None = None) -> CheckResult:
    try:
        smtp = await SmtpSession(config, settings).connect()  # connected, secured and logged in as a send is
    except DeliveryError as error:
        raise ConnectorError(str(error)) from None
    try:
        reply = await smtp.noop()
        await smtp.quit()
    except (aiosmtplib.SMTPException, OSError) as error:
        smtp.close()
        raise ConnectorError(str(_failure(config, error))) from None
    secured = {"starttls": "STARTTLS", "tls": "TLS", "none": "no TLS"}[config.security]
    who = f", logged in as {config.username}" if config.username else ""
    return CheckResult(True, str(reply.code), f"{config.host}:{config.port} answered ({secured}{who}): {reply.message}")


def html_part(text: str) -> str:
    paragraphs = [p for p in text.replace("\r\n", "\n").split("\n\n")]
    body = "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)
    return f"<!doctype html><html><body style=\"font-family: sans-serif\">{body}</body></html>"


class _PlatformHeadersUnfolded(Compat32):
    """The headers the platform makes itself (identities: Message-ID, X-Backoffice-Effect; the MIME headers)
    are written on one line whatever their length. A folding policy folds at 78 characters, and a token with
    no space in it is then RFC 2047-encoded over several lines: the receiver read ``=?utf-8?q?...`` or a
    leading space instead of the effect key its dedup compares. Our values are ASCII tokens of at most 200
    characters, far inside the 998-character line limit. Only the headers that carry a tenant's or a
    person's text (Subject, the display names in From/To/Cc/Reply-To) are folded, as RFC 2047 requires of
    non-ASCII text: ``build_message`` encodes them (encoded words of at most 75 characters) and the
    compat32 rules fold them. The body is 7-bit (base64 for UTF-8 text): no server needs 8BITMIME.

    The compat32 policy with the ``email.mime`` classes, not the RFC 5322 policy's ``EmailMessage``: the
    latter parses every header it is given into a structured object, which made building a message 1.6 ms
    (four times this) and the e-mail port the largest cost of the late-payment backlog (tests/perf)."""

    def fold_binary(self, name: str, value: Any) -> bytes:
        if name.lower() in TEXT_HEADERS:
            return super().fold_binary(name, value)
        line = f"{name}: {value}"
        if not line.isascii() or len(line) > 998:
            raise DeliveryError(f"header {name}: must be ASCII within 998 characters", retryable=False)
        return (line + self.linesep).encode("ascii")


TEXT_HEADERS = frozenset({"subject", "from", "to", "cc", "reply-to"})
POLICY = _PlatformHeadersUnfolded(linesep="\r\n")


def flatten(message: Message) -> bytes:
    """The message's bytes as the server receives them."""
    out = BytesIO()
    BytesGenerator(out, policy=POLICY, mangle_from_=False).flatten(message)
    return out.getvalue()


def _text_header(value: str) -> str | Header:
    return value if value.isascii() else Header(value, "utf-8")


def _address(name: str, address: str) -> str:
    if not address.isascii():
        raise DeliveryError(f"address {address!r}: only ASCII addresses can be sent (no SMTPUTF8)", retryable=False)
    return formataddr((name, address), charset="utf-8")  # a non-ASCII name is RFC 2047-encoded


def message_id(tenant_id: uuid.UUID, effect_key: str, domain: str) -> str:
    """The Message-ID of an effect's e-mail: the same on every attempt (a send repeated after a crash
    before our commit, a retry after a lost reply, a replay from the console), so mail systems and clients
    that drop a repeated Message-ID show the customer one message. Derived from the tenant and the effect
    key (unique per tenant) and hashed, so it is globally unique and says nothing of our ids."""
    digest = hashlib.sha256(f"{tenant_id}:{effect_key}".encode()).hexdigest()[:40]
    return f"<{digest}@{domain}>"


def build_message(config: SmtpConfig, payload: dict[str, Any], *, effect_key: str | None = None,
                  tenant_id: uuid.UUID | None = None) -> Message:
    for field in ("to", "subject", "text"):
        if not payload.get(field):
            raise DeliveryError(f"payload.{field}: missing", retryable=False)
    # A boundary of our own: "=_" never occurs in a base64 body (both parts are), so the generator need not
    # make one and compile a pattern to search the bodies for it, per message.
    message = MIMEMultipart("alternative", boundary=f"=_bo_{secrets.token_hex(16)}", policy=POLICY)
    message["From"] = _address(config.sender_name or "", str(config.sender_address))
    message["To"] = _address(payload.get("to_name") or "", payload["to"])
    message["Subject"] = _text_header(payload["subject"])
    if config.reply_to:
        message["Reply-To"] = _address("", str(config.reply_to))
    domain = str(config.sender_address).rsplit("@", 1)[-1]
    # An effect's mail keeps one Message-ID across attempts; anything else (no effect) gets a fresh one.
    message["Message-ID"] = (message_id(tenant_id, effect_key, domain) if effect_key and tenant_id
                             else make_msgid(domain=domain))
    if effect_key:
        # Receivers and our own support can tie a copy to the effect that produced it.
        message["X-Backoffice-Effect"] = effect_key
    for body, subtype in ((payload["text"], "plain"), (html_part(payload["text"]), "html")):
        part = MIMEText(body, subtype, "utf-8", policy=POLICY)
        del part["MIME-Version"]  # once, on the message
        message.attach(part)
    return message


def _failure(config: SmtpConfig, error: BaseException) -> DeliveryError:
    """A send's failure as the delivery's outcome: retried when it may pass later, dead when it cannot."""
    if isinstance(error, DeliveryError):
        return error
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in error.recipients]
        detail = "; ".join(f"{r.code} {r.message}" for r in error.recipients)
        return DeliveryError(f"SMTP refused the recipient: {detail}", retryable=all(400 <= c < 500 for c in codes))
    if isinstance(error, aiosmtplib.SMTPResponseException):
        permanent = 500 <= error.code < 600
        return DeliveryError(f"SMTP server answered {error.code} {error.message}", retryable=not permanent)
    return DeliveryError(f"SMTP server {config.host}:{config.port} unreachable or dropped the connection "
                         f"({type(error).__name__}: {error})", retryable=True)


class SmtpSession:
    """One connection to the company's server for many messages (a delivery batch's): connected (through
    the outbound check), secured and logged in once, then one MAIL/RCPT/DATA transaction per message, as
    mail systems send a queue. A connection the server drops is opened again for the next message; a
    refused recipient or a 4xx/5xx reply is that message's outcome only (aiosmtplib resets the envelope)."""

    def __init__(self, config: SmtpConfig, settings: Settings | None = None) -> None:
        self.config = config
        self.settings = settings
        self._smtp: aiosmtplib.SMTP | None = None

    async def connect(self) -> aiosmtplib.SMTP:
        config = self.config
        try:
            sock = await open_socket(config.host, config.port, self.settings, timeout=config.timeout_seconds)
        except Unresolvable as error:
            raise DeliveryError(f"SMTP server {config.host}: {error}", retryable=True) from None
        except TargetRefused as error:
            raise DeliveryError(f"SMTP server refused: {error}", retryable=False) from None
        except OSError as error:
            raise DeliveryError(f"SMTP server {config.host}:{config.port} unreachable ({error})",
                                retryable=True) from None
        # The socket is connected to the checked address; hostname stays the configured name for TLS. The
        # transport made on it owns it from here (asyncio closes it with the transport, or on failure).
        smtp = aiosmtplib.SMTP(hostname=config.host, sock=sock, use_tls=config.security == "tls",
                               start_tls=config.security == "starttls", validate_certs=config.verify_certificate,
                               timeout=config.timeout_seconds)
        try:
            await smtp.connect()
            if config.username:
                password = config.password.get_secret_value() if config.password else ""
                await smtp.login(config.username, password)
        except BaseException as error:
            smtp.close()
            raise _failure(config, error) from None
        return smtp

    async def send(self, message: Message) -> str:
        """Send one message; returns the server's final reply, or raises its :class:`DeliveryError`."""
        recipients = [address for _, address in getaddresses(message.get_all("To", []) + message.get_all("Cc", []))]
        if self._smtp is None or not self._smtp.is_connected:
            self._smtp = await self.connect()
        try:
            _, reply = await self._smtp.sendmail(str(self.config.sender_address), recipients, flatten(message))
        except (aiosmtplib.SMTPRecipientsRefused, aiosmtplib.SMTPResponseException) as error:
            if not self._smtp.is_connected:
                self._drop()
            raise _failure(self.config, error) from None
        except (aiosmtplib.SMTPException, OSError) as error:
            self._drop()
            raise _failure(self.config, error) from None
        return reply

    def _drop(self) -> None:
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None

    async def close(self) -> None:
        if self._smtp is None:
            return
        try:
            if self._smtp.is_connected:
                await self._smtp.quit()
        except (aiosmtplib.SMTPException, OSError):
            pass  # every message already has its outcome; a QUIT the server did not answer changes none
        finally:
            self._drop()


async def send_message(config: SmtpConfig, message: Message, settings: Settings | None = None) -> str:
    """Send one message through the configured server (its own connection); returns the server's final reply."""
    session = SmtpSession(config, settings)
    try:
        return await session.send(message)
    finally:
        await session.close()


# Connections a delivery batch opens to one company's server at most; its messages share them.
LANES = 4


class SmtpPort(ConnectorPort):
    channel = Channel.EMAIL
    label = "e-mail"

    async def deliver(self, ctx, tenant: Tenant, message: OutboundMessage) -> dict[str, Any]:
        [outcome] = await self.deliver_group(ctx, tenant, [message])
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def deliver_group(self, ctx, tenant: Tenant, messages: list[OutboundMessage]
                            ) -> list[dict[str, Any] | BaseException]:
        """A batch's messages over at most ``LANES`` connections, each sending its share one after another
        (a connection per message cost a connect, the outbound check, EHLO and QUIT for every e-mail)."""
        outcomes: dict[int, dict[str, Any] | BaseException] = {}

        async def lane(indexes: range) -> None:
            session = SmtpSession(ctx.config, ctx.settings)
            try:
                for index in indexes:
                    message = messages[index]
                    try:
                        email = build_message(ctx.config, message.payload, effect_key=message.effect_key,
                                              tenant_id=message.tenant_id)
                        reply = await session.send(email)
                    except Exception as error:  # this message's outcome; the caller records and retries it
                        outcomes[index] = error
                    else:
                        outcomes[index] = {"smtp": reply[:300], "message_id": email["Message-ID"]}
            finally:
                await session.close()

        lanes = min(LANES, len(messages))
        await asyncio.gather(*(lane(range(n, len(messages), lanes)) for n in range(lanes)))
        return [outcomes[index] for index in range(len(messages))]

"""What a tenant's policy may say, with defaults that run a tenant that never saved one.

A saved policy is a full snapshot of :class:`PolicyConfig` (see ``service.py``), so a running case can be
replayed on exactly the rules it opened with. Every problem is reported with the dotted path of the
field (``grace_days``, ``notify.team_user_ids``, ``templates.dunning.notice.pt-BR.body``), which the
web layer shows next to the input.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    AliasChoices, BaseModel, ConfigDict, Field, PlainSerializer, StringConstraints, ValidationError, field_validator,
)
from pydantic_core.core_schema import ValidationInfo

from backoffice.platform.errors import FieldError

# What the front office is told about (portal inbox, and e-mail/chat when the tenant asks for it).
NOTIFICATION_KINDS: tuple[str, ...] = (
    "customer.started",
    "subscription.changed",
    "dunning.grace_started",
    "dunning.blocked",
    "dunning.unblocked",
    "dunning.resolved",
    "customer.terminated",
    "invoice.rejected",
    "routine.item_failed",
)
# What the end customer receives by e-mail during a late payment.
EMAIL_KINDS: tuple[str, ...] = ("dunning.notice", "dunning.reminder", "dunning.blocked_notice")
TEMPLATE_KINDS: tuple[str, ...] = NOTIFICATION_KINDS + EMAIL_KINDS

LOCALES: tuple[str, ...] = ("pt-BR", "en")
DEFAULT_LOCALE = "pt-BR"

StartTrigger = Literal["payment.cleared", "invoice.issued", "contract.signed"]
Channel = Literal["portal", "email", "chat"]
NotificationKind = Literal[
    "customer.started",
    "subscription.changed",
    "dunning.grace_started",
    "dunning.blocked",
    "dunning.unblocked",
    "dunning.resolved",
    "customer.terminated",
    "invoice.rejected",
    "routine.item_failed",
]
TemplateKind = Literal[
    NotificationKind, "dunning.notice", "dunning.reminder", "dunning.blocked_notice"
]
Locale = Literal["pt-BR", "en"]

# Ints are strict: a JSON `true` or `"5"` for grace_days is a client bug, not a value to coerce.
Days = Annotated[int, Field(strict=True, ge=0, le=60)]
ChecklistItem = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
# Percentages with cents of a percent, sent to the gateway as numbers (JSON keeps them numbers too).
Percent = Annotated[Decimal, Field(ge=0, max_digits=5, decimal_places=2),
                    PlainSerializer(float, return_type=float, when_used="json")]

DEFAULT_ONBOARDING = [
    "Agendar reunião de boas-vindas",
    "Conferir dados cadastrais e contato financeiro do cliente",
    "Confirmar que o cliente acessa a plataforma",
    "Enviar materiais de boas-vindas e canais de suporte",
    "Confirmar a emissão da primeira nota fiscal",
]
DEFAULT_OFFBOARDING = [
    "Confirmar a revogação dos acessos do cliente",
    "Emitir os documentos finais (nota fiscal, termo de encerramento)",
    "Conferir valores em aberto, créditos e reembolsos",
    "Registrar o motivo do encerramento",
    "Arquivar o contrato e a correspondência",
]

# Bounds that keep one tenant's templates from becoming a storage or rendering burden.
TITLE_MAX = 300  # notifications.title is VARCHAR(300)
BODY_MAX = 10_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TemplateOverride(_Strict):
    """A tenant's own wording for one kind in one locale. E-mails call the title ``subject``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=TITLE_MAX)] = Field(
        validation_alias=AliasChoices("title", "subject")
    )
    body: Annotated[str, StringConstraints(min_length=1, max_length=BODY_MAX)]


class NotifyRule(_Strict):
    """Who in the tenant hears about a customer: the primary choice, then the fallback.

    With ``primary="account_manager"`` the customer's account manager is told, or the team when the
    customer has none; with ``primary="team"`` the team always is. ``fallback_user_id`` is told when the
    chosen people are missing or inactive, so no event lands with nobody.
    """

    primary: Literal["account_manager", "team"] = "account_manager"
    # validate_default: the cross-field check must also run when the list was left at its default.
    team_user_ids: Annotated[list[uuid.UUID], Field(max_length=50, validate_default=True)] = []
    fallback_user_id: uuid.UUID | None = None

    @field_validator("team_user_ids")
    @classmethod
    def _team(cls, value: list[uuid.UUID], info: ValidationInfo) -> list[uuid.UUID]:
        if len(set(value)) != len(value):
            raise ValueError("a user is listed more than once")
        if info.data.get("primary") == "team" and not value:
            raise ValueError("expected at least one user when the primary recipient is the team")
        return value


def _default_channels() -> dict[str, list[str]]:
    return {kind: ["portal"] for kind in NOTIFICATION_KINDS}


class PolicyConfig(_Strict):
    # Which event officially starts the relationship with a customer.
    start_trigger: StartTrigger = "payment.cleared"

    # Late payment: the deadline is the overdue moment plus grace_days; reminders go out
    # reminder_offsets_days before the deadline, at reminder_hour_local in the tenant's time zone.
    grace_days: Days = 5
    reminder_offsets_days: Annotated[list[Days], Field(max_length=10, validate_default=True)] = [3, 1]
    reminder_hour_local: Annotated[int, Field(strict=True, ge=0, le=23)] = 9
    auto_block: bool = True
    auto_unblock: bool = True
    terminate_after_days: Annotated[int, Field(strict=True, ge=1, le=365)] | None = None  # None: never
    # What a late charge blocks: its own contract (subscription) only, or every contract of the customer.
    # A charge that names no known contract always blocks the whole customer.
    block_scope: Literal["contract", "customer"] = "contract"

    # Start and end of the relationship.
    provision_on_start: bool = True
    onboarding_task_due_days: Annotated[int, Field(strict=True, ge=0, le=90)] = 2
    onboarding_checklist: Annotated[list[ChecklistItem], Field(max_length=30)] = DEFAULT_ONBOARDING
    offboarding_checklist: Annotated[list[ChecklistItem], Field(max_length=30)] = DEFAULT_OFFBOARDING

    # Reconciliation: a payment the gateway received but the platform never heard of (a lost webhook) is
    # ingested from the finding at once, as staff would with "repair" (tenants/routines/repairs.py).
    reconciliation_auto_repair: bool = False

    # Customers born at the gateway: a payment for a gateway customer the platform does not know creates
    # the customer from the gateway's record (valid CPF/CNPJ; an existing customer with it is matched
    # first), so the payment's process runs instead of waiting, unmatched, for someone to re-type the
    # gateway's data (tenants/billing/gateway_customers.py).
    create_customers_from_gateway: bool = True
    # What a charge created at the gateway adds when paid late: a fine (multa, once) and interest (juros,
    # per month), percent of the amount. Bounded by Brazilian law: the fine at 2% (Código de Defesa do
    # Consumidor, art. 52 §1), interest at 1% a month (Código Civil art. 406 with CTN art. 161 §1; the Lei
    # de Usura's 12% a year). 0: none.
    late_fine_percent: Percent = Decimal("0")
    late_interest_percent_month: Percent = Decimal("0")

    notify: NotifyRule = NotifyRule()
    channels: dict[NotificationKind, list[Channel]] = Field(default_factory=_default_channels)
    templates: dict[TemplateKind, dict[Locale, TemplateOverride]] = {}

    @field_validator("reminder_offsets_days")
    @classmethod
    def _offsets(cls, value: list[int], info: ValidationInfo) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError("each day may appear only once")
        grace = info.data.get("grace_days")
        # grace_days is validated first; when it is itself invalid its own error is enough.
        if grace is not None and any(day > grace for day in value):
            late = max(value)
            raise ValueError(
                f"a reminder {late} days before the deadline would come before the grace period starts "
                f"(grace_days is {grace})"
            )
        return sorted(value, reverse=True)

    @field_validator("late_fine_percent")
    @classmethod
    def _fine(cls, value: Decimal) -> Decimal:
        if value > 2:
            raise ValueError("at most 2 (%): Brazilian law caps a late-payment fine at 2% (CDC art. 52 §1)")
        return value

    @field_validator("late_interest_percent_month")
    @classmethod
    def _interest(cls, value: Decimal) -> Decimal:
        if value > 1:
            raise ValueError("at most 1 (% a month): Brazilian law caps late-payment interest at 1% a month "
                             "(Código Civil art. 406, CTN art. 161 §1)")
        return value

    @field_validator("channels")
    @classmethod
    def _channels(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for kind, channels in value.items():
            if len(set(channels)) != len(channels):
                raise ValueError(f"{kind}: a channel is listed more than once")
        # A kind left out keeps the default, so the processes can always look every kind up.
        return {kind: list(value.get(kind, ["portal"])) for kind in NOTIFICATION_KINDS}

    def channels_for(self, kind: str) -> list[str]:
        return list(self.channels.get(kind, ["portal"]))

    def override_for(self, kind: str, locale: str) -> TemplateOverride | None:
        return self.templates.get(kind, {}).get(locale)


def field_path(loc: tuple[int | str, ...]) -> str:
    # pydantic marks a refused dict key with a trailing "[key]"; the key itself is already in the path.
    return ".".join(str(part) for part in loc if part != "[key]")


def field_errors(error: ValidationError) -> list[FieldError]:
    """A pydantic error as the platform's field errors, in words a tenant admin understands."""
    problems = []
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown setting"
        elif item["type"] == "missing":
            message = "required"
        problems.append(FieldError(field_path(item["loc"]) or "policy", message))
    return problems

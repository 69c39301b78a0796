"""Onboarding a client company from the staff console, at ``/staff/onboarding``: one guided flow of six steps
(the company, branding, custom host, connectors, late-payment policy and templates, the first admin).

Each step saves when submitted (``tenants/registry/onboarding.complete_step``), so a staff member who leaves
comes back to the first step not done (``/staff/onboarding/<tenant_id>``). Every step is the service call the
staff API and the CLI make: ``create_tenant`` (provider admins only, as the API's ``require_admin``),
``update_branding``, ``request_custom_host`` / ``verify_custom_host`` (DNS TXT proof), the connectors
service and ``check_connection``, ``update_policy`` with ``preview_template`` (rendered off the event loop
in the bounded sandbox), ``invite_new_user``. Routes for an existing company take ``tenant_id`` and pass the
console's door: an operator not assigned to it gets the same 404 as for a missing company.
Bad input is shown next to its field (422/409), nothing half-written; the service's words are translated
when the catalogue has them.
"""

from __future__ import annotations

import types
import typing
import uuid
from decimal import Decimal
from typing import Any

from litestar import Request, Response, get, post
from litestar.datastructures import State, UploadFile
from litestar.response import Redirect
from pydantic import SecretStr

from backoffice.connectors import service as connectors
from backoffice.connectors.checks import check_connection
from backoffice.connectors.kinds import CheckResult, get_kind, kinds, secret_fields
from backoffice.platform.errors import FieldError, ValidationFailed
from backoffice.tenants.effects.models import Channel
from backoffice.tenants.policies.service import current_policy, preview_template, update_policy
from backoffice.tenants.policies.schemas import LOCALES as TEMPLATE_LOCALES
from backoffice.tenants.policies.schemas import TEMPLATE_KINDS
from backoffice.tenants.policies.templates import default_source
from backoffice.tenants.registry.branding import COLOUR_KEYS, DEFAULT_BRANDING, LOGO_MAX_BYTES
from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.staff.service import assigned_tenant_ids
from backoffice.tenants.registry.onboarding import STEPS, complete_step, next_step, steps_done
from backoffice.tenants.registry.queries import onboarding_in_progress
from backoffice.tenants.registry.service import LOCALES, create_tenant, update_branding
from backoffice.tenants.registry.settings import (
    HostNotVerified, request_custom_host, verification_record, verify_custom_host,
)
from backoffice.tenants.users.resets import invite_new_user
from backoffice.web.console.render import gettext_for, render
from backoffice.web.console.session import StaffUser
from backoffice.web.portal.refusals import readable

BASE = "/staff/onboarding"
# Time zones offered first (any IANA name is accepted).
ZONES = ("America/Sao_Paulo", "America/Manaus", "America/Recife", "America/Fortaleza", "America/Belem",
         "America/Cuiaba", "America/Porto_Velho", "America/Rio_Branco", "America/Noronha", "UTC")
CONNECTOR_KINDS = ("asaas", "focusnfe", "clicksign", "stripe", "tenant_platform", "smtp", "chat")
POLICY_FIELDS = ("grace_days", "reminder_offsets_days", "reminder_hour_local", "auto_block", "auto_unblock",
                 "terminate_after_days", "block_scope", "reconciliation_auto_repair", "create_customers_from_gateway",
                 "late_fine_percent", "late_interest_percent_month")
CHECKBOXES = ("auto_block", "auto_unblock", "reconciliation_auto_repair", "create_customers_from_gateway")


def step_titles(request: Request) -> dict[str, str]:
    _ = gettext_for(request)
    return {"tenant": _("Company"), "branding": _("Branding"), "host": _("Custom host"),
            "connectors": _("Connectors"), "policy": _("Late payment and messages"), "admin": _("First admin")}


def kind_titles(request: Request) -> dict[str, str]:
    """The connector kinds offered, in the staff member's language."""
    _ = gettext_for(request)
    return {"asaas": _("Asaas (payments)"), "focusnfe": _("Focus NFe (invoices)"),
            "clicksign": _("Clicksign (e-signature)"), "stripe": _("Stripe (card payments)"),
            "tenant_platform": _("The company's platform (block, unblock, provision)"),
            "smtp": _("E-mail (SMTP)"), "chat": _("Team chat (incoming webhook)")}


def config_labels(request: Request) -> dict[str, str]:
    """Connector settings by name, in the staff member's language (the name itself is shown beside)."""
    _ = gettext_for(request)
    return {"base_url": _("API address"), "api_key": _("API key"), "webhook_token": _("Webhook token"),
            "token": _("API token"), "prestador_cnpj": _("Issuer's CNPJ"),
            "inscricao_municipal": _("Municipal registration"), "codigo_municipio": _("City code (IBGE)"),
            "item_lista_servico": _("Service list item (LC 116)"),
            "codigo_tributario_municipio": _("City tax code"), "aliquota": _("ISS rate (%)"),
            "iss_retido": _("ISS withheld"), "optante_simples_nacional": _("Simples Nacional"),
            "discriminacao": _("Invoice description opening"), "hmac_secret": _("Webhook HMAC secret"),
            "access_token": _("Access token (for the connection test)"),
            "webhook_secret": _("Webhook signing secret"), "tolerance_seconds": _("Signature tolerance (seconds)"),
            "url": _("Address of the company's platform"), "secret": _("Signing secret (whsec_...)"),
            "host": _("SMTP server"), "port": _("Port"), "security": _("Connection security"),
            "username": _("User"), "password": _("Password"), "sender_address": _("Sender address"),
            "sender_name": _("Sender name"), "reply_to": _("Reply-to address"),
            "timeout_seconds": _("Timeout (seconds)"), "verify_certificate": _("Verify the server's certificate"),
            "webhook_url": _("Incoming webhook address")}


def message_labels(request: Request) -> dict[str, str]:
    _ = gettext_for(request)
    return {"customer.started": _("Front office: a customer started"),
            "subscription.changed": _("Front office: what was bought changed"),
            "dunning.grace_started": _("Front office: grace period started"),
            "dunning.blocked": _("Front office: customer blocked"),
            "dunning.unblocked": _("Front office: customer unblocked"),
            "dunning.resolved": _("Front office: late payment settled"),
            "customer.terminated": _("Front office: relationship ended"),
            "invoice.rejected": _("Front office: invoice rejected"),
            "routine.item_failed": _("Front office: routine item failed"),
            "dunning.notice": _("Customer e-mail: payment overdue"),
            "dunning.reminder": _("Customer e-mail: reminder before blocking"),
            "dunning.blocked_notice": _("Customer e-mail: service blocked")}


def field_errors(request: Request, error: ValidationFailed) -> dict[str, str]:
    """Each field's first problem, in the staff member's language when ``refusals`` knows the sentence (a
    message that repeats its field's name before a colon is shown without it: it sits next to the field)."""
    _ = gettext_for(request)
    found: dict[str, str] = {}
    for item in error.errors:
        message = item.message.removeprefix(f"{item.field.rsplit('.', 1)[-1]}: ")
        found.setdefault(item.field, readable(message, _))
    if isinstance(error, HostNotVerified):
        if error.found is None:
            found["custom_host"] = _("The DNS could not be asked just now; try again in a moment.")
        else:
            seen = ", ".join(f'"{value[:80]}"' for value in error.found[:3]) or _("no TXT record")
            found["custom_host"] = _("%(name)s has %(found)s; expected TXT \"%(value)s\" (DNS changes can take a "
                                     "while to show).") % {"name": error.record, "found": seen, "value": error.expected}
    return found


def _see(location: str) -> Response:
    return Redirect(location, status_code=303)


def _text(form: Any, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


async def _form(request: Request) -> dict[str, Any]:
    return dict((await request.form()).items())


def _step_page(request: Request, tenant: Tenant | None, step: str, page_template: str, *, status_code: int = 200,
               **context: Any) -> Response:
    done = steps_done(tenant) if tenant is not None else []
    return render(request, page_template, status_code=status_code, tenant=tenant, step=step, steps=STEPS, done=done,
                  titles=step_titles(request), base=f"{BASE}/{tenant.id}" if tenant else BASE, **context)


# --- the flow's start: the company ---------------------------------------------------------------------------

async def _in_progress(state: State, staff: StaffUser) -> list[dict[str, Any]]:
    """The companies this staff member serves whose onboarding is not finished, with where each stands."""
    async with state.database.system() as session:
        only = None if staff.is_admin else await assigned_tenant_ids(session, staff)  # type: ignore[arg-type]
        rows = await onboarding_in_progress(session, only=only)
    return [{"tenant": tenant, "next": next_step(tenant), "done": len(steps_done(tenant))} for tenant in rows]


def _start_page(request: Request, staff: StaffUser, in_progress, *, status_code: int = 200, form=None,
                errors=None) -> Response:
    return _step_page(request, None, "tenant", "console/onboarding/tenant.html", status_code=status_code,
                      form=form or {"timezone": ZONES[0], "locale": "pt-BR"}, errors=errors or {}, zones=ZONES,
                      locales=LOCALES, may_create=staff.is_admin, in_progress=in_progress)


@get("/onboarding", name="console:onboarding")
async def start(request: Request, staff: StaffUser, state: State) -> Response:
    return _start_page(request, staff, await _in_progress(state, staff))


@post("/onboarding", name="console:onboarding_create")
async def create(request: Request, staff: StaffUser, state: State) -> Response:
    form = await _form(request)
    values = {name: _text(form, name) for name in ("legal_name", "display_name", "slug", "cnpj", "timezone", "locale")}
    if not staff.is_admin:  # as the staff API: creating a company is a provider admin's decision
        _ = gettext_for(request)
        return _start_page(request, staff, await _in_progress(state, staff), status_code=403, form=values,
                           errors={"form": _("Only provider admins may create a company.")})
    try:
        async with state.database.system() as session:
            tenant = await create_tenant(session, slug=values["slug"].lower(), display_name=values["display_name"],
                                         legal_name=values["legal_name"], cnpj=values["cnpj"],
                                         timezone=values["timezone"], locale=values["locale"], acting=staff.actor,
                                         reason="onboarded from the staff console")
            await complete_step(session, tenant.id, "tenant", acting=staff.actor)
    except ValidationFailed as error:
        return _start_page(request, staff, await _in_progress(state, staff), status_code=error.status, form=values,
                           errors=field_errors(request, error))
    return _see(f"{BASE}/{tenant.id}/branding")


@get("/onboarding/{tenant_id:uuid}", name="console:onboarding_resume")
async def resume(request: Request, tenant_id: uuid.UUID, console_tenant: Tenant) -> Response:
    """Where the company's onboarding stands, and a link on to the first step not done."""
    return _summary(request, console_tenant, "resume")


@post("/onboarding/{tenant_id:uuid}/host/skip", name="console:onboarding_host_skip")
async def skip_host(tenant_id: uuid.UUID, console_tenant: Tenant, staff: StaffUser, state: State) -> Response:
    """No custom host yet: the company's portal answers at /<slug>/ and the flow moves on (the settings page
    can add a host later)."""
    async with state.database.system() as session:
        await complete_step(session, tenant_id, "host", acting=staff.actor, skipped=True)
    return _see(f"{BASE}/{tenant_id}/connectors")


# --- branding ------------------------------------------------------------------------------------------------

def _colours(tenant: Tenant, form: dict[str, Any] | None = None) -> dict[str, str]:
    current = {**DEFAULT_BRANDING, **(tenant.branding or {})}
    if form:
        current.update({key: _text(form, key) for key in COLOUR_KEYS if _text(form, key)})
    return current


@get("/onboarding/{tenant_id:uuid}/branding", name="console:onboarding_branding")
async def branding(request: Request, tenant_id: uuid.UUID, console_tenant: Tenant) -> Response:
    return _step_page(request, console_tenant, "branding", "console/onboarding/branding.html",
                      colours=_colours(console_tenant), errors={}, keys=COLOUR_KEYS, max_kib=LOGO_MAX_BYTES // 1024)


@post("/onboarding/{tenant_id:uuid}/branding", name="console:onboarding_branding_save",
      request_max_body_size=LOGO_MAX_BYTES + 64 * 1024)
async def branding_save(request: Request, tenant_id: uuid.UUID, console_tenant: Tenant, staff: StaffUser,
                        state: State) -> Response:
    form = await _form(request)
    colours = {key: _text(form, key) for key in COLOUR_KEYS if _text(form, key)}
    upload = form.get("logo")
    logo = await upload.read() if isinstance(upload, UploadFile) else b""
    try:
        async with state.database.system() as session:
            await update_branding(session, tenant_id, colours=colours, logo=logo or None, acting=staff.actor)
            await complete_step(session, tenant_id, "branding", acting=staff.actor)
    except ValidationFailed as error:
        return _step_page(request, console_tenant, "branding", "console/onboarding/branding.html",
                          status_code=error.status, colours=_colours(console_tenant, form),
                          errors=field_errors(request, error), keys=COLOUR_KEYS, max_kib=LOGO_MAX_BYTES // 1024)
    return _see(f"{BASE}/{tenant_id}/host")


# --- custom host ---------------------------------------------------------------------------------------------

def _host_page(request: Request, tenant: Tenant, *, status_code: int = 200, errors=None, form=None,
               verified: bool = False) -> Response:
    return _step_page(request, tenant, "host", "console/onboarding/host.html", status_code=status_code,
                      proof=verification_record(tenant), errors=errors or {}, form=form or {}, verified=verified)


@get("/onboarding/{tenant_id:uuid}/host", name="console:onboarding_host")
async def host(request: Request, tenant_id: uuid.UUID, console_tenant: Tenant) -> Response:
    return _host_page(request, console_tenant)


@post("/onboarding/{tenant_id:uuid}/host", name="console:onboarding_host_save")
async def host_save(request: Request, tenant_id: uuid.UUID, console_tenant: Tenant, staff: StaffUser,
                    state: State) -> Response:
    form = await _form(request)
    try:
        async with state.database.system() as session:
            tenant = await request_custom_host(session, tenant_id, _text(form, "custom_host"),
                                               settings=state.settings, acting=staff.actor)
    except ValidationFailed as error:
        return _host_page(request, console_tenant, status_code=error.status, errors=field_errors(request, error),
                          form={"custom_host": _text(form, "custom_host")})
    return _host_page(request, tenant)


@post("/onboarding/{tenant_id:uuid}/host/verify", name="console:onboarding_host_verify")
async def host_verify(request: Request, tenant_id: uuid.UUID, console_tenant: Tenant, staff: StaffUser,
                      state: State) -> Response:
    try:
        async with state.database.system() as session:
            tenant = await verify_custom_host(session, tenant_id, settings=state.settings, acting=staff.actor)
            await complete_step(session, tenant_id, "host", acting=staff.actor)
    except ValidationFailed as error:
        return _host_page(request, console_tenant, status_code=error.status, errors=field_errors(request, error))
    return _host_page(request, tenant, verified=True)


# --- connectors ----------------------------------------------------------------------------------------------

def _input_of(annotation: Any) -> tuple[str, list[str]]:
    """How a config field is asked for: (input type, choices)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _input_of(typing.get_args(annotation)[0])
    if origin is typing.Literal:
        return "select", [str(choice) for choice in typing.get_args(annotation)]
    if origin in (typing.Union, types.UnionType):
        inner = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return _input_of(inner[0]) if len(inner) == 1 else ("text", [])
    if annotation is SecretStr:
        return "password", []
    if annotation is bool:
        return "checkbox", []
    if annotation in (int, float, Decimal):
        return "number", []
    return "text", []


def connector_fields(kind_name: str) -> list[dict[str, Any]]:
    """The fields of a kind's configuration form, from its config model (``host_override`` is apart)."""
    model = get_kind(kind_name).config_model
    fields = []
    for name, info in model.model_fields.items():
        if name == "host_override":
            continue
        input_type, choices = _input_of(info.annotation)
        default = info.get_default(call_default_factory=True) if not info.is_required() else None
        fields.append({"name": name, "type": input_type, "choices": choices, "required": info.is_required(),
                       "default": "" if default is None else str(default), "secret": name in secret_fields(model)})
    return fields


def _config_from(kind_name: str, form: dict[str, Any], *, updating: bool) -> dict[str, Any]:
    """The form's values for the kind's fields. Left empty: the default (creating), or kept as stored
    (updating: a secret is never echoed back, so an empty one keeps its value)."""
    config: dict[str, Any] = {}
    for field in connector_fields(kind_name):
        name = field["name"]
        if field["type"] == "checkbox":
            config[name] = _text(form, f"config.{name}") in ("on", "true", "1")
            continue
        value = _text(form, f"config.{name}")
        if value:
            config[name] = value
        elif updating and not field["secret"] and not field["required"]:
            config[name] = None
    return config


async def _connectors_page(request: Request, tenant: Tenant, state: State, *, status_code: int = 200,
                           errors=None, form=None, chosen: str | None = None, results=None,
                           editing: uuid.UUID | None = None, staff: StaffUser | None = None) -> Response:
    async with state.database.provider(tenant.id) as session:
        instances = [connectors.describe(i) for i in await connectors.list_instances(session)]
    chosen = chosen if chosen in CONNECTOR_KINDS else None
    editing_row = next((i for i in instances if i["id"] == str(editing)), None) if editing else None
    kind_name = editing_row["kind"] if editing_row else chosen
    return _step_page(request, tenant, "connectors", "console/onboarding/connectors.html", status_code=status_code,
                      instances=instances, kinds=kind_titles(request), labels=config_labels(request),
                      chosen=kind_name, fields=connector_fields(kind_name) if kind_name else [],
                      documented_hosts=sorted(kinds()[kind_name].hosts) if kind_name else [],
                      editing=editing_row, errors=errors or {}, form=form or {}, results=results or {},
                      may_override=bool(staff and staff.is_admin))


@get("/onboarding/{tenant_id:uuid}/connectors", name="console:onboarding_connectors")
async def connectors_step(request: Request, tenant_id: uuid.UUID, console_tenant: Tenant, staff: StaffUser,
                          state: State, kind: str | None = None, edit: uuid.UUID | None = None) -> Response:
    return await _connectors_page(request, console_tenant, state, chosen=kind, editing=edit, staff=staff)


@post("/onboarding/{tenant_id:uuid}/connectors", name="console:onboarding_connectors_save")
async def connectors_save(request: Request, tenant_id: uuid.UUID, console_tenant: Tenant, staff: StaffUser,
                          state: State) -> Response:
    """Create a connector, or update one (``connector_id``): the same service calls as the staff API, a
    host outside the provider's documented ones only for a provider admin (audited)."""
    form = await _form(request)
    kind_name, editing = _text(form, "kind"), _text(form, "connector_id")
    override = _text(form, "host_override") or None
    try:
        if kind_name not in CONNECTOR_KINDS:
            raise ValidationFailed(FieldError("kind", "choose the kind of connector"))
        if override and not staff.is_admin:
            raise ValidationFailed(FieldError("host_override", "only provider admins may allow another host"))
        async with state.database.provider(tenant_id) as session:
            if editing:
                instance_id = uuid.UUID(editing)
                if override is not None:
                    await connectors.set_host_override(session, instance_id, override, acting=staff.actor,
                                                       settings=state.settings)
                await connectors.update_instance(session, instance_id, acting=staff.actor,
                                                 config=_config_from(kind_name, form, updating=True),
                                                 name=_text(form, "name") or None, settings=state.settings)
            else:
                await connectors.create_instance(session, kind=kind_name, name=_text(form, "name"),
                                                 config=_config_from(kind_name, form, updating=False),
                                                 acting=staff.actor, settings=state.settings, host_override=override)
    except (ValidationFailed, ValueError) as error:
        failure = error if isinstance(error, ValidationFailed) else ValidationFailed(
            FieldError("connector_id", "not a connector of this company"))
        shown = {key.removeprefix("config."): message for key, message in field_errors(request, failure).items()}
        return await _connectors_page(request, console_tenant, state, status_code=failure.status, errors=shown,
                                      form={k: v for k, v in form.items() if isinstance(v, str)}, chosen=kind_name,
                                      editing=uuid.UUID(editing) if _is_uuid(editing) else None, staff=staff)
    return _see(f"{BASE}/{tenant_id}/connectors")


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


@post("/onboarding/{tenant_id:uuid}/connectors/{connector_id:uuid}/test", name="console:onboarding_connector_test")
async def connector_test(request: Request, tenant_id: uuid.UUID, connector_id: uuid.UUID, console_tenant: Tenant,
                         staff: StaffUser, state: State) -> Response:
    """Call the provider and show its answer; with htmx only the result's cell is replaced."""
    async with state.database.provider(tenant_id) as session:
        result: CheckResult = await check_connection(session, connector_id, acting=staff.actor,
                                                     settings=state.settings,
                                                     http_options=getattr(state, "connector_http_options", None))
    if request.headers.get("hx-request"):
        return render(request, "console/onboarding/_check.html", result=result, instance_id=str(connector_id))
    return await _connectors_page(request, console_tenant, state, results={str(connector_id): result}, staff=staff)


@post("/onboarding/{tenant_id:uuid}/connectors/done", name="console:onboarding_connectors_done")
async def connectors_done(tenant_id: uuid.UUID, console_tenant: Tenant, staff: StaffUser, state: State) -> Response:
    async with state.database.system() as session:
        await complete_step(session, tenant_id, "connectors", acting=staff.actor)
    return _see(f"{BASE}/{tenant_id}/policy")


# --- late-payment policy and templates -----------------------------------------------------------------------

def _template_choice(form: Any, locale: str) -> tuple[str, str]:
    kind = _text(form, "kind") if _text(form, "kind") in TEMPLATE_KINDS else "dunning.notice"
    chosen = _text(form, "tlocale") if _text(form, "tlocale") in TEMPLATE_LOCALES else locale
    return kind, chosen


def _policy_values(config) -> dict[str, str]:
    values = config.model_dump(mode="json")
    shown = {name: values[name] for name in POLICY_FIELDS}
    shown["reminder_offsets_days"] = ", ".join(str(day) for day in values["reminder_offsets_days"])
    shown["terminate_after_days"] = "" if values["terminate_after_days"] is None else values["terminate_after_days"]
    for name in ("late_fine_percent", "late_interest_percent_month"):
        shown[name] = f"{values[name]:g}"
    return shown


def _policy_changes(form: dict[str, Any]) -> dict[str, Any]:
    """The form as policy values; a number that is not one is passed on as typed, for the policy's own check
    to name the field."""
    def number(text: str) -> Any:
        return int(text) if text.isdigit() else text

    offsets = [part.strip() for part in _text(form, "reminder_offsets_days").split(",") if part.strip()]
    terminate = _text(form, "terminate_after_days")
    return {"grace_days": number(_text(form, "grace_days")),
            "reminder_offsets_days": [number(part) for part in offsets],
            "reminder_hour_local": number(_text(form, "reminder_hour_local")),
            "auto_block": _text(form, "auto_block") == "on", "auto_unblock": _text(form, "auto_unblock") == "on",
            "terminate_after_days": number(terminate) if terminate else None,
            "block_scope": _text(form, "block_scope") or "contract",
            "reconciliation_auto_repair": _text(form, "reconciliation_auto_repair") == "on",
            "create_customers_from_gateway": _text(form, "create_customers_from_gateway") == "on",
            # A percentage as people type it here ("2", "0,33"); empty is none.
            "late_fine_percent": _text(form, "late_fine_percent").replace(",", ".") or "0",
            "late_interest_percent_month": _text(form, "late_interest_percent_month").replace(",", ".") or "0"}


async def _policy_page(request: Request, tenant: Tenant, state: State, *, form: dict[str, Any] | None = None,
                       status_code: int = 200, errors=None, preview=None, preview_errors=None,
                       saved_version: int | None = None) -> Response:
    async with state.database.provider(tenant.id) as session:
        version, config = await current_policy(session)
    kind, tlocale = _template_choice(form or {}, tenant.locale)
    override = config.override_for(kind, tlocale)
    source = (override.title, override.body) if override else default_source(kind, tlocale)
    values = _policy_values(config)
    template = {"title": source[0], "body": source[1]}
    if form and "title" in form:
        template = {"title": form.get("title") or "", "body": form.get("body") or ""}
    if form and "grace_days" in form:
        values = {name: _text(form, name) for name in POLICY_FIELDS}
        values.update({name: _text(form, name) == "on" for name in CHECKBOXES})
    if preview is None and not preview_errors:
        preview, preview_errors = await _preview(tenant, kind, tlocale, template)
    return _step_page(request, tenant, "policy", "console/onboarding/policy.html", status_code=status_code,
                      version=saved_version or version, values=values, kind=kind, tlocale=tlocale,
                      template=template, kinds=TEMPLATE_KINDS, template_locales=TEMPLATE_LOCALES,
                      kind_labels=message_labels(request),
                      customised=override is not None, errors=errors or {}, preview=preview,
                      preview_errors=preview_errors or {})


async def _preview(tenant: Tenant, kind: str, tlocale: str, template: dict[str, str]):
    rendered, problems = await preview_template(kind, tlocale, title=template["title"], body=template["body"],
                                                tenant={"display_name": tenant.display_name,
                                                        "timezone": tenant.timezone})
    return rendered, {p.field.rsplit(".", 1)[-1]: p.message for p in problems}


@get("/onboarding/{tenant_id:uuid}/policy", name="console:onboarding_policy")
async def policy(request: Request, tenant_id: uuid.UUID, console_tenant: Tenant, state: State,
                 kind: str | None = None, tlocale: str | None = None) -> Response:
    return await _policy_page(request, console_tenant, state, form={"kind": kind or "", "tlocale": tlocale or ""})


@post("/onboarding/{tenant_id:uuid}/policy/preview", name="console:onboarding_policy_preview")
async def policy_preview(request: Request, tenant_id: uuid.UUID, console_tenant: Tenant, state: State) -> Response:
    """The template rendered with the sample case; htmx asks for the fragment as the staff member types,
    and without scripts the preview button posts the whole form here and gets the page back."""
    form = await _form(request)
    kind, tlocale = _template_choice(form, console_tenant.locale)
    template = {"title": form.get("title") or "", "body": form.get("body") or ""}
    rendered, problems = await _preview(console_tenant, kind, tlocale, template)
    _ = gettext_for(request)
    problems = {field: _(message) for field, message in problems.items()}
    if request.headers.get("hx-request"):
        return render(request, "console/onboarding/_preview.html", preview=rendered, preview_errors=problems,
                      tlocale=tlocale)
    return await _policy_page(request, console_tenant, state, form=form, preview=rendered, preview_errors=problems)


@post("/onboarding/{tenant_id:uuid}/policy", name="console:onboarding_policy_save")
async def policy_save(request: Request, tenant_id: uuid.UUID, console_tenant: Tenant, staff: StaffUser,
                      state: State) -> Response:
    form = await _form(request)
    kind, tlocale = _template_choice(form, console_tenant.locale)
    changes = _policy_changes(form)
    title, body = form.get("title") or "", form.get("body") or ""
    try:
        async with state.database.provider(tenant_id) as session:
            _, config = await current_policy(session)
            if (title, body) != default_source(kind, tlocale):  # only a wording of the company's own is kept
                templates = config.model_dump(mode="json")["templates"]
                templates.setdefault(kind, {})[tlocale] = {"title": title, "body": body}
                changes["templates"] = templates
            version, _config = await update_policy(session, changes=changes, acting=staff.actor,
                                                   reason=_text(form, "reason") or "onboarding")
        async with state.database.system() as session:
            await complete_step(session, tenant_id, "policy", acting=staff.actor)
    except ValidationFailed as error:
        shown = {key.rsplit(".", 1)[-1] if key.startswith("templates.") else key: message
                 for key, message in field_errors(request, error).items()}
        return await _policy_page(request, console_tenant, state, form=form, status_code=error.status, errors=shown)
    return _see(f"{BASE}/{tenant_id}/admin")


# --- the first admin -----------------------------------------------------------------------------------------

async def _mails_out(state: State, tenant: Tenant) -> bool:
    """Whether the company's e-mails can leave: an enabled e-mail connector (or the embedded mode's
    recording fallback). Without one the invitation waits as a dead letter until one is set and it is replayed."""
    if state.settings.embedded:
        return True
    async with state.database.provider(tenant.id) as session:
        return await connectors.instance_for_channel(session, Channel.EMAIL) is not None


@get("/onboarding/{tenant_id:uuid}/admin", name="console:onboarding_admin")
async def admin(request: Request, tenant_id: uuid.UUID, console_tenant: Tenant, state: State) -> Response:
    return _step_page(request, console_tenant, "admin", "console/onboarding/admin.html", form={}, errors={},
                      mails_out=await _mails_out(state, console_tenant))


@post("/onboarding/{tenant_id:uuid}/admin", name="console:onboarding_admin_invite")
async def admin_invite(request: Request, tenant_id: uuid.UUID, console_tenant: Tenant, staff: StaffUser,
                       state: State) -> Response:
    form = await _form(request)
    values = {"name": _text(form, "name"), "email": _text(form, "email")}
    base_url = state.settings.base_url or str(request.base_url).rstrip("/")
    portal = f"{base_url}/{console_tenant.slug}"
    try:
        async with state.database.provider(tenant_id) as session:
            await invite_new_user(session, email=values["email"], name=values["name"], role="tenant_admin",
                                  link_for=lambda token: f"{portal}/password/reset/{token}",
                                  tenant_name=console_tenant.display_name, acting=staff.actor)
        async with state.database.system() as session:
            await complete_step(session, tenant_id, "admin", acting=staff.actor)
    except ValidationFailed as error:
        return _step_page(request, console_tenant, "admin", "console/onboarding/admin.html", status_code=error.status,
                          form=values, errors=field_errors(request, error),
                          mails_out=await _mails_out(state, console_tenant))
    return _see(f"{BASE}/{tenant_id}/done?invited={values['email']}")


@get("/onboarding/{tenant_id:uuid}/done", name="console:onboarding_done")
async def done(request: Request, tenant_id: uuid.UUID, console_tenant: Tenant, invited: str | None = None) -> Response:
    return _summary(request, console_tenant, "done", invited=invited)


def _summary(request: Request, tenant: Tenant, step: str, invited: str | None = None) -> Response:
    base_url = str(request.base_url).rstrip("/")
    return _step_page(request, tenant, step, "console/onboarding/done.html", invited=invited,
                      remaining=[s for s in STEPS if s not in steps_done(tenant)], next=next_step(tenant),
                      portal_url=f"{base_url}/{tenant.slug}/")


ROUTES = [start, create, resume, skip_host, branding, branding_save, host, host_save, host_verify, connectors_step,
          connectors_save, connector_test, connectors_done, policy, policy_preview, policy_save, admin, admin_invite,
          done]

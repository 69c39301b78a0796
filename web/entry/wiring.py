"""The composition root: every registry filled and every port plugged, in one visible place.

Nothing registers itself on import. A new connector kind, routine, process step module, job module or
scheduler loop is added to the lists below; the test suite composes through this same function
(``tests/conftest.py``), so what runs in production is what the tests run.
"""

from __future__ import annotations

from backoffice.connectors import kinds as connector_kinds
from backoffice.connectors import ports as connector_ports
from backoffice.connectors.asaas import Asaas, AsaasGateway
from backoffice.connectors.chat import Chat, ChatPort
from backoffice.connectors.clicksign import Clicksign
from backoffice.connectors.directory import ConnectorDirectory
from backoffice.connectors.focusnfe import FocusNfe, FocusNfeIssuer
from backoffice.connectors.platform_http import PlatformPort, TenantPlatform
from backoffice.connectors.service import SECRET_COLUMN as CONNECTOR_SECRETS
from backoffice.connectors.smtp import Smtp, SmtpPort
from backoffice.connectors.stripe import Stripe, StripeCustomers
from backoffice.platform.outbox.exhausted import on_give_up
from backoffice.platform.scheduler.service import register_loops
from backoffice.platform.timers.service import EventSink, install_sink
from backoffice.platform.worker.jobs import register_jobs
from backoffice.platform.worker.middleware import close_at_worker_shutdown
from backoffice.tenants.connections import install_directory
from backoffice.tenants.customers import census
from backoffice.tenants.effects import jobs as effect_jobs
from backoffice.tenants.events import intake
from backoffice.tenants.processes import (
    agreements,
    engine,
    late_payment,
    onboarding,
    plan_change,
    routine_failures,
    termination,
)
from backoffice.tenants.routines import catalogue as routine_catalogue
from backoffice.tenants.routines import engine as routine_engine
from backoffice.tenants.routines import jobs as routine_jobs
from backoffice.tenants.routines.billing import BILLING
from backoffice.tenants.routines.invoices import INVOICES
from backoffice.tenants.routines.overdue_sweep import OVERDUE_SWEEP
from backoffice.tenants.routines.reconciliation import RECONCILIATION
from backoffice.tenants.staff.second_factor import SECRET_COLUMN as STAFF_TOTP_SECRETS
from backoffice.tenants.timeline import messages
from backoffice.tenants.users.oidc import SECRET_COLUMN as SSO_SECRETS
from backoffice.tenants.webhooks import jobs as webhook_jobs
from backoffice.tenants.webhooks import port as webhook_port
from backoffice.tenants.webhooks.service import SECRET_COLUMN as WEBHOOK_SECRETS
from backoffice.web.entry import loops
from backoffice.web.portal.render import translations

CONNECTOR_KINDS = (Asaas, Chat, Clicksign, FocusNfe, TenantPlatform, Smtp, Stripe)
CONNECTOR_PORTS = (SmtpPort, ChatPort, PlatformPort)  # e-mail, chat and the tenant's platform, per tenant
# What a tenant's connection of each kind opens into for the domain (tenants/billing/ports.PaymentGateway,
# tenants/fiscal/ports.FiscalIssuer): the routines reach their gateway and issuer through this directory.
DOMAIN_PORTS = {Asaas.name: AsaasGateway, FocusNfe.name: FocusNfeIssuer, Stripe.name: StripeCustomers}
ROUTINES = (BILLING, OVERDUE_SWEEP, INVOICES, RECONCILIATION)
PROCESS_STEPS = (onboarding, plan_change, termination, late_payment, routine_failures, agreements)
JOBS = (engine, effect_jobs, webhook_jobs, routine_jobs, census)
# Every column where a domain keeps encrypted values (``backoffice secrets rotate`` re-encrypts them all).
SECRET_COLUMNS = (CONNECTOR_SECRETS, WEBHOOK_SECRETS, SSO_SECRETS, STAFF_TOTP_SECRETS)

_composed = False


def compose() -> None:
    """Fill the registries and plug the ports (once per process; calling it again changes nothing)."""
    global _composed
    if _composed:
        return
    connector_kinds.register(*CONNECTOR_KINDS)
    routine_catalogue.register(*ROUTINES)
    engine.register_handlers(*PROCESS_STEPS)
    register_jobs(*JOBS)
    register_loops(loops)
    close_at_worker_shutdown(webhook_port.close_kept)  # the webhook lanes' kept-alive clients
    # The kernel's ports: timers become events through the domain's intake; when the outbox gives up on a
    # job's row, the domain marks what failed (the event in the same transaction, a routine's item after).
    install_sink(EventSink(validate=intake.validate, ingest=intake.ingest_batch, max_batch=intake.MAX_BATCH))
    on_give_up(intake.PROCESS_JOB, intake.fail_given_up)
    on_give_up(routine_engine.ITEM_JOB, routine_engine.give_up_item_job, tenant_session=True)
    on_give_up(routine_engine.PLAN_JOB, routine_engine.give_up_plan_job, tenant_session=True)
    # The domain's outbound ports: webhooks signed and posted; e-mail, chat and the tenant's platform through
    # each tenant's connector.
    webhook_jobs.install()
    connector_ports.install(*CONNECTOR_PORTS)
    install_directory(ConnectorDirectory(DOMAIN_PORTS))
    # The portal's catalogues, for the reasons a process step writes into the company's own texts.
    messages.use_catalogues(lambda locale: translations(locale).gettext)
    _composed = True

"""Imports every model so that ``Base.metadata`` is complete (Alembic, tests)."""

from backoffice.connectors.models import ConnectorInstance
from backoffice.platform.audit.models import AuditEntry
from backoffice.platform.db.base import Base
from backoffice.platform.outbox.models import OutboxEntry
from backoffice.platform.timers.models import Timer
from backoffice.tenants.agreements.models import Agreement, AgreementCharge, AgreementInstalment
from backoffice.tenants.apikeys.models import ApiKey, IdempotencyRecord
from backoffice.tenants.billing.models import Charge, Contract, Payment
from backoffice.tenants.customers.models import Customer, LifecycleTransition
from backoffice.tenants.deadletters.models import Replay
from backoffice.tenants.dunning.models import DunningCase
from backoffice.tenants.effects.models import Effect, OutboundMessage
from backoffice.tenants.events.models import Event
from backoffice.tenants.fiscal.models import FiscalDocument
from backoffice.tenants.notifications.models import Notification
from backoffice.tenants.policies.models import PolicyVersion
from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.routines.models import ReconciliationFinding, RoutineRun, RoutineSetting, RunItem
from backoffice.tenants.routines.repairs import FindingRepair
from backoffice.tenants.signatures.models import Signature
from backoffice.tenants.staff.models import Assignment, Staff
from backoffice.tenants.staff.second_factor import StaffRecoveryCode, StaffSecondFactor
from backoffice.tenants.staff.tokens import StaffToken
from backoffice.tenants.tasks.models import Task
from backoffice.tenants.timeline.models import TimelineEntry
from backoffice.tenants.users.models import TenantUser
from backoffice.tenants.users.oidc import OidcSettings
from backoffice.tenants.users.resets import PasswordReset
from backoffice.tenants.webhooks.models import WebhookDelivery, WebhookEndpoint

metadata = Base.metadata

__all__ = [
    "Agreement", "AgreementCharge", "AgreementInstalment", "FindingRepair",
    "ConnectorInstance",
    "ApiKey", "IdempotencyRecord", "Assignment", "AuditEntry", "Charge", "Contract", "Customer", "DunningCase", "Effect", "Event",
    "FiscalDocument", "LifecycleTransition", "Notification", "OutboundMessage", "OutboxEntry", "Payment",
    "OidcSettings", "PasswordReset", "PolicyVersion", "ReconciliationFinding", "Replay", "RoutineRun", "RoutineSetting", "RunItem", "Signature", "Staff", "StaffRecoveryCode", "StaffSecondFactor", "StaffToken", "Task", "Tenant", "TenantUser", "TimelineEntry", "Timer",
    "WebhookDelivery", "WebhookEndpoint", "metadata",
]

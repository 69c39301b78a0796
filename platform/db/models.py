"""Imports every model so that ``Base.metadata`` is complete (Alembic, tests)."""

from backoffice.platform.audit.models import AuditEntry
from backoffice.platform.db.base import Base
from backoffice.platform.staff.models import Assignment, Staff
from backoffice.tenants.customers.models import Customer
from backoffice.tenants.registry.models import Tenant
from backoffice.tenants.users.models import TenantUser

metadata = Base.metadata

__all__ = ["Assignment", "AuditEntry", "Customer", "Staff", "Tenant", "TenantUser", "metadata"]

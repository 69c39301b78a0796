"""Imports every routine so the catalogue is complete wherever it is read (scheduler, workers, web, CLI).
A routine added in a new module is added here."""

import backoffice.tenants.routines.billing  # noqa: F401
import backoffice.tenants.routines.dunning  # noqa: F401
import backoffice.tenants.routines.invoices  # noqa: F401
import backoffice.tenants.routines.reconciliation  # noqa: F401

"""Imports every module that declares jobs. The worker, the embedded runtime and the tests import
this one module, so a job can never be missing from one process and present in another."""

import backoffice.platform.worker.builtin  # noqa: F401
import backoffice.connectors.wiring  # noqa: F401  connector kinds; e-mail (SMTP) and chat ports
import backoffice.tenants.effects.jobs  # noqa: F401  effects.deliver
import backoffice.tenants.processes.jobs  # noqa: F401  spine.process_event and every process handler
import backoffice.tenants.routines.jobs  # noqa: F401  routines.plan, routines.item
import backoffice.tenants.webhooks.jobs  # noqa: F401  webhooks.deliver; installs the webhook port

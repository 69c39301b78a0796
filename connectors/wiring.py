"""Imported by ``platform/worker/actors.py``: every connector kind registered, and the e-mail and chat
ports of ``tenants/effects`` replaced by the ones that deliver through each tenant's connector."""

import backoffice.connectors.kinds  # noqa: F401
from backoffice.connectors.ports import install

install()

"""Imports every built-in connector kind, so the registry is complete wherever this one module is
imported (the web app's hook route, the worker's ports). A kind added in a new module is added here."""

import backoffice.connectors.asaas  # noqa: F401
import backoffice.connectors.chat  # noqa: F401
import backoffice.connectors.clicksign  # noqa: F401
import backoffice.connectors.focusnfe  # noqa: F401
import backoffice.connectors.platform_http  # noqa: F401
import backoffice.connectors.smtp  # noqa: F401
import backoffice.connectors.stripe  # noqa: F401

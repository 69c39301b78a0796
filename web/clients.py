"""Who the client is: the connecting address, or what a trusted reverse proxy says it forwarded.

One rule for every entry point (``backoffice web``, the embedded process, the test app): uvicorn's own
proxy-header handling is off (``web/entry/runtime.py``; left on, its default believes ``X-Forwarded-For`` from
loopback, so anything that can reach the port through a local hop picks its own address), and the app applies
``BACKOFFICE_TRUSTED_PROXIES`` here instead. Only a request whose connecting address is one of those proxies has
``X-Forwarded-For`` and ``X-Forwarded-Proto`` applied; the client is then the nearest address of the chain that is
not itself a trusted proxy (what a proxy appends cannot be forged, what the client sent first can). From anyone
else the headers are ignored. The empty default trusts no one.
"""

from __future__ import annotations

from litestar.connection import ASGIConnection
from litestar.middleware import DefineMiddleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from backoffice.platform.settings import Settings


def trusted_proxy_middleware(settings: Settings) -> DefineMiddleware:
    """Rewrites the scope's client and scheme before any route sees them."""
    return DefineMiddleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxy_networks)


def client_address(connection: ASGIConnection) -> str:
    client = connection.scope.get("client")
    return client[0] if client else "unknown"

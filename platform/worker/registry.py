"""Declaring jobs without a broker in hand.

Modules declare their jobs with :func:`tenant_job` (or :func:`platform_job`) at import time; the
broker is built later, once settings are known, and declares every registered job on itself
(:func:`backoffice.platform.worker.broker.build_broker`). So importing a domain module never creates a
broker by accident, and tests can build a broker of their own.

A tenant job is an ``async def job(session, *, tenant_id, **ids)``: it receives a session already
bound to the message's tenant (committed when the job returns, rolled back when it raises). Messages
carry ``tenant_id`` explicitly; a message without one is refused, never run under a default tenant.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

Job = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class JobSpec:
    name: str
    fn: Job
    queue: str
    tenant_scoped: bool
    options: dict[str, Any] = field(default_factory=dict)


REGISTRY: dict[str, JobSpec] = {}


def _register(name: str, fn: Job, queue: str, tenant_scoped: bool, options: dict[str, Any]) -> Job:
    if name in REGISTRY and REGISTRY[name].fn is not fn:
        raise RuntimeError(f"job {name!r} is declared twice")
    REGISTRY[name] = JobSpec(name=name, fn=fn, queue=queue, tenant_scoped=tenant_scoped, options=options)
    return fn


def tenant_job(name: str, *, queue: str = "default", **options: Any) -> Callable[[Job], Job]:
    """Declare a job named ``"domain.event"`` that runs inside one tenant's scope."""
    return lambda fn: _register(name, fn, queue, True, options)


def platform_job(name: str, *, queue: str = "platform", **options: Any) -> Callable[[Job], Job]:
    """Declare a job that works across tenants with the system session (use sparingly)."""
    return lambda fn: _register(name, fn, queue, False, options)

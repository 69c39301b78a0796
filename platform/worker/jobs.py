"""Declaring jobs without a broker in hand.

Modules declare their jobs with :func:`tenant_job` (or :func:`platform_job`), which only marks the
function; the composition root (``web/entry/wiring.py``) names every module with jobs and registers them
(:func:`register_jobs`); the broker is built later, once settings are known, and declares every
registered job on itself (:func:`backoffice.platform.worker.broker.build_broker`). So importing a domain
module never registers or creates anything, and tests can register jobs of their own.

A tenant job is an ``async def job(session, *, tenant_id, **ids)``: it receives a session already
bound to the message's tenant (committed when the job returns, rolled back when it raises). Messages
carry ``tenant_id`` explicitly; a message without one is refused, never run under a default tenant.

A *batch* job (``tenant_job(name, batch=N)``) is an ``async def job(session, *, tenant_id, items)``: the
relay hands it up to N of one tenant's outbox rows in one message, ``items`` a list of :class:`BatchItem`.
It does the work of all of them in one transaction (read in a few statements, decide in memory, write each
table once) and returns a :class:`BatchOutcome` naming the items to try again later; every other item's
outbox row is completed in the same transaction. Sent directly (not through the relay), a batch job's
message carries one item's ids, like any job's.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

log = logging.getLogger(__name__)
Job = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class JobSpec:
    name: str
    fn: Job
    queue: str
    tenant_scoped: bool
    options: dict[str, Any] = field(default_factory=dict)
    batch: int | None = None  # a batch job: at most this many items per message


@dataclass(frozen=True)
class BatchItem:
    """One outbox row handed to a batch job: its ids (``payload``), and how many times the relay has
    handed it out (``attempts``, 1 the first time), so the job can give up on an item that keeps failing.
    ``outbox_id`` is None for an item sent directly rather than through the outbox."""

    payload: dict[str, Any]
    outbox_id: uuid.UUID | None = None
    attempts: int = 1


def item_ids(items: list[BatchItem], key: str, job: str) -> list[uuid.UUID]:
    """The ids named by ``key`` in a batch's items, in order; an item without a valid one is logged and
    left out (its outbox row completes: there is nothing it could ever do)."""
    ids = []
    for item in items:
        try:
            ids.append(uuid.UUID(str(item.payload[key])))
        except (KeyError, ValueError):
            log.error("%s: outbox %s carries no valid %s: %r", job, item.outbox_id, key, item.payload)
    return ids


@dataclass(frozen=True)
class Deferral:
    retry_at: datetime
    reason: str


@dataclass
class BatchOutcome:
    """What a batch job tells its wrapper: the items to hand out again at ``retry_at`` (their outbox rows
    stay open, the reason kept on the row); every other item is done."""

    deferred: dict[uuid.UUID, Deferral] = field(default_factory=dict)


REGISTRY: dict[str, JobSpec] = {}
"""The jobs a broker declares, filled by :func:`register_jobs` (the composition root, ``web/entry/wiring.py``)."""


def _declare(name: str, fn: Job, queue: str, tenant_scoped: bool, options: dict[str, Any],
             batch: int | None = None) -> Job:
    fn.job_spec = JobSpec(name=name, fn=fn, queue=queue, tenant_scoped=tenant_scoped,  # type: ignore[attr-defined]
                          options=options, batch=batch)
    return fn


def tenant_job(name: str, *, queue: str = "default", batch: int | None = None, **options: Any) -> Callable[[Job], Job]:
    """Declare a job named ``"domain.event"`` that runs inside one tenant's scope (``batch``: see above).
    Declaring only marks the function; :func:`register_jobs` puts it in the registry."""
    return lambda fn: _declare(name, fn, queue, True, options, batch)


def platform_job(name: str, *, queue: str = "platform", **options: Any) -> Callable[[Job], Job]:
    """Declare a job that works across tenants with the system session (use sparingly)."""
    return lambda fn: _declare(name, fn, queue, False, options)


def declared_jobs(source: Any) -> list[JobSpec]:
    """The jobs a module declares (or the one a declared function is)."""
    spec = getattr(source, "job_spec", None)
    if isinstance(spec, JobSpec):
        return [spec]
    return [value.job_spec for value in vars(source).values()
            if callable(value) and isinstance(getattr(value, "job_spec", None), JobSpec)]


def register_jobs(*sources: Any) -> None:
    """Put the jobs declared by each source (a module, or a declared job function) in the registry.
    A source that declares none is a mistake in the list and is refused; a name declared twice, too."""
    for source in sources:
        specs = declared_jobs(source)
        if not specs:
            raise ValueError(f"{getattr(source, '__name__', source)!r} declares no job")
        for spec in specs:
            existing = REGISTRY.get(spec.name)
            if existing is not None and existing.fn is not spec.fn:
                raise RuntimeError(f"job {spec.name!r} is declared twice")
            REGISTRY[spec.name] = spec

"""Imports every process so their handlers register with the engine (the worker imports this)."""

from backoffice.tenants.processes import (  # noqa: F401
    dunning, engine, onboarding, plan_change, routine_failures, termination,
)

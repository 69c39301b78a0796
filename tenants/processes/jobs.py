"""Imports every process so their handlers register with the engine (the worker imports this)."""

from backoffice.tenants.processes import dunning, engine, onboarding, plan_change, termination  # noqa: F401

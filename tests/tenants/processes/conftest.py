"""The running spine moved up to tests/tenants/conftest.py (the routines' tests use it too); the names
scenario modules import from here stay importable."""

from tests.tenants.conftest import START, Spine, get_port, new_customer

__all__ = ["START", "Spine", "get_port", "new_customer"]

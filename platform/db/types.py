"""Column helpers shared by the domain models."""

from __future__ import annotations

import enum

from sqlalchemy import Enum


def str_enum(cls: type[enum.StrEnum], length: int = 24) -> Enum:
    """A string enum stored as its value (VARCHAR + CHECK), identical on PostgreSQL and SQLite."""
    return Enum(cls, native_enum=False, length=length, values_callable=lambda e: [m.value for m in e],
                validate_strings=True)


def customer_fk(prefix: str = "") -> tuple:
    """Composite foreign key to the customer of the same tenant."""
    from sqlalchemy import ForeignKeyConstraint

    return (ForeignKeyConstraint(["tenant_id", f"{prefix}customer_id"], ["customers.tenant_id", "customers.id"]),)

"""Errors the services raise; the web and CLI edges turn them into answers that name the field."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class ValidationFailed(ValueError):
    """Input refused; nothing was written."""

    status = 422

    def __init__(self, errors: list[FieldError] | FieldError) -> None:
        self.errors = [errors] if isinstance(errors, FieldError) else list(errors)
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in self.errors))


class Conflict(ValidationFailed):
    """The input clashes with existing data (a duplicate slug, CNPJ, e-mail)."""

    status = 409


class InputRefused(ValidationFailed):
    """Input that breaks the rule every input obeys (``platform/input_rules.py``): malformed, not merely
    unacceptable, so a 400 like any request that does not parse; nothing was read or written."""

    status = 400


class Collector:
    """Gathers every field problem of one input before refusing it, so the user fixes all at once."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def add(self, field: str, message: str) -> None:
        self.errors.append(FieldError(field, message))

    def check(self, field: str, func, value):
        try:
            return func(value)
        except ValueError as error:
            self.add(field, str(error))
            return None

    def raise_if_any(self) -> None:
        if self.errors:
            raise ValidationFailed(self.errors)

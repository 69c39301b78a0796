"""Brazilian tax ids: CPF (people) and CNPJ (companies), including the alphanumeric CNPJ.

From July 2026 the Receita Federal issues CNPJs whose first twelve characters may be letters; the two
check digits stay numeric and are computed over ``ord(char) - 48`` with the same weights, which for
digits is the classic algorithm. Inputs may carry the usual punctuation (``12.345.678/0001-95``).
"""

from __future__ import annotations

import re
from typing import Literal

_STRIP = re.compile(r"[.\-/\s]")
_CNPJ = re.compile(r"^[0-9A-Z]{12}[0-9]{2}$")
_CPF = re.compile(r"^[0-9]{11}$")


class InvalidDocument(ValueError):
    pass


def _check_digit(body: str, weights: list[int]) -> int:
    total = sum((ord(char) - 48) * weight for char, weight in zip(body, weights, strict=True))
    remainder = total % 11
    return 0 if remainder < 2 else 11 - remainder


def normalize_cnpj(value: str) -> str:
    cnpj = _STRIP.sub("", value or "").upper()
    if not _CNPJ.match(cnpj):
        raise InvalidDocument("expected a CNPJ: 14 characters (12 letters or digits, then 2 check digits)")
    if len(set(cnpj)) == 1:
        raise InvalidDocument("expected a CNPJ: a repeated single character is not a valid CNPJ")
    first = _check_digit(cnpj[:12], [5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2])
    second = _check_digit(cnpj[:12] + str(first), [6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2])
    if cnpj[12:] != f"{first}{second}":
        raise InvalidDocument("expected a CNPJ: the check digits do not match")
    return cnpj


def normalize_cpf(value: str) -> str:
    cpf = _STRIP.sub("", value or "")
    if not _CPF.match(cpf):
        raise InvalidDocument("expected a CPF: 11 digits")
    if len(set(cpf)) == 1:
        raise InvalidDocument("expected a CPF: a repeated single digit is not a valid CPF")
    digits = [int(c) for c in cpf]
    for size in (9, 10):
        total = sum(d * w for d, w in zip(digits[:size], range(size + 1, 1, -1), strict=True))
        check = (total * 10) % 11 % 10
        if digits[size] != check:
            raise InvalidDocument("expected a CPF: the check digits do not match")
    return cpf


def normalize_tax_id(value: str) -> tuple[Literal["cpf", "cnpj"], str]:
    """A CPF or a CNPJ, told apart by length; returns (kind, normalized)."""
    compact = _STRIP.sub("", value or "")
    if len(compact) == 11:
        return "cpf", normalize_cpf(compact)
    if len(compact) == 14:
        return "cnpj", normalize_cnpj(compact)
    raise InvalidDocument("expected a CPF (11 digits) or a CNPJ (14 characters)")


def format_cnpj(cnpj: str) -> str:
    return f"{cnpj[:2]}.{cnpj[2:5]}.{cnpj[5:8]}/{cnpj[8:12]}-{cnpj[12:]}"


def format_cpf(cpf: str) -> str:
    return f"{cpf[:3]}.{cpf[3:6]}.{cpf[6:9]}-{cpf[9:]}"

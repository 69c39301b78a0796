"""CPF and CNPJ: punctuation accepted, check digits verified, the alphanumeric CNPJ (2026) supported."""

from __future__ import annotations

import pytest

from backoffice.platform.documents import (
    InvalidDocument,
    format_cnpj,
    format_cpf,
    normalize_cnpj,
    normalize_cpf,
    normalize_tax_id,
)


@pytest.mark.parametrize(
    ("given", "normalized"),
    [
        ("529.982.247-25", "52998224725"),
        ("52998224725", "52998224725"),
        ("111.444.777-35", "11144477735"),
        (" 390 533 447 05 ", "39053344705"),
    ],
)
def test_valid_cpf_normalizes_to_digits(given, normalized):
    assert normalize_cpf(given) == normalized
    assert format_cpf(normalized) == f"{normalized[:3]}.{normalized[3:6]}.{normalized[6:9]}-{normalized[9:]}"


@pytest.mark.parametrize(
    "given",
    [
        "529.982.247-24",  # second check digit wrong
        "529.982.247-15",  # first check digit wrong
        "111.111.111-11",  # repeated digits pass the arithmetic but are not issued
        "000.000.000-00",
        "5299822472",  # too short
        "529982247255",  # too long
        "529.982.24A-25",  # letters are not allowed in a CPF
        "",
    ],
)
def test_invalid_cpf_is_refused(given):
    with pytest.raises(InvalidDocument, match="CPF"):
        normalize_cpf(given)


@pytest.mark.parametrize(
    ("given", "normalized"),
    [
        ("11.222.333/0001-81", "11222333000181"),
        ("45.723.174/0001-10", "45723174000110"),
        ("34028316000103", "34028316000103"),
        # The Receita Federal's published example of the alphanumeric CNPJ.
        ("12.ABC.345/01DE-35", "12ABC34501DE35"),
        ("12.abc.345/01de-35", "12ABC34501DE35"),
    ],
)
def test_valid_cnpj_normalizes(given, normalized):
    assert normalize_cnpj(given) == normalized
    assert normalize_cnpj(format_cnpj(normalized)) == normalized


@pytest.mark.parametrize(
    "given",
    [
        "11.222.333/0001-82",  # second check digit wrong
        "11.222.333/0001-91",  # first check digit wrong
        "12.ABC.345/01DE-36",  # alphanumeric, wrong check digit
        "12.ABC.345/01DE-3A",  # check digits are always numeric
        "11.111.111/1111-11",
        "00.000.000/0000-00",
        "1122233300018",  # 13 characters
        "12.AB#.345/01DE-35",  # not a letter or digit
        "",
    ],
)
def test_invalid_cnpj_is_refused(given):
    with pytest.raises(InvalidDocument, match="CNPJ"):
        normalize_cnpj(given)


def test_tax_id_is_told_apart_by_length():
    assert normalize_tax_id("529.982.247-25") == ("cpf", "52998224725")
    assert normalize_tax_id("12.abc.345/01de-35") == ("cnpj", "12ABC34501DE35")
    with pytest.raises(InvalidDocument):
        normalize_tax_id("123456789012")
    with pytest.raises(InvalidDocument):
        normalize_tax_id("529.982.247-26")

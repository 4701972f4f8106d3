"""GB 32100-2015 check character of the unified social credit code (features/uscc.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.uscc import ALPHABET, check_character, is_valid, make_code, valid_mask

REAL_CODE = "91350100M000100Y43"  # the worked example published with GB 32100-2015


def test_published_example_is_valid() -> None:
    assert is_valid(REAL_CODE)
    assert check_character(REAL_CODE[:17]) == "3"


def test_every_single_character_change_is_detected() -> None:
    variants = [
        REAL_CODE[:i] + symbol + REAL_CODE[i + 1:]
        for i in range(len(REAL_CODE))
        for symbol in ALPHABET
        if symbol != REAL_CODE[i]
    ]
    assert len(variants) == 18 * 30
    assert not valid_mask(pd.Series(variants)).any()


@pytest.mark.parametrize("code", [
    REAL_CODE.lower(),
    "91350100m000100Y43",
    *(REAL_CODE[:9] + bad + REAL_CODE[10:] for bad in "IOZSV"),
    REAL_CODE[:-1],
    REAL_CODE + "3",
    "",
    "９１３５０１００Ｍ０００１００Ｙ４３",  # full-width: ingest normalises before checking
])
def test_malformed_codes_are_invalid(code: str) -> None:
    assert not is_valid(code)


def test_letters_outside_the_alphabet_have_no_check_character() -> None:
    assert not set("IOSVZ") & set(ALPHABET)
    with pytest.raises(ValueError):
        check_character("91350100I00010OY4")


def test_vectorised_mask_handles_missing_and_mixed_values() -> None:
    codes = pd.Series([REAL_CODE, None, np.nan, "x", REAL_CODE[:-1] + "4"], dtype=object)
    assert valid_mask(codes).tolist() == [True, False, False, False, False]


@pytest.mark.parametrize("prefix", ["91440105", "92440105", "93350100"])
def test_make_code_round_trip(prefix: str) -> None:
    serials = [0, 1, 30, 31, 123_456_789, 31**9 - 1]
    codes = [make_code(prefix, serial) for serial in serials]
    assert len(set(codes)) == len(serials)
    assert all(len(code) == 18 and code.startswith(prefix) for code in codes)
    assert valid_mask(pd.Series(codes)).all()
    assert all(check_character(code[:17]) == code[17] for code in codes)


def test_make_code_refuses_what_it_cannot_encode() -> None:
    with pytest.raises(ValueError):
        make_code("9144", 1)
    with pytest.raises(ValueError):
        make_code("91440105", 31**9)

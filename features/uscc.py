"""统一社会信用代码 (unified social credit code) check character, GB 32100-2015.

The 18th character is a mod-31 checksum over the first 17 with fixed weights; a wrong one is the
commonest sign of a mistyped or truncated code in departmental exports, so ingest checks it for
every row (vectorised, since a province has millions).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # 31 symbols: no I, O, S, V, Z
WEIGHTS = np.array([1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28], dtype=np.int64)
CODE_LENGTH = 18

_VALUE = np.full(256, -1, dtype=np.int64)
for _i, _ch in enumerate(ALPHABET):
    _VALUE[ord(_ch)] = _i


def check_character(first17: str) -> str:
    """The GB 32100 check character for the first 17 characters of a code."""
    if len(first17) != CODE_LENGTH - 1:
        raise ValueError(f"need 17 characters, got {len(first17)}")
    values = [ALPHABET.index(ch) for ch in first17]
    remainder = int(np.dot(values, WEIGHTS)) % 31
    return ALPHABET[(31 - remainder) % 31]


def is_valid(code: str) -> bool:
    """True when `code` has 18 valid symbols and a correct check character."""
    return bool(valid_mask(pd.Series([code]))[0])


def valid_mask(codes: pd.Series) -> np.ndarray:
    """Vectorised validity of many codes (non-strings and wrong lengths are invalid)."""
    text = codes.astype("string").fillna("")
    ok_length = (text.str.len() == CODE_LENGTH).to_numpy(dtype=bool)
    result = np.zeros(len(text), dtype=bool)
    if not ok_length.any():
        return result
    candidates = text[ok_length]
    encoded = np.frombuffer(
        "".join(candidates.tolist()).encode("latin-1", errors="replace"), dtype=np.uint8
    ).reshape(-1, CODE_LENGTH)
    values = _VALUE[encoded]
    symbols_ok = (values >= 0).all(axis=1)
    checksum = (31 - (values[:, :17] @ WEIGHTS) % 31) % 31
    result[ok_length] = symbols_ok & (checksum == values[:, 17])
    return result


def make_code(prefix: str, serial: int) -> str:
    """Build a valid code from a 2-char prefix, a 6-digit area code and a serial number.

    `prefix` is the registration authority and entity type, e.g. "91" (market regulator,
    enterprise) followed by the 6-digit administrative division code, e.g. "91440105" for Haizhu.
    The organisation part is the serial in base 31 so codes are unique per serial.
    """
    if len(prefix) != 8:
        raise ValueError("prefix must be 8 characters: authority, type and area code")
    digits = []
    n = serial
    for _ in range(9):
        n, r = divmod(n, 31)
        digits.append(ALPHABET[r])
    if n:
        raise ValueError("serial too large for 9 base-31 digits")
    first17 = prefix + "".join(reversed(digits))
    return first17 + check_character(first17)

"""Days, months and text columns built from integer codes without Python loops.

The simulator keeps dates as day numbers (days since 1970-01-01) and categorical text as
small-integer codes into a vocabulary; only when a table is assembled are they turned into
ISO date strings and text, through Arrow `take`, so a million-firm district stays fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from features.uscc import ALPHABET, WEIGHTS

EPOCH = date(1970, 1, 1)
NO_DAY = np.iinfo(np.int32).max  # "never" for day-valued state


def day_number(d: date) -> int:
    """Days since 1970-01-01."""
    return (d - EPOCH).days


def days_to_dates(days: np.ndarray) -> np.ndarray:
    """Day numbers to numpy datetime64[D]."""
    return np.asarray(days, dtype=np.int64).astype("datetime64[D]")


@dataclass(frozen=True)
class Timeline:
    """The simulated months: `month_start[t]` is the first day of month t, plus one more."""

    month_start: np.ndarray  # int64 day numbers, length months + 1
    end_day: int

    @classmethod
    def ending(cls, end: date, years: int) -> Timeline:
        last = np.datetime64(end, "M")
        months = np.arange(last - (12 * years - 1), last + 2)
        starts = months.astype("datetime64[D]").astype(np.int64)
        return cls(month_start=starts, end_day=day_number(end))

    @property
    def months(self) -> int:
        return len(self.month_start) - 1

    @property
    def start_day(self) -> int:
        return int(self.month_start[0])

    def calendar_month(self, t: int) -> tuple[int, int]:
        """(year, month 1–12) of simulated month t."""
        m = np.datetime64(int(self.month_start[t]), "D").astype("datetime64[M]").astype(int)
        return 1970 + m // 12, m % 12 + 1

    def month_index(self, days: np.ndarray) -> np.ndarray:
        """Simulated month of each day (-1 before the window, `months` after it)."""
        return np.searchsorted(self.month_start, days, side="right") - 1

    def month_dates(self) -> np.ndarray:
        return days_to_dates(self.month_start[:-1])


def day_of_year(year: int, month: int, day: int) -> int:
    return day_number(date(year, month, day))


def date_strings(days: np.ndarray, missing: np.ndarray | None = None) -> pa.Array:
    """ISO 'YYYY-MM-DD' strings (null where `missing`)."""
    values = pa.array(np.asarray(days, dtype=np.int32), type=pa.int32(), mask=missing)
    return values.cast(pa.date32()).cast(pa.string())


def take_text(vocabulary: Sequence[str], codes: np.ndarray) -> pa.Array:
    """Text from a vocabulary by integer code; negative codes become null."""
    codes = np.asarray(codes)
    indices = pa.array(np.where(codes < 0, 0, codes).astype(np.int32), mask=codes < 0)
    return pa.array(list(vocabulary), type=pa.string()).take(indices)


def numbered(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """Ids like 'EV0000000042': prefix plus zero-padded numbers."""
    text = pc.utf8_lpad(pa.array(np.asarray(numbers, dtype=np.int64)).cast(pa.string()), width, "0")
    return pc.binary_join_element_wise(prefix, text, "")


def concat_text(*parts: pa.Array | str) -> pa.Array:
    """Element-wise concatenation of text columns and constants."""
    return pc.binary_join_element_wise(*parts, "")


def fixed_width_codes(values: np.ndarray, alphabet: str, width: int) -> np.ndarray:
    """Digits of `values` in base len(alphabet), most significant first, as a uint8 matrix."""
    base = len(alphabet)
    symbols = np.frombuffer(alphabet.encode("ascii"), dtype=np.uint8)
    n = np.asarray(values, dtype=np.int64).copy()
    out = np.empty((len(n), width), dtype=np.uint8)
    for position in range(width - 1, -1, -1):
        n, remainder = np.divmod(n, base)
        out[:, position] = symbols[remainder]
    if (n != 0).any():
        raise ValueError(f"value too large for {width} base-{base} digits")
    return out


def bytes_matrix_to_text(matrix: np.ndarray) -> pa.Array:
    """Rows of an ASCII uint8 matrix as strings."""
    width = matrix.shape[1]
    flat = np.ascontiguousarray(matrix).view(f"S{width}").ravel()
    return pa.array(flat, type=pa.binary(width)).cast(pa.string())


def uscc_codes(prefixes: np.ndarray, prefix_vocabulary: Sequence[str],
               serials: np.ndarray) -> pa.Array:
    """Valid 统一社会信用代码 for many firms at once (same result as `features.uscc.make_code`)."""
    prefix_bytes = np.array(
        [list(p.encode("ascii")) for p in prefix_vocabulary], dtype=np.uint8
    )[np.asarray(prefixes)]
    body = np.concatenate([prefix_bytes, fixed_width_codes(serials, ALPHABET, 9)], axis=1)
    value_of = np.full(256, 0, dtype=np.int64)
    for i, ch in enumerate(ALPHABET):
        value_of[ord(ch)] = i
    checksum = (31 - (value_of[body] @ WEIGHTS) % 31) % 31
    check = np.frombuffer(ALPHABET.encode("ascii"), dtype=np.uint8)[checksum]
    return bytes_matrix_to_text(np.concatenate([body, check[:, None]], axis=1))


def join_lists(*parts: pa.Array) -> pa.Array:
    """';'-joined list column from several text columns (nulls skipped)."""
    return pc.binary_join_element_wise(*parts, ";", null_handling="skip")

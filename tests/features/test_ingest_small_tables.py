"""A few rows (an on-demand record) skip pandera but must be judged exactly as a full ingest
judges them: same rejects, same rules, same messages, for every table of the contract."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from features import ingest
from features.contract import TABLES, Column, Table
from features.ingest import TEXT, RawTable, validate_table

VALID_USCC = "91440105006E403RJ7"


def _bad(column: Column) -> list[str | None]:
    """Values breaking each per-value rule of `column`, a borderline good one, and a blank."""
    values: list[str | None] = [None]
    if column.allowed is not None:
        values += ["not-a-code", column.allowed[0]]
    if column.minimum is not None:
        values += [str(int(column.minimum) - 1), str(int(column.minimum))]
    if column.maximum is not None:
        values += [str(int(column.maximum) + 1), str(int(column.maximum))]
    if column.max_length is not None:
        values += ["x" * (column.max_length + 1), "x" * column.max_length]
    if column.kind == "uscc":
        values += [VALID_USCC[:-1] + "0", VALID_USCC]
    return values


def _raw(table: Table) -> RawTable:
    """One row per (column, value) with every other column blank: each row trips the rules
    of its column and the required columns it leaves empty."""
    rows: list[dict[str, str | None]] = []
    for column in table.columns:
        rows += [{column.name: value} for value in _bad(column)]
    values = pa.table({c.name: pa.array([r.get(c.name) for r in rows], TEXT)
                       for c in table.columns})
    positions = np.arange(1, len(rows) + 1, dtype=np.int64)
    structural = pd.DataFrame(columns=list(ingest.REJECT_COLUMNS), dtype=object)
    return RawTable(f"{table.name}.csv", values, positions, positions.copy(), structural)


def _rejects(table: Table, small_rows: int, monkeypatch: pytest.MonkeyPatch) -> pd.DataFrame:
    monkeypatch.setattr(ingest, "SMALL_TABLE_ROWS", small_rows)
    references = {key: pa.array([VALID_USCC], TEXT) for key in ingest.REFERENCED}
    rejects = validate_table(table, _raw(table), references).rejects
    return rejects.sort_values(["row", "column", "rule"]).reset_index(drop=True)


@pytest.mark.parametrize("name", sorted(TABLES))
def test_direct_rules_reject_what_pandera_rejects(name: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    table = TABLES[name]
    size = _raw(table).values.num_rows
    direct = _rejects(table, size, monkeypatch)
    through_pandera = _rejects(table, 0, monkeypatch)
    assert len(through_pandera) > 0
    pd.testing.assert_frame_equal(direct, through_pandera)

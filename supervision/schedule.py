"""The construction inspectors' working list: which sites are due, most urgent first.

A site is on the list for a date when its next due date (from the risk matrix, including
event overrides) is on or before that date. The order is what a supervision station works
through when it cannot visit everything at once: the most intensive supervision level first,
then the highest management-risk probability, then the longest overdue, then project id so
the list is the same on every run (`models.matrix.rank_due`, shared with the backtest).
"""

from __future__ import annotations

from datetime import date

import pandas as pd

from models.matrix import rank_due

DUE_LIST_COLUMNS: tuple[str, ...] = (
    "rank",
    "project_id",
    "level",
    "level_zh",
    "level_en",
    "level_rank",
    "cell",
    "risk_source_grade",
    "management_grade",
    "probability",
    "interval_days",
    "last_inspection_date",
    "next_due_date",
    "days_overdue",
    "overrides",
    "reasons",
)


def due_list(placements: pd.DataFrame, as_of: date | pd.Timestamp | str) -> pd.DataFrame:
    """Projects due or overdue on `as_of`, ranked (1 = first to visit), with their reasons.

    `placements` is `models.matrix.place_projects` output. Returns `DUE_LIST_COLUMNS`;
    `days_overdue` is 0 for a site due that very day. An empty frame (same columns) when
    nothing is due.
    """
    ranked = rank_due(placements, pd.Timestamp(as_of))
    for column in DUE_LIST_COLUMNS:
        if column not in ranked.columns:
            ranked[column] = pd.NA
    return ranked[list(DUE_LIST_COLUMNS)]

"""Enterprise labels: did a real problem surface in the window after `as_of`?

For each enterprise existing on `as_of` (same rule as the features), the label window is
`[as_of, as_of + window_months)`. The label is 1 when, inside the window,

* an inspection found a problem that is *not* on the exemption list: outcome other than
  `no_problem` and `violation_code` not an exempt code. `unreachable` counts as a problem: it
  puts the firm on the abnormal-operation list, which is itself a labelled event; or
* an administrative penalty, an abnormal-list entry or a serious-dishonesty listing occurred.

Exempt minor lapses (轻微违法免处罚清单, first offence corrected in time) never label a firm.

Which registry events label a firm is policy (`label_events`, `excluded_event_items`): a listing
whose cause is only a filing lapse (an annual report not filed by 30 June, and the
serious-dishonesty listing that follows three years of it) records paperwork, not a violation
found, so a district may exclude those causes by their item code. The defaults are the
original definition: every penalty, abnormal-list entry and serious-dishonesty listing counts.

Timing (the triage-style rule that keeps training honest): a record counts when its
occurred/inspection date lies in the window *and* the regulator knew it before
`window_end + grace_days`. Results are typically published within 20 working days, so a small
grace lets late-recorded results in while fixing, in advance, the day a label becomes final:
`label_available_date(as_of, window_months, grace_days)`. A model trained on day T may only use
label rows whose available date is on or before T.

Inspection-design columns support unbiased estimates: `random_inspected`, the first random
draw's `inclusion_probability`, `ipw_weight = 1 / π` and `random_draw_problem` (what that draw
found), so problem rates can be estimated by inverse-probability weighting.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import date

import numpy as np
import pandas as pd

from features.contract import ENTERPRISE_EVENT_TYPES
from features.enterprise_features import (
    as_of_timestamp,
    day_number,
    day_numbers,
    encode_codes,
    enterprise_universe,
    snapshot_table,
)

DEFAULT_LABEL_GRACE_DAYS = 60
LABEL_EVENT_TYPES: tuple[str, ...] = ("penalty", "abnormal_list_in", "serious_dishonesty_in")
INSPECTION_SOURCE_KIND = "inspection"
_NAT_DAY = np.iinfo(np.int64).min


def label_window(
    as_of: date | pd.Timestamp | str, window_months: int
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """`[start, end)` of the label window: `as_of` up to (not including) `as_of + months`."""
    if window_months <= 0:
        raise ValueError(f"标签窗口月数必须为正 / window_months must be positive: {window_months}")
    start = as_of_timestamp(as_of)
    return start, start + pd.DateOffset(months=window_months)


def label_available_date(
    as_of: date | pd.Timestamp | str, window_months: int, grace_days: int
) -> pd.Timestamp:
    """First day on which the label for `as_of` is final: window end plus the grace period.

    Records known on or after this day are ignored by `build_enterprise_labels`, so a training
    run on day T may use the labels of every as_of whose available date is ≤ T.
    """
    if grace_days < 0:
        raise ValueError(f"宽限天数不得为负 / grace_days must not be negative: {grace_days}")
    _, end = label_window(as_of, window_months)
    return end + pd.Timedelta(days=grace_days)


def _column(table: pd.DataFrame, name: str, rows: np.ndarray) -> pd.Series:
    """The `rows` of one column, positionally indexed so derived series align."""
    return table[name].iloc[rows].reset_index(drop=True)


def _flags(column: pd.Series) -> np.ndarray:
    return column.to_numpy(dtype=bool, na_value=False)


def _in_window(
    table: pd.DataFrame,
    date_column: str,
    universe: pd.Index,
    bounds: tuple[int, int, int],
    wanted: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, owner, day) of `wanted` records dated in [start, end), known before `known_by`."""
    start, end, known_by = bounds
    day = day_numbers(table[date_column])
    known = day_numbers(table["known_date"])
    keep = (day != _NAT_DAY) & (day >= start) & (day < end) & (known != _NAT_DAY)
    keep &= known < known_by
    if wanted is not None:
        keep &= wanted
    rows = np.flatnonzero(keep)
    owner = encode_codes(table["uscc"].iloc[rows], universe)  # encode only what is kept
    rows, owner = rows[owner >= 0], owner[owner >= 0]
    return rows, owner, day[rows]


def labelling_events(
    events: pd.DataFrame,
    label_events: Sequence[str],
    excluded_event_items: Mapping[str, Collection[str]],
) -> np.ndarray:
    """Which event rows can label a firm: a labelling type whose item is not excluded."""
    unknown = sorted((set(label_events) | set(excluded_event_items)) - set(ENTERPRISE_EVENT_TYPES))
    if unknown:
        raise ValueError(
            f"标签事件类型不在数据契约中 / label event types not in the contract: {unknown}"
        )
    event_type = events["event_type"]
    wanted = _flags(event_type.isin(list(label_events)))
    item = events["item_code"]
    for kind, items in excluded_event_items.items():
        wanted = wanted & ~(_flags(event_type == kind) & _flags(item.isin(list(items))))
    return wanted


def _first_per_owner(
    owner: np.ndarray, day: np.ndarray, tiebreak: pd.Series
) -> tuple[np.ndarray, np.ndarray]:
    """(owners, positions) of each owner's earliest record; ties broken by `tiebreak` text."""
    frame = pd.DataFrame({"owner": owner, "day": day, "tie": tiebreak.to_numpy(dtype=object)})
    first = frame.sort_values(["owner", "day", "tie"], kind="stable").drop_duplicates("owner")
    return first["owner"].to_numpy(), first.index.to_numpy()


def build_enterprise_labels(
    snapshot: Mapping[str, pd.DataFrame],
    as_of: date | pd.Timestamp | str,
    *,
    window_months: int,
    exempt_codes: frozenset[str],
    grace_days: int = DEFAULT_LABEL_GRACE_DAYS,
    label_events: Sequence[str] = LABEL_EVENT_TYPES,
    excluded_event_items: Mapping[str, Collection[str]] | None = None,
) -> pd.DataFrame:
    """Labels for enterprises existing on `as_of`, indexed by `uscc` (sorted).

    `label_events`: the enterprise-event types that label a firm; `excluded_event_items`:
    per event type, the `item_code`s (e.g. listing causes) that do not.

    Columns: `label` (0/1), `label_source` ("<event_type>:<event_id>" or
    "inspection:<inspection_id>" of the earliest labelling record, NA when 0), `label_date`,
    `inspected`, `random_inspected`, `random_draw_problem`, `inclusion_probability`,
    `ipw_weight`, `window_start`, `window_end`, `label_available_date`.
    """
    start, end = label_window(as_of, window_months)
    available = label_available_date(as_of, window_months, grace_days)
    start_day, end_day, known_by = day_number(start), day_number(end), day_number(available)
    ent = enterprise_universe(snapshot_table(snapshot, "enterprises"), start_day)
    events = snapshot_table(snapshot, "enterprise_events")
    inspections = snapshot_table(snapshot, "inspections")
    n = ent.n

    bounds = (start_day, end_day, known_by)
    labelling_type = labelling_events(events, label_events, excluded_event_items or {})
    ev_rows, ev_owner, ev_day = _in_window(
        events, "occurred_date", ent.index, bounds, labelling_type
    )
    ev_source = _column(events, "event_type", ev_rows) + ":" + _column(events, "event_id", ev_rows)

    in_rows, in_owner, in_day = _in_window(inspections, "inspection_date", ent.index, bounds)
    outcome = _column(inspections, "outcome", in_rows)
    exempt = _flags(_column(inspections, "violation_code", in_rows).isin(list(exempt_codes)))
    problem = _flags(outcome.notna() & (outcome != "no_problem")) & ~exempt
    random_draw = _flags(_column(inspections, "source", in_rows) == "random_draw")
    in_source = INSPECTION_SOURCE_KIND + ":" + _column(inspections, "inspection_id", in_rows)

    owners = np.concatenate([ev_owner, in_owner[problem]])
    days = np.concatenate([ev_day, in_day[problem]])
    sources = pd.concat([ev_source, in_source.iloc[problem]], ignore_index=True)
    first_owner, first_pos = _first_per_owner(owners, days, sources)
    label = np.zeros(n, dtype=np.int64)
    label[first_owner] = 1
    label_source = np.full(n, None, dtype=object)
    label_source[first_owner] = sources.to_numpy(dtype=object)[first_pos]
    label_date = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
    label_date[first_owner] = days[first_pos].astype("datetime64[D]")

    draw_owner, draw_pos = _first_per_owner(
        in_owner[random_draw], in_day[random_draw], in_source.iloc[random_draw]
    )
    probability = np.full(n, np.nan)
    probability[draw_owner] = _column(
        inspections, "inclusion_probability", in_rows[random_draw]
    ).to_numpy(dtype=np.float64, na_value=np.nan)[draw_pos]
    draw_found = np.zeros(n, dtype=bool)
    draw_found[draw_owner] = problem[random_draw][draw_pos]
    not_drawn = np.ones(n, dtype=bool)
    not_drawn[draw_owner] = False
    random_inspected = np.bincount(in_owner[random_draw], minlength=n) > 0

    keep = np.flatnonzero(ent.existing)
    frame = pd.DataFrame(
        {
            "label": label[keep],
            "label_source": pd.array(label_source[keep], dtype="string"),
            "label_date": label_date[keep],
            "inspected": (np.bincount(in_owner, minlength=n) > 0)[keep],
            "random_inspected": random_inspected[keep],
            "random_draw_problem": pd.arrays.BooleanArray(draw_found[keep], not_drawn[keep]),
            "inclusion_probability": probability[keep],
            "ipw_weight": np.where(random_inspected, 1.0 / probability, np.nan)[keep],
            "window_start": pd.Series(start, index=range(len(keep))).astype("datetime64[ns]"),
            "window_end": pd.Series(end, index=range(len(keep))).astype("datetime64[ns]"),
            "label_available_date": pd.Series(available, index=range(len(keep))).astype(
                "datetime64[ns]"
            ),
        }
    )
    frame.index = ent.index[keep]
    return frame

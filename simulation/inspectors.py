"""The inspector roster (执法检查人员名录库), declared conflicts, and who inspected whom.

Every historical inspection gets two distinct active inspectors of its department, drawn at
random, never one who declared a conflict of interest with the inspected firm (回避).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from features.contract import LIST_SEPARATOR
from simulation.columns import Timeline, concat_text, date_strings, numbered, take_text
from simulation.parameters import InspectorParameters
from simulation.records import DEPARTMENT_LIST
from simulation.vocabulary import (
    CONFLICT_REASONS,
    DEPARTMENT_CODES,
    DEPARTMENT_FIELDS,
    GIVEN_NAME_CHARS,
    SURNAMES,
)

# Relative roster size per department, as a multiple of the market roster's ratio.
ROSTER_WEIGHT = {"market": 1.0, "tax": 0.5, "environment": 0.2, "safety": 0.25, "housing": 0.3,
                 "fire": 0.25}


@dataclass
class Roster:
    """Inspectors as arrays; `department` codes index `DEPARTMENT_LIST`."""

    department: np.ndarray
    active: np.ndarray
    conflict_inspector: np.ndarray
    conflict_firm: np.ndarray
    conflict_day: np.ndarray
    conflict_reason: np.ndarray
    fields: list[str]
    ids: pa.Array

    def active_of(self, department: int) -> np.ndarray:
        return np.flatnonzero((self.department == department) & self.active)


def build_roster(established: np.ndarray, timeline: Timeline, params: InspectorParameters,
                 rng: np.random.Generator) -> Roster:
    """Roster scaled with the register (about one market inspector per 250 firms)."""
    enterprises = len(established)
    sizes = [max(params.minimum_per_department,
                 round(enterprises * ROSTER_WEIGHT[d] / params.enterprises_per_inspector))
             for d in DEPARTMENT_LIST]
    department = np.repeat(np.arange(len(DEPARTMENT_LIST)), sizes)
    n = len(department)
    active = rng.random(n) >= params.inactive_share
    for d in range(len(DEPARTMENT_LIST)):  # keep at least two on duty everywhere
        members = np.flatnonzero(department == d)
        active[members[:2]] = True
    fields = []
    for code in department:
        options = DEPARTMENT_FIELDS[DEPARTMENT_LIST[int(code)]]
        k = int(rng.integers(1, min(3, len(options)) + 1))
        fields.append(LIST_SEPARATOR.join(sorted(rng.choice(options, size=k, replace=False))))
    serial = np.concatenate([np.arange(s) for s in sizes])
    prefixes = take_text([f"ZF-{DEPARTMENT_CODES[d]}-" for d in DEPARTMENT_LIST], department)
    ids = concat_text(prefixes, numbered("", serial + 1, 5))
    conflicted = np.sort(rng.choice(n, size=max(1, round(n * params.conflict_share)),
                                    replace=False))
    counts = rng.integers(1, params.max_conflicts + 1, len(conflicted))
    inspector = np.repeat(conflicted, counts)
    firm = rng.integers(0, enterprises, len(inspector))
    pair = np.unique(inspector.astype(np.int64) * enterprises + firm)
    inspector, firm = pair // enterprises, pair % enterprises
    day = rng.integers(timeline.start_day - 3 * 365, timeline.end_day, len(inspector))
    day = np.minimum(np.maximum(day, established[firm]), timeline.end_day)
    reason = rng.integers(0, len(CONFLICT_REASONS), len(inspector))
    return Roster(department=department, active=active, conflict_inspector=inspector,
                  conflict_firm=firm, conflict_day=day, conflict_reason=reason, fields=fields,
                  ids=ids)


def assign_inspectors(roster: Roster, department: np.ndarray, firm: np.ndarray,
                      n_firms: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two distinct active inspectors of the right department per inspection, with recusal."""
    first = np.zeros(len(firm), dtype=np.int64)
    second = np.zeros(len(firm), dtype=np.int64)
    conflicts = roster.conflict_inspector * n_firms + roster.conflict_firm
    for d in np.unique(department):
        pool = roster.active_of(int(d))
        rows = np.flatnonzero(department == d)
        a = rng.integers(0, len(pool), len(rows))
        b = (a + rng.integers(1, len(pool), len(rows))) % len(pool)
        for _ in range(100):
            bad = np.isin(pool[a] * n_firms + firm[rows], conflicts) | \
                np.isin(pool[b] * n_firms + firm[rows], conflicts)
            if not bad.any():
                break
            a[bad] = rng.integers(0, len(pool), int(bad.sum()))
            b[bad] = (a[bad] + rng.integers(1, len(pool), int(bad.sum()))) % len(pool)
        else:  # pragma: no cover - needs a roster where nearly everyone is conflicted
            raise RuntimeError("could not assign inspectors without conflicts")
        first[rows], second[rows] = pool[a], pool[b]
    return first, second


def inspector_list_column(roster: Roster, first: np.ndarray, second: np.ndarray) -> pa.Array:
    return concat_text(roster.ids.take(pa.array(first)), LIST_SEPARATOR,
                       roster.ids.take(pa.array(second)))


def roster_tables(roster: Roster, uscc: pa.Array) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The `inspectors` and `inspector_conflicts` source tables."""
    n = len(roster.department)
    serial = np.arange(n)
    surname = (serial * 7 + 3) % len(SURNAMES)
    given = (serial * 11 + 5) % len(GIVEN_NAME_CHARS)
    given2 = (serial * 13 + 1) % len(GIVEN_NAME_CHARS)
    names = concat_text(take_text(list(SURNAMES), surname),
                        take_text(list(GIVEN_NAME_CHARS), given),
                        take_text(list(GIVEN_NAME_CHARS), given2))
    certificates = numbered("44010519", 100_000 * (roster.department + 1) + serial, 8)
    inspectors = pa.table({
        "inspector_id": roster.ids,
        "name": names,
        "department": take_text(DEPARTMENT_LIST, roster.department),
        "certificate_no": certificates,
        "fields": pa.array(roster.fields, type=pa.string()),
        "active": pa.array(roster.active),
    })
    conflicts = pa.table({
        "inspector_id": roster.ids.take(pa.array(roster.conflict_inspector)),
        "uscc": uscc.take(pa.array(roster.conflict_firm)),
        "reason": take_text(CONFLICT_REASONS, roster.conflict_reason),
        "declared_date": date_strings(roster.conflict_day),
    })
    return inspectors.to_pandas(), conflicts.to_pandas()

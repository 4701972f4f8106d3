"""Append-only numeric record logs the simulation writes into before tables are assembled.

Records are kept as integer codes and day numbers in growing lists of numpy arrays, one
entry per batch of rows, so a month's worth of complaints for 100,000 firms is one append.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from features.contract import (
    DEPARTMENTS,
    ENTERPRISE_EVENT_TYPES,
    INSPECTION_OUTCOMES,
    INSPECTION_SOURCES,
    SEVERITIES,
    TAX_GRADES,
)
from simulation.vocabulary import (
    ABNORMAL_REASONS,
    CASE_LEAD_DETAILS,
    COMPLAINT_CODES,
    COMPLAINT_DETAILS,
    EXEMPT_CODES,
    MONITORING_CODES,
    MONITORING_DETAILS,
    OPINION_DETAILS,
    REGISTRATION_CHANGE_CODES,
    SERIOUS_DISHONESTY_CODES,
    VIOLATION_CODES,
)

EVENT_TYPE_LIST = list(ENTERPRISE_EVENT_TYPES)
EVENT = {name: i for i, name in enumerate(EVENT_TYPE_LIST)}
SEVERITY_LIST = list(SEVERITIES)
SEVERITY = {name: i for i, name in enumerate(SEVERITY_LIST)}
TAX_GRADE_LIST = list(TAX_GRADES)
GRADE = {name: i for i, name in enumerate(TAX_GRADE_LIST)}
OUTCOME_LIST = list(INSPECTION_OUTCOMES)
OUTCOME = {name: i for i, name in enumerate(OUTCOME_LIST)}
SOURCE_LIST = list(INSPECTION_SOURCES)
SOURCE = {name: i for i, name in enumerate(SOURCE_LIST)}
DEPARTMENT_LIST = list(DEPARTMENTS)
DEPARTMENT = {name: i for i, name in enumerate(DEPARTMENTS)}

ITEM_CODE_LIST: list[str] = [
    *VIOLATION_CODES, *EXEMPT_CODES, *ABNORMAL_REASONS.values(),
    *SERIOUS_DISHONESTY_CODES.values(), *COMPLAINT_CODES, *REGISTRATION_CHANGE_CODES,
    *MONITORING_CODES,
]
ITEM = {code: i for i, code in enumerate(ITEM_CODE_LIST)}
VIOLATION_ITEMS = np.array([ITEM[c] for c in VIOLATION_CODES])
EXEMPT_ITEMS = np.array([ITEM[c] for c in EXEMPT_CODES])
COMPLAINT_ITEMS = np.array([ITEM[c] for c in COMPLAINT_CODES])
CHANGE_ITEMS = np.array([ITEM[c] for c in REGISTRATION_CHANGE_CODES])
MONITORING_ITEMS = np.array([ITEM[c] for c in MONITORING_CODES])
ABNORMAL_ITEMS = np.array([ITEM[c] for c in ABNORMAL_REASONS.values()])

DETAIL_LIST: list[str] = [*COMPLAINT_DETAILS, *MONITORING_DETAILS, *OPINION_DETAILS,
                          *CASE_LEAD_DETAILS]
COMPLAINT_DETAIL_OFFSET = 0
MONITORING_DETAIL_OFFSET = len(COMPLAINT_DETAILS)
OPINION_DETAIL_OFFSET = MONITORING_DETAIL_OFFSET + len(MONITORING_DETAILS)
CASE_LEAD_DETAIL_OFFSET = OPINION_DETAIL_OFFSET + len(OPINION_DETAILS)

EVENT_FIELDS: dict[str, tuple[type, float]] = {
    "firm": (np.int64, 0), "kind": (np.int8, 0), "occurred": (np.int64, 0),
    "known": (np.int64, 0), "item": (np.int16, -1), "severity": (np.int8, -1),
    "amount": (np.float64, np.nan), "grade": (np.int8, -1), "report_year": (np.int16, -1),
    "detail": (np.int16, -1),
}
INSPECTION_FIELDS: dict[str, tuple[type, float]] = {
    "firm": (np.int64, 0), "day": (np.int64, 0), "known": (np.int64, 0),
    "department": (np.int8, 0), "campaign": (np.int32, -1), "items": (np.int16, 0),
    "source": (np.int8, 0), "probability": (np.float64, np.nan), "outcome": (np.int8, 0),
    "violation": (np.int16, -1),
}


class ColumnLog:
    """Rows appended in batches of equal-length arrays; missing fields take their default."""

    def __init__(self, fields: Mapping[str, tuple[type, float]]) -> None:
        self.fields = dict(fields)
        self.batches: dict[str, list[np.ndarray]] = {name: [] for name in fields}

    def add(self, **columns: np.ndarray | float | int) -> None:
        lengths = [np.size(v) for v in columns.values() if np.ndim(v) > 0]
        length = lengths[0] if lengths else 1
        if length == 0:
            return
        for name, (dtype, default) in self.fields.items():
            value = columns.get(name, default)
            if np.ndim(value) == 0:
                self.batches[name].append(np.full(length, value, dtype=dtype))
            else:
                self.batches[name].append(np.asarray(value, dtype=dtype))

    def column(self, name: str) -> np.ndarray:
        dtype = self.fields[name][0]
        parts = self.batches[name]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)

    def columns(self) -> dict[str, np.ndarray]:
        return {name: self.column(name) for name in self.fields}


def concatenate_logs(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Join the finished columns of several chunks."""
    if not parts:
        return {}
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def select(columns: dict[str, np.ndarray], keep: np.ndarray) -> dict[str, np.ndarray]:
    return {name: values[keep] for name, values in columns.items()}

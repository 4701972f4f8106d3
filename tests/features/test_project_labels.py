"""Labels: the next project inspection within the window found defects or hazards."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from features.contract import TABLES
from features.project_labels import LABEL_COLUMNS, build_project_labels
from features.snapshot import coerce_types

AS_OF = pd.Timestamp("2023-07-01")
PROJECT: dict[str, Any] = {
    "name": "测试项目", "project_type": "residential", "use": "housing", "structure": "frame",
    "floor_area_m2": 20000.0, "height_m": 30.0, "storeys": 10, "excavation_depth_m": 4.0,
    "dangerous_works": 2, "over_scale_dangerous_works": 0, "crowded_surroundings": False,
    "stage": "decoration", "street": "江南中街道", "permit_date": "2022-07-01",
    "planned_completion_date": "2024-07-01",
}


def table(name: str, rows: list[dict[str, Any]]) -> pd.DataFrame:
    contract = TABLES[name]
    frame = pd.DataFrame(
        {c.name: pd.Series([row.get(c.name) for row in rows], dtype=object)
         for c in contract.columns}
    )
    return coerce_types(contract, frame)


def inspection(i: str, project: str, day: str, defects: int = 0, hazards: int = 0,
               source: str = "scheduled") -> dict[str, Any]:
    return {"inspection_id": i, "project_id": project, "inspection_date": day,
            "known_date": (pd.Timestamp(day) + pd.Timedelta(days=3)).strftime("%Y-%m-%d"),
            "source": source, "defects_found": defects,
            "hazards_found": hazards, "inspectors": "I1;I2"}


def snapshot(inspections: list[dict[str, Any]]) -> dict[str, pd.DataFrame]:
    rows = {
        "projects": [{**PROJECT, "project_id": p} for p in ("P1", "P2", "P3", "P4")]
        + [{**PROJECT, "project_id": "P_DONE", "completion_date": "2023-06-01"}],
        "project_inspections": inspections,
    }
    return {name: table(name, rows.get(name, [])) for name in TABLES}


def test_first_inspection_in_the_window_decides_the_label() -> None:
    snap = snapshot([
        inspection("A0", "P1", "2023-06-30", defects=4),  # before as_of: not a label
        inspection("A1", "P1", "2023-07-10"),  # first in window: clean
        inspection("A2", "P1", "2023-07-20", defects=3),
        inspection("B1", "P2", "2023-07-01", hazards=1, source="complaint"),  # hazards count
        inspection("C1", "P3", "2023-09-01", defects=1),  # after the 60-day window
        inspection("D2", "P4", "2023-07-05", defects=1),
        inspection("D1", "P4", "2023-07-05"),  # same day: smaller id first
        inspection("X1", "P_DONE", "2023-07-05", defects=1),
    ])
    labels = build_project_labels(snap, AS_OF, window_days=60)
    assert list(labels.index) == ["P1", "P2", "P3", "P4"]
    assert labels["label"].tolist()[:2] == [0, 1]
    assert pd.isna(labels.loc["P3", "label"])
    assert labels.loc["P4", "label"] == 0 and labels.loc["P4", "inspection_id"] == "D1"
    assert labels.loc["P1", "inspection_date"] == pd.Timestamp("2023-07-10")
    assert labels.loc["P2", "source"] == "complaint"
    assert labels.loc["P1", "known_date"] == pd.Timestamp("2023-07-13")
    assert list(labels.columns) == list(LABEL_COLUMNS)
    assert str(labels["label"].dtype) == "Int64"


def test_window_must_be_positive_days() -> None:
    with pytest.raises(ValueError, match=r"标签窗口.*window_days"):
        build_project_labels(snapshot([]), AS_OF, window_days=0)

"""The risk matrix: cells, intervals, due dates and event overrides."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from models.matrix import (
    MANAGEMENT_GRADES,
    AccidentOverride,
    MatrixRules,
    SupervisionLevel,
    management_grades,
    place_projects,
)
from models.risk_source import RISK_SOURCE_GRADES

AS_OF = pd.Timestamp("2024-03-01")
LEVELS = (
    SupervisionLevel("red", "红", "red", 30),
    SupervisionLevel("orange", "橙", "orange", 60),
    SupervisionLevel("yellow", "黄", "yellow", 90),
    SupervisionLevel("blue", "蓝", "blue", 180),
)
# level = max(R, M) so every cell is easy to predict: R4 or M4 → red … R1×M1 → blue
CELLS = {
    (r, m): LEVELS[4 - max(i, j)].code
    for i, r in enumerate(RISK_SOURCE_GRADES, start=1)
    for j, m in enumerate(MANAGEMENT_GRADES, start=1)
}
RULES = MatrixRules(
    levels=LEVELS,
    cells=CELLS,
    management_cutoffs=(0.2, 0.4, 0.6),
    accident=AccidentOverride("red", 90),
    regrade_events=("dangerous_works_start", "dangerous_works_end"),
)


def risk_source(grades: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "project_id": list(grades),
            "risk_source_points": [0] * len(grades),
            "risk_source_grade": list(grades.values()),
            "risk_source_rules": [()] * len(grades),
            "risk_source_reasons": [""] * len(grades),
        }
    )


def management(probabilities: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "project_id": list(probabilities),
            "probability": list(probabilities.values()),
            "management_reasons": ["近365天检查发现问题数为3 / problems: 3"] * len(probabilities),
        }
    )


def events(*rows: dict[str, Any]) -> pd.DataFrame:
    frame = pd.DataFrame(
        list(rows),
        columns=["event_id", "project_id", "event_type", "occurred_date", "known_date", "severity"],
    )
    for column in ("occurred_date", "known_date"):
        frame[column] = pd.to_datetime(frame[column]).astype("datetime64[ns]")
    return frame


def place(
    grades: dict[str, str],
    probabilities: dict[str, float],
    last: dict[str, str],
    evts: pd.DataFrame | None = None,
    as_of: pd.Timestamp = AS_OF,
    rules: MatrixRules = RULES,
) -> pd.DataFrame:
    last_dates = pd.Series(pd.to_datetime(list(last.values())), index=list(last))
    placed = place_projects(
        risk_source(grades),
        management(probabilities),
        rules,
        evts if evts is not None else events(),
        as_of,
        last_dates,
    )
    return placed.set_index("project_id")


def test_management_grades_follow_the_cutoffs() -> None:
    grades = management_grades(pd.Series([0.0, 0.19, 0.2, 0.45, 0.6, 0.99]), (0.2, 0.4, 0.6))
    assert grades.tolist() == ["M1", "M1", "M2", "M3", "M4", "M4"]


def test_cell_level_interval_and_next_due_date() -> None:
    placed = place(
        {"A": "R1", "B": "R3", "C": "R1"},
        {"A": 0.1, "B": 0.1, "C": 0.7},
        {"A": "2024-01-01", "B": "2024-01-01", "C": "2024-02-20"},
    )
    assert placed.loc["A", "cell"] == "R1×M1" and placed.loc["A", "level"] == "blue"
    assert placed.loc["A", "interval_days"] == 180
    assert placed.loc["A", "next_due_date"] == pd.Timestamp("2024-06-29")
    assert placed.loc["B", "level"] == "orange"
    assert placed.loc["B", "next_due_date"] == pd.Timestamp("2024-03-01")
    assert placed.loc["C", "management_grade"] == "M4" and placed.loc["C", "level"] == "red"
    assert placed.loc["C", "level_zh"] == "红" and placed.loc["C", "level_rank"] == 1
    assert placed.loc["C", "next_due_date"] == pd.Timestamp("2024-03-21")
    assert placed.loc["A", "overrides"] == ()
    assert "R1×M1 → 蓝 / blue" in placed.loc["A", "reasons"]
    assert "problems: 3" in placed.loc["A", "reasons"]


def test_never_inspected_is_due_now() -> None:
    placed = place({"N": "R1"}, {"N": 0.1}, {})
    assert placed.loc["N", "next_due_date"] == AS_OF
    assert placed.loc["N", "overrides"] == ("never_inspected",)
    assert pd.isna(placed.loc["N", "last_inspection_date"])


def test_accident_forces_the_top_level_for_the_period_then_lets_go() -> None:
    accident = events(
        {
            "event_id": "E1",
            "project_id": "A",
            "event_type": "accident",
            "occurred_date": "2024-02-10",
            "known_date": "2024-02-11",
            "severity": "serious",
        }
    )
    args = ({"A": "R1"}, {"A": 0.1}, {"A": "2024-02-20"}, accident)
    during = place(*args, as_of=pd.Timestamp("2024-03-01"))
    assert during.loc["A", "cell_level"] == "blue" and during.loc["A", "level"] == "red"
    assert during.loc["A", "overrides"] == ("accident",)
    assert during.loc["A", "override_until"] == pd.Timestamp("2024-05-10")
    assert during.loc["A", "next_due_date"] == pd.Timestamp("2024-03-21")
    assert "事故" in during.loc["A", "override_reasons"]
    assert "accident" in during.loc["A", "override_reasons"]
    last_day = place(*args, as_of=pd.Timestamp("2024-05-09"))
    assert last_day.loc["A", "level"] == "red"
    after = place(*args, as_of=pd.Timestamp("2024-05-11"))
    assert after.loc["A", "level"] == "blue" and after.loc["A", "overrides"] == ()
    assert after.loc["A", "next_due_date"] == pd.Timestamp("2024-08-18")


def test_accident_unknown_on_as_of_does_not_count() -> None:
    accident = events(
        {
            "event_id": "E1",
            "project_id": "A",
            "event_type": "accident",
            "occurred_date": "2024-02-25",
            "known_date": "2024-03-01",
        }
    )
    placed = place({"A": "R1"}, {"A": 0.1}, {"A": "2024-02-20"}, accident)
    assert placed.loc["A", "level"] == "blue"


def test_accident_severity_filter() -> None:
    minor = events(
        {
            "event_id": "E1",
            "project_id": "A",
            "event_type": "accident",
            "occurred_date": "2024-02-10",
            "known_date": "2024-02-11",
            "severity": "minor",
        }
    )
    rules = MatrixRules(
        LEVELS, CELLS, (0.2, 0.4, 0.6), AccidentOverride("orange", 90, ("serious",))
    )
    placed = place({"A": "R1"}, {"A": 0.1}, {"A": "2024-02-20"}, minor, rules=rules)
    assert placed.loc["A", "level"] == "blue"


def test_accident_override_never_lowers_a_level() -> None:
    accident = events(
        {
            "event_id": "E1",
            "project_id": "A",
            "event_type": "accident",
            "occurred_date": "2024-02-10",
            "known_date": "2024-02-11",
        }
    )
    rules = MatrixRules(LEVELS, CELLS, (0.2, 0.4, 0.6), AccidentOverride("yellow", 90))
    placed = place({"A": "R4"}, {"A": 0.1}, {"A": "2024-02-20"}, accident, rules=rules)
    assert placed.loc["A", "level"] == "red"


def test_dangerous_works_start_after_last_inspection_makes_it_due_now() -> None:
    start = events(
        {
            "event_id": "E1",
            "project_id": "A",
            "event_type": "dangerous_works_start",
            "occurred_date": "2024-02-27",
            "known_date": "2024-02-29",
        },
        # already seen by B's last inspection: no re-grade
        {
            "event_id": "E2",
            "project_id": "B",
            "event_type": "dangerous_works_end",
            "occurred_date": "2024-01-05",
            "known_date": "2024-01-06",
        },
    )
    placed = place(
        {"A": "R1", "B": "R1"}, {"A": 0.1, "B": 0.1}, {"A": "2024-02-20", "B": "2024-01-10"}, start
    )
    assert placed.loc["A", "next_due_date"] == pd.Timestamp("2024-02-29")
    assert placed.loc["A", "next_due_date"] <= AS_OF
    assert placed.loc["A", "overrides"] == ("regrade",)
    assert "危大工程开始" in placed.loc["A", "override_reasons"]
    assert placed.loc["B", "next_due_date"] == pd.Timestamp("2024-07-08")
    assert placed.loc["B", "overrides"] == ()


def test_every_project_needs_a_management_score() -> None:
    with pytest.raises(ValueError, match=r"管理风险评分.*management score.*B"):
        place_projects(
            risk_source({"A": "R1", "B": "R2"}),
            management({"A": 0.1}),
            RULES,
            events(),
            AS_OF,
            pd.Series(dtype="datetime64[ns]"),
        )

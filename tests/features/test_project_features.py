"""Point-in-time project features on tiny hand-made snapshots with hand-computed values."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from features.catalogue import model_inputs
from features.contract import TABLES
from features.project_features import (
    PROJECT_FEATURES,
    build_project_features,
    last_inspection_dates,
    project_state,
)
from features.snapshot import coerce_types
from features.uscc import check_character
from models.explain import check_catalogue_labels

AS_OF = pd.Timestamp("2023-07-01")


def code(i: int) -> str:
    first17 = f"91440105MA{i:07d}"
    return first17 + check_character(first17)


GC, SUP, DEV = code(1), code(2), code(3)

PROJECT: dict[str, Any] = {
    "name": "测试项目", "project_type": "residential", "use": "housing", "structure": "frame",
    "floor_area_m2": 20000.0, "height_m": 30.0, "storeys": 10, "excavation_depth_m": 4.0,
    "dangerous_works": 2, "over_scale_dangerous_works": 0, "crowded_surroundings": False,
    "stage": "decoration", "street": "江南中街道", "permit_date": "2022-07-01",
    "planned_completion_date": "2024-07-01",
}


def table(name: str, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """A frame typed exactly like a snapshot table."""
    contract = TABLES[name]
    frame = pd.DataFrame(
        {c.name: pd.Series([row.get(c.name) for row in rows], dtype=object)
         for c in contract.columns}
    )
    return coerce_types(contract, frame)


def inspection(i: str, project: str, day: str, known: str, defects: int = 0,
               hazards: int = 0) -> dict[str, Any]:
    return {"inspection_id": i, "project_id": project, "inspection_date": day,
            "known_date": known, "source": "scheduled", "defects_found": defects,
            "hazards_found": hazards, "inspectors": "I1;I2"}


def event(i: str, project: str, kind: str, day: str, known: str, **extra: Any) -> dict[str, Any]:
    return {"event_id": i, "project_id": project, "event_type": kind, "occurred_date": day,
            "known_date": known, **extra}


def base_rows() -> dict[str, list[dict[str, Any]]]:
    return {
        "projects": [
            {**PROJECT, "project_id": "P1"},
            {**PROJECT, "project_id": "P2", "excavation_depth_m": 6.0},
            {**PROJECT, "project_id": "P_DONE", "completion_date": "2023-03-01"},
            {**PROJECT, "project_id": "P_LATER", "permit_date": "2023-08-01"},
        ],
        "project_inspections": [
            inspection("I01", "P1", "2022-09-01", "2022-09-05", defects=2),
            inspection("I02", "P1", "2023-03-01", "2023-03-03", hazards=1),
            inspection("I03", "P1", "2023-05-01", "2023-05-02"),
            inspection("I04", "P_DONE", "2022-10-01", "2022-10-02", defects=1),
            # visited before as_of, result recorded only after it
            inspection("I05", "P2", "2023-06-28", "2023-07-03", defects=5),
        ],
        "project_events": [
            event("E1", "P1", "stage_change", "2022-09-15", "2022-09-16", stage="foundation"),
            event("E2", "P1", "stage_change", "2023-01-10", "2023-01-12", stage="main_structure"),
            event("E3", "P1", "accident", "2023-02-01", "2023-02-01", severity="serious"),
            event("E4", "P1", "overdue_rectification", "2023-04-01", "2023-04-02"),
            event("E5", "P1", "quality_defect", "2023-03-01", "2023-03-03", severity="serious"),
            event("E6", "P2", "dangerous_works_start", "2023-02-01", "2023-02-02"),
            event("E7", "P_DONE", "accident", "2022-11-01", "2022-11-01"),
        ],
        "project_participants": [
            {"project_id": "P1", "uscc": GC, "role": "general_contractor",
             "qualification_grade": "grade2"},
            {"project_id": "P1", "uscc": SUP, "role": "supervisor",
             "qualification_grade": "grade1"},
            {"project_id": "P1", "uscc": DEV, "role": "developer"},
            {"project_id": "P2", "uscc": GC, "role": "general_contractor",
             "qualification_grade": "grade2"},
            {"project_id": "P_DONE", "uscc": GC, "role": "general_contractor"},
        ],
        "enterprise_events": [
            {"event_id": "X1", "uscc": GC, "event_type": "penalty", "occurred_date": "2022-01-01",
             "known_date": "2022-02-01", "severity": "general"},
        ],
    }


def snapshot(rows: dict[str, list[dict[str, Any]]]) -> dict[str, pd.DataFrame]:
    return {name: table(name, rows.get(name, [])) for name in TABLES}


@pytest.fixture
def features() -> pd.DataFrame:
    return build_project_features(snapshot(base_rows()), AS_OF)


def test_only_projects_under_construction_on_as_of(features: pd.DataFrame) -> None:
    assert list(features.index) == ["P1", "P2"]


def test_columns_follow_the_bilingual_catalogue(features: pd.DataFrame) -> None:
    assert list(features.columns) == list(PROJECT_FEATURES)
    assert model_inputs(PROJECT_FEATURES) == list(PROJECT_FEATURES)
    check_catalogue_labels(PROJECT_FEATURES)
    assert {info.group for info in PROJECT_FEATURES.values()} == {"project", "participant"}
    assert all(dtype == np.float64 for dtype in features.dtypes)


def test_project_record_by_hand(features: pd.DataFrame) -> None:
    p1 = features.loc["P1"]
    assert p1["inspections_total"] == 3
    assert p1["problem_inspections_total"] == 2
    assert p1["problem_inspection_share"] == pytest.approx(2 / 3)
    assert p1["defects_found_total"] == 2 and p1["hazards_found_total"] == 1
    assert p1["problems_found_365d"] == 3
    assert p1["last_inspection_problems"] == 0
    assert p1["days_since_last_inspection"] == 61  # 2023-05-01 → 2023-07-01
    assert p1["days_since_last_problem"] == 122  # 2023-03-01
    assert p1["accidents_total"] == 1 and p1["days_since_accident"] == 150
    assert p1["overdue_rectifications_total"] == 1
    assert p1["serious_problems_365d"] == 1
    # P2's only inspection result was recorded after as_of: unknown, not "clean"
    p2 = features.loc["P2"]
    assert p2["inspections_total"] == 0
    assert np.isnan(p2["problem_inspection_share"])
    assert np.isnan(p2["days_since_last_inspection"])


def test_stage_and_dangerous_works_phase_come_from_events() -> None:
    state = project_state(snapshot(base_rows()), AS_OF).set_index("project_id")
    assert state.loc["P1", "stage"] == "main_structure"  # not today's table value
    assert bool(state.loc["P1", "stage_known"])
    assert state.loc["P2", "stage"] == "preparation" and not state.loc["P2", "stage_known"]
    assert bool(state.loc["P2", "dangerous_works_active"])
    assert not state.loc["P1", "dangerous_works_active"]
    rows = base_rows()
    rows["project_events"].append(
        event("E8", "P2", "dangerous_works_end", "2023-05-01", "2023-05-02"))
    ended = project_state(snapshot(rows), AS_OF).set_index("project_id")
    assert not ended.loc["P2", "dangerous_works_active"]


def test_participants_scores_qualifications_and_other_projects() -> None:
    credit = pd.DataFrame({"uscc": [GC, SUP], "credit_points": [40.0, 5.0],
                           "credit_class": ["C", "A"]})
    features = build_project_features(snapshot(base_rows()), AS_OF, participant_credit=credit)
    p1, p2 = features.loc["P1"], features.loc["P2"]
    assert p1["contractor_credit_points"] == pytest.approx(40.0)
    assert p1["contractor_class_rank"] == 2
    assert p1["supervisor_class_rank"] == 0
    assert np.isnan(p1["developer_credit_points"])  # developer not scored
    assert p1["participants_max_credit_points"] == pytest.approx(40.0)
    assert p1["contractor_qualification_rank"] == 2  # grade2
    assert p1["supervisor_qualification_rank"] == 1
    assert p1["contractor_penalties_1095d"] == 1
    # P1's contractor also builds P2 (active) and P_DONE (completed): one other active project,
    # other projects' inspections: I04 found a defect (I05's result not yet known)
    assert p1["contractor_other_projects"] == 1
    assert p1["contractor_other_problem_share"] == 1.0
    assert p1["contractor_other_accidents_1095d"] == 1
    # P2's contractor's other projects: P1 (3 inspections, 2 with problems) and P_DONE (1, 1)
    assert p2["contractor_other_problem_share"] == pytest.approx(3 / 4)
    assert p2["contractor_other_accidents_1095d"] == 2


def test_records_known_on_or_after_as_of_change_nothing(features: pd.DataFrame) -> None:
    rows = base_rows()
    rows["project_inspections"] += [
        inspection("I10", "P1", "2023-07-01", "2023-07-01", defects=9),
        inspection("I11", "P2", "2023-06-30", "2023-07-01", hazards=4),
        inspection("I12", "P1", "2023-09-01", "2023-09-02", defects=3),
    ]
    rows["project_events"] += [
        event("E20", "P1", "accident", "2023-06-30", "2023-07-01", severity="serious"),
        event("E21", "P2", "stage_change", "2023-06-20", "2023-07-02", stage="foundation"),
        event("E22", "P2", "dangerous_works_end", "2023-07-05", "2023-07-05"),
        event("E23", "P1", "overdue_rectification", "2023-08-01", "2023-08-01"),
    ]
    rows["enterprise_events"] += [
        {"event_id": "X9", "uscc": GC, "event_type": "penalty", "occurred_date": "2023-06-01",
         "known_date": "2023-07-01"},
    ]
    later = build_project_features(snapshot(rows), AS_OF)
    pd.testing.assert_frame_equal(later, features)


def test_last_inspection_counts_the_visit_even_before_its_result() -> None:
    last = last_inspection_dates(snapshot(base_rows()), AS_OF)
    assert last["P1"] == pd.Timestamp("2023-05-01")
    assert last["P2"] == pd.Timestamp("2023-06-28")

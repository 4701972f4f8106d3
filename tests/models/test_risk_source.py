"""Risk-source grades: which rules fire, how points and floors make the grade."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.risk_source import (
    Condition,
    RiskSourceRule,
    RiskSourceRules,
    grade_risk_source,
    rule_firing,
)
from supervision.matrix_policy import load_matrix_policy

RULES = RiskSourceRules(
    rules=(
        RiskSourceRule(
            "deep_excavation",
            "深基坑",
            "deep excavation",
            (Condition("excavation_depth_m", "ge", 5.0),),
            points=3,
            min_grade="R3",
        ),
        RiskSourceRule(
            "medium_excavation",
            "基坑3至5米",
            "excavation 3–5 m",
            (
                Condition("excavation_depth_m", "ge", 3.0),
                Condition("excavation_depth_m", "lt", 5.0),
            ),
            points=1,
        ),
        RiskSourceRule(
            "crowded_use",
            "人员密集场所",
            "crowded use",
            (Condition("use", "in", ("school", "hospital")),),
            points=2,
        ),
        RiskSourceRule(
            "crowded_surroundings",
            "周边人员密集",
            "crowded surroundings",
            (Condition("crowded_surroundings", "eq", True),),
            points=1,
        ),
    ),
    point_cutoffs=(2, 4, 6),
)


def projects(**columns: list[object]) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    base: dict[str, object] = {
        "project_id": [f"P{i}" for i in range(n)],
        "excavation_depth_m": [1.0] * n,
        "use": ["housing"] * n,
        "crowded_surroundings": [False] * n,
    }
    base.update(columns)
    frame = pd.DataFrame(base)
    frame["use"] = frame["use"].astype("string")
    frame["crowded_surroundings"] = frame["crowded_surroundings"].astype("boolean")
    return frame


def test_excavation_bands_fire_the_right_rule() -> None:
    graded = grade_risk_source(projects(excavation_depth_m=[6.0, 4.0, 2.9, 5.0]), RULES)
    assert graded["risk_source_rules"].tolist() == [
        ("deep_excavation",),
        ("medium_excavation",),
        (),
        ("deep_excavation",),
    ]
    assert graded["risk_source_points"].tolist() == [3, 1, 0, 3]
    # 3 points alone would be R2; the deep-excavation floor lifts it to R3
    assert graded["risk_source_grade"].tolist() == ["R3", "R1", "R1", "R3"]


def test_points_add_up_to_grades_and_reasons_are_bilingual() -> None:
    graded = grade_risk_source(
        projects(
            excavation_depth_m=[4.0, 6.0],
            use=["school", "hospital"],
            crowded_surroundings=[True, True],
        ),
        RULES,
    )
    assert graded["risk_source_rules"].tolist() == [
        ("medium_excavation", "crowded_use", "crowded_surroundings"),
        ("deep_excavation", "crowded_use", "crowded_surroundings"),
    ]
    assert graded["risk_source_points"].tolist() == [4, 6]
    assert graded["risk_source_grade"].tolist() == ["R3", "R4"]
    reasons = graded.loc[0, "risk_source_reasons"]
    assert "人员密集场所 / crowded use (+2分 / pts)" in reasons
    assert "周边人员密集 / crowded surroundings" in reasons


def test_missing_values_never_fire_a_rule() -> None:
    frame = projects(excavation_depth_m=[np.nan], crowded_surroundings=[None])
    frame["use"] = pd.array([pd.NA], dtype="string")
    fired = rule_firing(frame, RULES)
    assert not fired.to_numpy().any()
    assert grade_risk_source(frame, RULES)["risk_source_grade"].tolist() == ["R1"]


def test_a_column_the_rules_need_must_be_present() -> None:
    with pytest.raises(KeyError, match="excavation_depth_m"):
        grade_risk_source(projects(use=["school"]).drop(columns="excavation_depth_m"), RULES)


def test_default_policy_grades_a_typical_and_a_major_site() -> None:
    rules = load_matrix_policy().risk_source_rules()
    sites = pd.DataFrame(
        {
            "project_id": ["small", "major"],
            "project_type": pd.array(["residential", "public_building"], dtype="string"),
            "use": pd.array(["housing", "hospital"], dtype="string"),
            "structure": pd.array(["frame", "frame_shear_wall"], dtype="string"),
            "floor_area_m2": [8000.0, 150000.0],
            "height_m": [18.0, 120.0],
            "storeys": pd.array([6, 30], dtype="Int64"),
            "excavation_depth_m": [2.0, 12.0],
            "dangerous_works": pd.array([1, 8], dtype="Int64"),
            "over_scale_dangerous_works": pd.array([0, 3], dtype="Int64"),
            "crowded_surroundings": pd.array([False, True], dtype="boolean"),
            "stage": pd.array(["decoration", "foundation"], dtype="string"),
            "dangerous_works_active": [False, True],
        }
    )
    graded = grade_risk_source(sites, rules).set_index("project_id")
    assert graded.loc["small", "risk_source_grade"] == "R1"
    assert graded.loc["small", "risk_source_rules"] == ()
    assert graded.loc["major", "risk_source_grade"] == "R4"
    assert {
        "deep_excavation",
        "several_over_scale_dangerous_works",
        "crowded_use",
        "foundation_stage",
    } <= set(graded.loc["major", "risk_source_rules"])

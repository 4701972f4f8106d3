"""Joint visits (进一次门、查多项事) and ranked inspection lists."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from test_campaign_synthetic import roster

from supervision.visits import merge_joint_visits, ranked_inspection_lists

FIRM_A = "91440105MA59XXXXX1"
FIRM_B = "91440105MA59XXXXX2"


def _task(campaign: str, department: str, uscc: str, items: str, day: dt.date,
          team: str) -> dict[str, object]:
    return {"campaign_id": campaign, "department": department, "uscc": uscc,
            "check_items": items, "planned_date": day, "inspectors": team,
            "class": "C", "stratum": "C", "inclusion_probability": 0.3}


def test_tasks_of_several_departments_on_one_firm_within_the_window_become_one_visit() -> None:
    tasks = pd.DataFrame([
        _task("M-01", "market", FIRM_A, "annual_report;license", dt.date(2025, 4, 1), "M1;M2"),
        _task("T-01", "tax", FIRM_A, "invoice", dt.date(2025, 4, 20), "T1;T2"),
        _task("F-01", "fire", FIRM_A, "fire_exits", dt.date(2025, 5, 1), "F1;F2"),
        _task("M-01", "market", FIRM_B, "annual_report;license", dt.date(2025, 4, 1), "M3;M4"),
    ])
    joint = merge_joint_visits(tasks, window_days=30)
    visit = joint.visits.set_index("uscc").loc[FIRM_A]
    assert visit["departments"] == "fire;market;tax"
    assert visit["check_items"] == "annual_report;fire_exits;invoice;license"
    assert visit["inspectors"] == "F1;F2;M1;M2;T1;T2"
    assert visit["visit_date"] == dt.date(2025, 4, 1)
    assert joint.report() == {"tasks": 4, "visits": 2, "visits_saved": 2, "joint_visits": 1}
    assert "4项任务合并为2次检查" in joint.summary() and "2 visits saved" in joint.summary()
    items = joint.items.loc[joint.items["uscc"] == FIRM_A]
    assert len(items) == 4 and items["visit_id"].nunique() == 1
    assert set(items["department"]) == {"market", "tax", "fire"}


def test_tasks_outside_the_window_are_not_merged() -> None:
    tasks = pd.DataFrame([
        _task("M-01", "market", FIRM_A, "annual_report", dt.date(2025, 4, 1), "M1;M2"),
        _task("T-01", "tax", FIRM_A, "invoice", dt.date(2025, 5, 16), "T1;T2"),
    ])
    joint = merge_joint_visits(tasks, window_days=30)
    assert len(joint.visits) == 2 and joint.visits_saved == 0


def test_window_is_anchored_on_the_first_task_so_visits_do_not_chain() -> None:
    tasks = pd.DataFrame([
        _task("M-01", "market", FIRM_A, "annual_report", dt.date(2025, 4, 1), "M1;M2"),
        _task("T-01", "tax", FIRM_A, "invoice", dt.date(2025, 4, 26), "T1;T2"),
        _task("E-01", "environment", FIRM_A, "emissions", dt.date(2025, 5, 21), "E1;E2"),
    ])
    visits = merge_joint_visits(tasks, window_days=30).visits.sort_values("visit_date")
    assert visits["departments"].tolist() == ["market;tax", "environment"]


def test_same_items_on_different_firms_never_merge() -> None:
    tasks = pd.DataFrame([
        _task("M-01", "market", FIRM_A, "annual_report", dt.date(2025, 4, 1), "M1;M2"),
        _task("T-01", "tax", FIRM_B, "invoice", dt.date(2025, 4, 1), "T1;T2"),
    ])
    assert merge_joint_visits(tasks, window_days=30).visits_saved == 0


def test_ranked_lists_order_each_team_by_risk_with_class_and_reasons() -> None:
    firms = roster(40)
    codes = list(firms.index[:6])
    teams = ["M1;M2", "M1;M2", "M1;M2", "M3;M4", "M3;M4", "M3;M4"]
    tasks = pd.DataFrame([_task("M-01", "market", u, "annual_report", dt.date(2025, 4, 1), t)
                          for u, t in zip(codes, teams, strict=True)])
    ranked = ranked_inspection_lists(merge_joint_visits(tasks, 30).visits, firms)
    assert set(ranked["team_id"]) == {"M1;M2", "M3;M4"}
    for _, team in ranked.groupby("team_id"):
        assert team["rank"].tolist() == [1, 2, 3]
        assert team["probability"].is_monotonic_decreasing
        expected = firms.loc[team["uscc"], "probability"].sort_values(ascending=False)
        assert team["uscc"].tolist() == list(expected.index)
    first = ranked.iloc[0]
    assert first["class"] == firms.loc[first["uscc"], "class"]
    assert "行政处罚 / penalty" in first["top_reasons"]

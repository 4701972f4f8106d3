"""The inspectors' due list, driven end to end by the matrix policy, and policy validation."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from models.matrix import place_projects
from models.risk_source import grade_risk_source
from supervision.matrix_policy import (
    MatrixPolicy,
    MatrixPolicyError,
    default_policy_path,
    load_matrix_policy,
    parse_matrix_policy,
)
from supervision.schedule import DUE_LIST_COLUMNS, due_list

AS_OF = pd.Timestamp("2024-03-01")


def default_section() -> dict[str, Any]:
    document = yaml.safe_load(default_policy_path().read_text(encoding="utf-8"))
    return copy.deepcopy(document["matrix"])


def site(project_id: str, **changes: Any) -> dict[str, Any]:
    """A small, low-hazard site (no default rule fires) unless changed."""
    return {"project_id": project_id, "project_type": "residential", "use": "housing",
            "structure": "frame", "floor_area_m2": 8000.0, "height_m": 18.0, "storeys": 6,
            "excavation_depth_m": 2.0, "dangerous_works": 1, "over_scale_dangerous_works": 0,
            "crowded_surroundings": False, "stage": "decoration",
            "dangerous_works_active": False, **changes}


def no_events() -> pd.DataFrame:
    return pd.DataFrame({
        "event_id": pd.Series(dtype="string"), "project_id": pd.Series(dtype="string"),
        "event_type": pd.Series(dtype="string"),
        "occurred_date": pd.Series(dtype="datetime64[ns]"),
        "known_date": pd.Series(dtype="datetime64[ns]"), "severity": pd.Series(dtype="string"),
    })


def schedule(policy: MatrixPolicy, sites: list[dict[str, Any]], probabilities: list[float],
             last: list[str], events: pd.DataFrame | None = None,
             as_of: pd.Timestamp = AS_OF) -> pd.DataFrame:
    frame = pd.DataFrame(sites)
    graded = grade_risk_source(frame, policy.risk_source_rules())
    scores = pd.DataFrame({"project_id": frame["project_id"], "probability": probabilities})
    last_dates = pd.Series(pd.to_datetime(last), index=frame["project_id"])
    placed = place_projects(graded, scores, policy.matrix_rules(),
                            no_events() if events is None else events, as_of, last_dates)
    return due_list(placed, as_of)


def fixed_policy() -> MatrixPolicy:
    """The default rules with cut-offs and cells pinned here, so the test reads on its own."""
    section = default_section()
    section["risk_source"]["point_cutoffs"] = {"R2": 3, "R3": 6, "R4": 9}
    section["management"]["probability_cutoffs"] = {"M2": 0.2, "M3": 0.4, "M4": 0.6}
    section["cells"] = {
        "R4": {"M1": "orange", "M2": "red", "M3": "red", "M4": "red"},
        "R3": {"M1": "yellow", "M2": "orange", "M3": "red", "M4": "red"},
        "R2": {"M1": "blue", "M2": "yellow", "M3": "orange", "M4": "red"},
        "R1": {"M1": "blue", "M2": "blue", "M3": "yellow", "M4": "orange"},
    }
    return parse_matrix_policy(section)


def test_due_list_ranks_by_level_then_probability_and_skips_not_yet_due() -> None:
    policy = fixed_policy()
    sites = [site("LOW"), site("DEEP", excavation_depth_m=6.0, over_scale_dangerous_works=1,
                                 stage="foundation"),
             site("RISKY"), site("FRESH"), site("DEEP2", excavation_depth_m=6.0,
                                               over_scale_dangerous_works=1,
                                               stage="foundation")]
    # LOW: R1×M1 blue, last visit 200 days ago → overdue; FRESH: visited yesterday;
    # DEEP R3×M3 red; RISKY R1×M4 and DEEP2 R3×M2 orange, both due today
    due = schedule(policy, sites, [0.05, 0.5, 0.9, 0.05, 0.3],
                   ["2023-08-14", "2024-01-01", "2024-01-01", "2024-02-29", "2024-01-01"])
    assert list(due.columns) == list(DUE_LIST_COLUMNS)
    assert due["project_id"].tolist() == ["DEEP", "RISKY", "DEEP2", "LOW"]
    assert due["rank"].tolist() == [1, 2, 3, 4]
    assert due["level"].tolist() == ["red", "orange", "orange", "blue"]
    assert due["cell"].tolist() == ["R3×M3", "R1×M4", "R3×M2", "R1×M1"]
    assert due.set_index("project_id").loc["LOW", "days_overdue"] == 20
    reasons = due.set_index("project_id").loc["DEEP", "reasons"]
    assert "深基坑 (开挖深度≥5米) / deep excavation (≥ 5 m)" in reasons
    nothing_due = due_list(due.assign(next_due_date=pd.Timestamp("2024-12-31")), AS_OF)
    assert nothing_due.empty and list(nothing_due.columns) == list(DUE_LIST_COLUMNS)


def test_changing_one_cell_in_the_policy_changes_the_schedule() -> None:
    sites = [site("QUIET")]  # R1; probability 0.05 → M1; visited 40 days ago
    args = ([0.05], ["2024-01-21"])
    assert schedule(load_matrix_policy(), sites, *args).empty  # blue: every 180 days
    section = default_section()
    section["cells"]["R1"]["M1"] = "red"
    stricter = parse_matrix_policy(section)
    due = schedule(stricter, sites, *args)
    assert due["project_id"].tolist() == ["QUIET"]
    assert due.loc[0, "level"] == "red" and due.loc[0, "days_overdue"] == 10


def test_accident_puts_a_site_on_the_list_for_the_override_period_only() -> None:
    policy = load_matrix_policy()
    accident = no_events()
    accident.loc[0] = ["E1", "QUIET", "accident", pd.Timestamp("2024-02-01"),
                       pd.Timestamp("2024-02-02"), "serious"]
    sites, probabilities = [site("QUIET")], [0.05]
    during = schedule(policy, sites, probabilities, ["2024-02-03"], accident,
                      as_of=pd.Timestamp("2024-03-10"))
    assert during["project_id"].tolist() == ["QUIET"] and during.loc[0, "level"] == "red"
    after = schedule(policy, sites, probabilities, ["2024-04-20"], accident,
                     as_of=pd.Timestamp("2024-05-25"))
    assert after.empty  # back to blue: next visit 180 days after 2024-04-20


def test_dangerous_works_start_puts_a_site_on_the_list_now() -> None:
    start = no_events()
    start.loc[0] = ["E1", "QUIET", "dangerous_works_start", pd.Timestamp("2024-02-27"),
                    pd.Timestamp("2024-02-28"), pd.NA]
    due = schedule(load_matrix_policy(), [site("QUIET")], [0.05], ["2024-02-20"], start)
    assert due["project_id"].tolist() == ["QUIET"]
    assert due.loc[0, "next_due_date"] == pd.Timestamp("2024-02-28")
    assert "regrade" in due.loc[0, "overrides"]


# ----------------------------------------------------------------------------- bad policies


def error_for(section: dict[str, Any]) -> str:
    with pytest.raises(MatrixPolicyError) as caught:
        parse_matrix_policy(section, source="district.yaml")
    return str(caught.value)


def test_missing_cell_is_named_in_both_languages() -> None:
    section = default_section()
    del section["cells"]["R3"]["M2"]
    message = error_for(section)
    assert "district.yaml" in message and "matrix.cells" in message
    assert "缺少单元格 R3×M2" in message and "cell R3×M2 is missing" in message


def test_unknown_level_is_named_in_both_languages() -> None:
    section = default_section()
    section["cells"]["R2"]["M4"] = "purple"
    message = error_for(section)
    assert "单元格 R2×M4 的监管等级 'purple' 未定义" in message
    assert "cell R2×M4 names an unknown level 'purple'" in message
    assert "red, orange, yellow, blue" in message


def test_non_positive_interval_is_named_in_both_languages() -> None:
    section = default_section()
    section["levels"][1]["interval_days"] = 0
    message = error_for(section)
    assert "matrix.levels[1].interval_days" in message
    assert "天数必须为正整数" in message and "positive whole number of days" in message


def test_other_policy_mistakes_fail_loudly() -> None:
    section = default_section()
    section["risk_source"]["rules"][0]["when"][0]["column"] = "depth"
    section["overrides"]["accident"]["level"] = "crimson"
    section["management"]["probability_cutoffs"] = {"M2": 0.5, "M3": 0.4, "M4": 0.6}
    section["colour"] = "red"
    message = error_for(section)
    assert "规则不能检验列 'depth'" in message
    assert "逐级递增" in message
    assert "matrix.colour" in message
    accident_only = default_section()
    accident_only["overrides"]["accident"]["level"] = "crimson"
    assert "crimson" in error_for(accident_only)


def test_label_window_and_ece_gate_are_validated_policy_fields() -> None:
    management = default_section()["management"]
    assert parse_matrix_policy(default_section()).management.label_window_days == management[
        "label_window_days"]
    section = default_section()
    section["management"]["label_window_days"] = 0
    section["management"]["ece_gate"] = 1.5
    message = error_for(section)
    assert "matrix.management.label_window_days" in message
    assert "positive whole number of days" in message
    assert "matrix.management.ece_gate" in message and "strictly between 0 and 1" in message
    missing = default_section()
    del missing["management"]["label_window_days"]
    assert "matrix.management.label_window_days" in error_for(missing)


def test_loading_a_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "matrix.yaml"
    path.write_text("sampling: {}\n", encoding="utf-8")
    with pytest.raises(MatrixPolicyError, match=r"matrix\.yaml.*缺少顶层键 matrix"):
        load_matrix_policy(path)

"""Inspector assignment: two per target, recusal, rotation, infeasibility, balanced load."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_campaign_synthetic import inspectors

from features.uscc import make_code
from supervision.assignment import StaffingError, assign_inspectors, department_pool, workload
from supervision.sampling_policy import AssignmentPolicy

RULES = AssignmentPolicy(inspectors_per_target=2, no_repeat_last_inspectors=True)


def _targets(n: int) -> pd.DataFrame:
    return pd.DataFrame({"uscc": [make_code("91440105", 5000 + i) for i in range(n)]})


def _staff() -> pd.DataFrame:
    market = inspectors(7, "market")
    off_duty = inspectors(1, "market", start=50).assign(active=False)
    tax = inspectors(3, "tax")
    return pd.concat([market, off_duty, tax], ignore_index=True)


def _teams(assignment: pd.DataFrame) -> dict[str, set[str]]:
    return {u: set(t.split(";")) for u, t in zip(assignment["uscc"], assignment["inspectors"],
                                                 strict=True)}


def test_every_target_gets_two_distinct_on_duty_inspectors_of_the_department() -> None:
    targets = _targets(30)
    result = assign_inspectors(targets, _staff(), None, RULES, "market", "seed", "C1")
    pool = set(department_pool(_staff(), "market"))
    assert len(pool) == 7 and "MAR050" not in pool
    assert sorted(result["uscc"]) == sorted(targets["uscc"])
    for team in _teams(result).values():
        assert len(team) == 2
        assert team <= pool


def test_conflicted_inspector_is_never_assigned_to_that_target() -> None:
    targets = _targets(40)
    conflicts = pd.DataFrame({
        "inspector_id": ["MAR000"] * 20 + ["MAR001"] * 20,
        "uscc": list(targets["uscc"][:20]) + list(targets["uscc"][10:30]),
        "reason": "亲属关系 / relative", "declared_date": "2025-01-01",
    })
    forbidden = set(zip(conflicts["uscc"], conflicts["inspector_id"], strict=True))
    for seed in range(8):
        result = assign_inspectors(targets, _staff(), conflicts, RULES, "market", f"s{seed}", "C")
        for uscc, team in _teams(result).items():
            assert not {(uscc, i) for i in team} & forbidden


def test_last_team_does_not_inspect_the_same_firm_twice_running() -> None:
    targets = _targets(20)
    first, second = targets["uscc"][0], targets["uscc"][1]
    history = pd.DataFrame({
        "uscc": [first, first, second],
        "inspection_date": ["2023-05-01", "2024-06-01", "2024-06-01"],
        "department": ["market", "market", "tax"],
        "inspectors": ["MAR002;MAR003", "MAR000;MAR001", "MAR004;MAR005"],
    })
    for seed in range(8):
        teams = _teams(assign_inspectors(targets, _staff(), None, RULES, "market", f"s{seed}",
                                         "C", history=history))
        assert not teams[first] & {"MAR000", "MAR001"}  # the last market team of this firm
    seen_earlier = set()
    seen_other_department = set()
    for seed in range(30):
        teams = _teams(assign_inspectors(targets, _staff(), None, RULES, "market", f"s{seed}",
                                         "C", history=history))
        seen_earlier |= teams[first] & {"MAR002", "MAR003"}
        seen_other_department |= teams[second] & {"MAR004", "MAR005"}
    assert seen_earlier  # a team from two inspections ago may come back
    assert seen_other_department  # another department's visit does not bind market inspectors


def test_infeasible_staffing_names_each_target_and_why() -> None:
    targets = _targets(5)
    blocked = targets["uscc"][2]
    staff = inspectors(3, "market")
    conflicts = pd.DataFrame({"inspector_id": ["MAR000", "MAR001"], "uscc": [blocked, blocked]})
    with pytest.raises(StaffingError) as caught:
        assign_inspectors(targets, staff, conflicts, RULES, "market", "seed", "C")
    message = str(caught.value)
    assert "以下检查对象无法配齐2名执法人员" in message
    assert "cannot be staffed with 2 inspectors" in message
    assert blocked in message and "only 1 of 3" in message
    assert "2 have a conflict of interest" in message
    assert list(caught.value.unstaffable) == [blocked]


def test_department_without_enough_inspectors_is_reported_for_every_target() -> None:
    targets = _targets(3)
    with pytest.raises(StaffingError) as caught:
        assign_inspectors(targets, inspectors(1, "market"), None, RULES, "market", "s", "C")
    assert sorted(caught.value.unstaffable) == sorted(targets["uscc"])


def test_workload_is_balanced_within_one_when_feasible() -> None:
    targets = _targets(101)
    rng = np.random.default_rng(4)
    conflicts = pd.DataFrame(
        [(f"MAR{j:03d}", u) for u in targets["uscc"] for j in range(7) if rng.random() < 0.25],
        columns=["inspector_id", "uscc"])
    for seed in range(5):
        result = assign_inspectors(targets, _staff(), conflicts, RULES, "market", f"s{seed}", "C")
        load = workload(result, department_pool(_staff(), "market"))
        assert load.sum() == 2 * 101
        assert load.max() - load.min() <= 1


def test_balance_holds_where_least_loaded_greedy_alone_would_fail() -> None:
    """Inspector 2 may only visit the first five firms and inspector 3 only the last five, so a
    balanced plan (5 targets each) must send both to every one of their firms."""
    targets = _targets(10)
    staff = inspectors(4, "market")
    first, last = list(targets["uscc"][:5]), list(targets["uscc"][5:])
    conflicts = pd.DataFrame([("MAR003", u) for u in first] + [("MAR002", u) for u in last],
                             columns=["inspector_id", "uscc"])
    for seed in range(6):
        result = assign_inspectors(targets, staff, conflicts, RULES, "market", f"s{seed}", "C")
        load = workload(result, department_pool(staff, "market"))
        assert load.to_dict() == {"MAR000": 5, "MAR001": 5, "MAR002": 5, "MAR003": 5}


def test_per_inspector_cap_that_cannot_cover_the_targets_fails_clearly() -> None:
    rules = AssignmentPolicy(inspectors_per_target=2, no_repeat_last_inspectors=True,
                             max_targets_per_inspector=3)
    with pytest.raises(StaffingError, match="cap of 3 targets per inspector"):
        assign_inspectors(_targets(12), inspectors(6, "market"), None, rules, "market", "s", "C")
    ok = assign_inspectors(_targets(9), inspectors(6, "market"), None, rules, "market", "s", "C")
    assert workload(ok).max() <= 3


def test_assignment_is_reproducible_from_its_seed_and_random_across_seeds() -> None:
    targets = _targets(30)
    one = assign_inspectors(targets, _staff(), None, RULES, "market", "seed-1", "C")
    again = assign_inspectors(targets, _staff(), None, RULES, "market", "seed-1", "C")
    other = assign_inspectors(targets, _staff(), None, RULES, "market", "seed-2", "C")
    assert one.equals(again)
    assert not one.equals(other)

"""Class assignment: cut-offs from shares, boundaries, hysteresis, hard rules and their order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.classes import (
    CLASS_COLUMNS,
    HYSTERESIS,
    HardRule,
    assign_classes,
    cutoffs_from_shares,
)

# Test inputs standing in for policy-file values.
TIANHE_SHARES = {"A": 0.501, "B": 0.264, "C": 0.201, "D": 0.034}
CUTOFFS = [0.1, 0.2, 0.3]
DISHONEST = HardRule(
    "serious_dishonesty",
    "on_dishonesty_list",
    "force",
    "D",
    "列入严重违法失信名单",
    "on the serious-dishonesty list",
)
NEW_FIRM = HardRule(
    "newly_established",
    "newly_established",
    "at_most",
    "B",
    "新设立企业",
    "newly established",
)
KEY_INDUSTRY = HardRule(
    "key_industry",
    "key_industry",
    "at_least",
    "C",
    "重点行业",
    "key-supervision industry",
)


def _series(values: list[float]) -> pd.Series:
    return pd.Series(values, index=pd.Index([f"e{i}" for i in range(len(values))]))


def test_cutoffs_reproduce_the_target_shares_on_the_reference_distribution() -> None:
    probabilities = np.random.default_rng(3).beta(1.0, 12.0, 10_000)
    cutoffs = cutoffs_from_shares(probabilities, TIANHE_SHARES)
    assert len(cutoffs) == 3
    assert cutoffs == sorted(cutoffs)
    classes = assign_classes(pd.Series(probabilities), cutoffs)
    counts = classes["class"].value_counts()
    assert {label: int(counts[label]) for label in "ABCD"} == {
        "A": 5010,
        "B": 2640,
        "C": 2010,
        "D": 340,
    }
    # A is lowest risk: every A probability is below every D probability.
    assert (
        probabilities[classes["class"] == "A"].max() < probabilities[classes["class"] == "D"].min()
    )


def test_share_order_comes_from_the_labels_not_the_mapping() -> None:
    probabilities = np.linspace(0.0, 1.0, 1001)
    reversed_shares = dict(reversed(list(TIANHE_SHARES.items())))
    assert cutoffs_from_shares(probabilities, reversed_shares) == cutoffs_from_shares(
        probabilities, TIANHE_SHARES
    )


def test_tied_scores_at_a_boundary_go_to_the_riskier_class() -> None:
    probabilities = np.array([0.1, 0.2, 0.2, 0.2, 0.5])
    cutoffs = cutoffs_from_shares(probabilities, {"low": 0.4, "high": 0.6}, labels=("low", "high"))
    assert cutoffs == [0.2]
    classes = assign_classes(_series(probabilities.tolist()), cutoffs, labels=("low", "high"))
    assert classes["class"].tolist() == ["low", "high", "high", "high", "high"]


@pytest.mark.parametrize(
    ("shares", "match"),
    [
        ({"A": 0.5, "B": 0.3, "C": 0.1, "D": 0.05}, "sum to 1"),
        ({"A": 0.5, "B": 0.5}, "exactly the classes"),
        ({"A": 1.2, "B": -0.2, "C": 0.0, "D": 0.0}, ">= 0"),
    ],
)
def test_bad_shares_are_rejected(shares: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        cutoffs_from_shares(np.linspace(0, 1, 100), shares)


def test_a_probability_at_a_cutoff_belongs_to_the_riskier_class() -> None:
    classes = assign_classes(_series([0.0999, 0.1, 0.2, 0.2999, 0.3, 0.95]), CUTOFFS)
    assert list(classes.columns) == CLASS_COLUMNS
    assert classes["score_class"].tolist() == ["A", "B", "C", "C", "D", "D"]
    assert classes["class"].tolist() == classes["score_class"].tolist()
    assert classes["overrides"].tolist() == [()] * 6
    assert classes["reason_zh"].iloc[1] == "风险概率0.1000，按分类阈值为B类"
    assert classes["reason_en"].iloc[1] == "probability 0.1000 gives class B by the cut-offs"


def test_hysteresis_moving_up_needs_the_margin() -> None:
    probabilities = _series([0.11, 0.12, 0.125, 0.31, 0.33])
    previous = pd.Series(["A"] * 5, index=probabilities.index)
    classes = assign_classes(probabilities, CUTOFFS, margin=0.02, previous=previous)
    assert classes["score_class"].tolist() == ["B", "B", "B", "D", "D"]
    # 0.11 and 0.12 are not past 0.1 by more than the margin: stay A;
    # 0.31 is past 0.2 by more than the margin, but not past 0.3: C.
    assert classes["class"].tolist() == ["A", "A", "B", "C", "D"]
    assert classes["overrides"].tolist() == [(HYSTERESIS,), (HYSTERESIS,), (), (HYSTERESIS,), ()]
    assert "保持上期A类" in classes["reason_zh"].iloc[0]
    assert "kept last period's class A" in classes["reason_en"].iloc[3]


def test_hysteresis_moving_down_needs_the_margin() -> None:
    probabilities = _series([0.19, 0.17, 0.05, 0.25])
    previous = pd.Series(["C"] * 4, index=probabilities.index)
    classes = assign_classes(probabilities, CUTOFFS, margin=0.02, previous=previous)
    assert classes["score_class"].tolist() == ["B", "B", "A", "C"]
    assert classes["class"].tolist() == ["C", "B", "A", "C"]
    assert classes["overrides"].tolist() == [(HYSTERESIS,), (), (), ()]


def test_without_margin_or_previous_class_plain_cutoffs_apply() -> None:
    probabilities = _series([0.11, 0.19, 0.35, 0.05, 0.1])
    previous = pd.Series(["A", "C", "B", "A"], index=probabilities.index[[0, 1, 2, 4]])
    zero_margin = assign_classes(probabilities, CUTOFFS, margin=0.0, previous=previous)
    wide_margin = assign_classes(probabilities, CUTOFFS, margin=0.5, previous=previous)
    plain = assign_classes(probabilities, CUTOFFS)
    assert zero_margin["class"].tolist() == plain["class"].tolist() == ["B", "B", "D", "A", "B"]
    assert wide_margin["class"].tolist() == ["A", "C", "B", "A", "A"]  # e3 is new: cut-offs


def test_unknown_previous_class_is_named() -> None:
    probabilities = _series([0.1, 0.2])
    with pytest.raises(ValueError, match="e1"):
        assign_classes(probabilities, CUTOFFS, previous=pd.Series(["A", "X"], index=["e0", "e1"]))


def test_each_hard_rule_effect() -> None:
    probabilities = _series([0.05, 0.25, 0.35, 0.05, 0.35, 0.05, 0.15])
    flags = pd.DataFrame(
        {
            "on_dishonesty_list": [True, False, False, False, False, False, False],
            "newly_established": [False, True, True, True, False, False, False],
            "key_industry": [False, False, False, False, True, True, False],
        },
        index=probabilities.index,
    )
    classes = assign_classes(
        probabilities, CUTOFFS, hard_rules=[DISHONEST, NEW_FIRM, KEY_INDUSTRY], flags=flags
    )
    assert classes["score_class"].tolist() == ["A", "C", "D", "A", "D", "A", "B"]
    assert classes["class"].tolist() == ["D", "B", "B", "A", "D", "C", "B"]
    assert classes["overrides"].tolist() == [
        ("serious_dishonesty",),
        ("newly_established",),
        ("newly_established",),
        ("newly_established",),  # the cap applied, although A is already below it
        ("key_industry",),
        ("key_industry",),
        (),
    ]
    assert classes["reason_zh"].iloc[0].endswith("；列入严重违法失信名单（强制为D类）")
    assert classes["reason_en"].iloc[1].endswith("; newly established (at most class B)")
    assert classes["reason_en"].iloc[5].endswith("; key-supervision industry (at least class C)")


def test_rules_apply_in_order_after_hysteresis() -> None:
    probabilities = _series([0.35, 0.11])
    previous = pd.Series(["B", "A"], index=probabilities.index)
    flags = pd.DataFrame(
        {"on_dishonesty_list": [True, True], "newly_established": [True, False]},
        index=probabilities.index,
    )
    dishonest_last = assign_classes(
        probabilities,
        CUTOFFS,
        margin=0.02,
        previous=previous,
        hard_rules=[NEW_FIRM, DISHONEST],
        flags=flags,
    )
    new_firm_last = assign_classes(
        probabilities,
        CUTOFFS,
        margin=0.02,
        previous=previous,
        hard_rules=[DISHONEST, NEW_FIRM],
        flags=flags,
    )
    assert dishonest_last["class"].tolist() == ["D", "D"]
    assert new_firm_last["class"].tolist() == ["B", "D"]
    assert dishonest_last["overrides"].iloc[1] == (HYSTERESIS, "serious_dishonesty")
    assert new_firm_last["overrides"].iloc[0] == ("serious_dishonesty", "newly_established")


def test_flags_are_validated_per_entity_and_column() -> None:
    probabilities = _series([0.05, 0.25])
    complete = pd.DataFrame({"on_dishonesty_list": [1, 0]}, index=probabilities.index)
    forced = assign_classes(probabilities, CUTOFFS, hard_rules=[DISHONEST], flags=complete)
    assert forced["class"].tolist() == ["D", "C"]
    with pytest.raises(ValueError, match="e1"):
        assign_classes(probabilities, CUTOFFS, hard_rules=[DISHONEST], flags=complete.iloc[:1])
    with pytest.raises(ValueError, match="on_dishonesty_list"):
        assign_classes(
            probabilities,
            CUTOFFS,
            hard_rules=[DISHONEST],
            flags=pd.DataFrame({"other": [True, True]}, index=probabilities.index),
        )
    with pytest.raises(ValueError, match="flags"):
        assign_classes(probabilities, CUTOFFS, hard_rules=[DISHONEST])
    with pytest.raises(ValueError, match="boolean"):
        assign_classes(
            probabilities,
            CUTOFFS,
            hard_rules=[DISHONEST],
            flags=pd.DataFrame({"on_dishonesty_list": [2, 0]}, index=probabilities.index),
        )


def test_invalid_rules_cutoffs_and_probabilities_are_rejected() -> None:
    with pytest.raises(ValueError, match="effect"):
        HardRule("x", "flag", "raise", "D", "原因", "reason")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="target class"):
        assign_classes(
            _series([0.1]),
            CUTOFFS,
            hard_rules=[HardRule("x", "flag", "force", "E", "原因", "reason")],
            flags=pd.DataFrame({"flag": [True]}, index=["e0"]),
        )
    with pytest.raises(ValueError, match="3 cut-offs"):
        assign_classes(_series([0.1]), [0.1, 0.2])
    with pytest.raises(ValueError, match="non-decreasing"):
        assign_classes(_series([0.1]), [0.3, 0.2, 0.4])
    with pytest.raises(ValueError, match="e1"):
        assign_classes(_series([0.1, float("nan")]), CUTOFFS)

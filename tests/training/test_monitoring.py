"""Drift monitoring: PSI on known distributions, profiles, transitions."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from training.monitoring import (
    DriftThresholds,
    bin_shares,
    class_changes,
    distribution_profile,
    population_profile,
    population_stability,
    psi,
    psi_against,
    reference_json,
    transition_matrix,
)

THRESHOLDS = DriftThresholds(flag=0.1, alert=0.25, bins=10)


def test_psi_matches_the_hand_computed_value() -> None:
    expected = [0.25, 0.25, 0.25, 0.25]
    actual = [0.10, 0.20, 0.30, 0.40]
    by_hand = sum((a - e) * math.log(a / e) for a, e in zip(actual, expected, strict=True))
    assert psi(expected, actual) == pytest.approx(by_hand, rel=1e-12)
    assert by_hand == pytest.approx(0.2282, abs=1e-4)


def test_psi_is_zero_for_identical_shares_and_symmetric_in_sign() -> None:
    shares = [0.1, 0.2, 0.3, 0.4]
    assert psi(shares, shares) == 0.0
    assert psi(shares, shares[::-1]) == pytest.approx(psi(shares[::-1], shares))


def test_empty_bin_is_floored_not_infinite() -> None:
    assert math.isfinite(psi([0.5, 0.5, 0.0], [0.4, 0.4, 0.2]))


def test_same_distribution_is_stable_and_a_shift_is_flagged_then_alerted() -> None:
    rng = np.random.default_rng(0)
    reference = distribution_profile(rng.normal(0, 1, 50_000), bins=10)
    assert len(reference["edges"]) == 9 and sum(reference["shares"]) == pytest.approx(1.0)
    same = psi_against(reference, rng.normal(0, 1, 50_000))
    small = psi_against(reference, rng.normal(0.35, 1, 50_000))
    large = psi_against(reference, rng.normal(1.0, 1, 50_000))
    assert same < 0.01
    assert 0.1 < small < 0.25
    assert large > 0.25
    table = population_stability(
        {"features": {"x": reference, "y": reference, "z": reference}},
        pd.DataFrame({"x": rng.normal(0, 1, 50_000), "y": rng.normal(0.35, 1, 50_000),
                      "z": rng.normal(1.0, 1, 50_000), "new": np.zeros(50_000)}),
        None, THRESHOLDS)
    assert table.set_index("variable")["status"].to_dict() == {
        "x": "ok", "y": "flag", "z": "alert", "new": "no_reference"}
    assert set(table["status_zh"]) >= {"稳定", "无参照分布"}


def test_missing_values_have_their_own_bin() -> None:
    values = pd.Series([1.0, 2.0, np.nan, np.nan])
    shares = bin_shares(values, [1.5])
    assert shares.tolist() == [0.25, 0.25, 0.5]
    reference = distribution_profile(pd.Series([1.0, 2.0, 3.0, 4.0]), bins=2)
    assert psi_against(reference, pd.Series([np.nan] * 4)) > 0.25


def test_discrete_feature_gets_distinct_edges_and_profiles_survive_json() -> None:
    counts = pd.Series(np.r_[np.zeros(900), np.ones(90), np.full(10, 5.0)])
    profile = population_profile(pd.DataFrame({"penalties": counts}), ["penalties"],
                                 np.linspace(0, 1, 1000), bins=10)
    edges = profile["features"]["penalties"]["edges"]
    assert edges == sorted(set(edges))
    restored = json.loads(reference_json(profile))
    assert restored == profile
    table = population_stability(restored, pd.DataFrame({"penalties": counts}),
                                 np.linspace(0, 1, 1000), THRESHOLDS)
    assert table["psi"].abs().max() < 1e-12 and set(table["kind"]) == {"feature", "score"}


def test_thresholds_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="flag < alert"):
        DriftThresholds(flag=0.3, alert=0.2, bins=10)


def test_transition_matrix_counts_moves_entries_and_exits() -> None:
    previous = pd.Series({"a": "A", "b": "B", "c": "C", "d": "D"})
    current = pd.Series({"a": "A", "b": "C", "c": "B", "e": "D"})
    matrix = transition_matrix(previous, current, ["A", "B", "C", "D"])
    assert matrix.loc["A", "A"] == 1 and matrix.loc["B", "C"] == 1
    assert matrix.loc["C", "B"] == 1 and matrix.loc["new", "D"] == 1
    assert matrix.loc["D", "exited"] == 1
    assert int(matrix.to_numpy().sum()) == 5
    assert class_changes(matrix) == {"unchanged": 1, "riskier": 1, "safer": 1, "new": 1,
                                     "exited": 1}
    first = transition_matrix(None, current, ["A", "B", "C", "D"])
    assert class_changes(first)["new"] == 4

"""Horvitz–Thompson (Hájek) problem-rate estimates from random draws, and training labels."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from test_campaign_synthetic import default_policy, population_with_truth, spec

from supervision.campaigns import plan_campaign
from supervision.draw import draw_units
from supervision.estimates import outcome_units, problem_rate_estimates, training_labels


def _units(rows: list[tuple[str, str, float, bool]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["stratum", "class", "inclusion_probability", "problem"]
                        ).assign(campaign_id="C1")


def test_estimates_match_the_stratified_formulas_on_a_hand_example() -> None:
    units = _units([("A", "A", 0.2, True), ("A", "A", 0.2, False),
                    ("D", "D", 0.5, True), ("D", "D", 0.5, True)])
    strata = pd.DataFrame({"campaign_id": "C1", "stratum": ["A", "D"], "population": [10, 4]})
    table = problem_rate_estimates(units, 0.95, strata=strata).set_index("domain")
    assert table.loc["overall", "estimate"] == pytest.approx(9 / 14)
    # stratum A: s² = 2·½·½ / 1; stratum D (both problems): p̃ = 2.5/3 keeps s² = 2·p̃(1−p̃) > 0
    s2_d = 2 * (2.5 / 3) * (0.5 / 3)
    variance = (10**2 * 0.8 * 0.5 / 2 + 4**2 * 0.5 * s2_d / 2) / 14**2
    assert table.loc["overall", "std_error"] == pytest.approx(math.sqrt(variance))
    assert table.loc["A", "estimate"] == pytest.approx(0.5)
    assert table.loc["A", "std_error"] == pytest.approx(math.sqrt(0.2))
    assert table.loc["overall", "population_estimate"] == pytest.approx(14)
    # without the strata table N_h is recovered from the recorded probabilities
    again = problem_rate_estimates(units, 0.95).set_index("domain")
    assert again.loc["overall", "estimate"] == pytest.approx(9 / 14)


def test_a_census_stratum_is_estimated_exactly() -> None:
    units = _units([("D", "D", 1.0, True), ("D", "D", 1.0, False), ("D", "D", 1.0, True)])
    row = problem_rate_estimates(units, 0.95).set_index("domain").loc["D"]
    assert row["estimate"] == row["ci_low"] == row["ci_high"] == pytest.approx(2 / 3)


@pytest.mark.parametrize(("ratio_set", "class_a_rate"),
                         [("default", 0.05), ("henan_2021", 0.02)])
def test_intervals_cover_the_true_class_rates_in_at_least_90_percent_of_draws(
    ratio_set: str, class_a_rate: float,
) -> None:
    firms, truth = population_with_truth(2000, seed=11)
    # make class A non-trivial (the domain's 0 % is covered by any interval reaching 0): a
    # rare problem in ~10 inspected class-A firms is the hard case for interval coverage
    rng = np.random.default_rng(5)
    is_a = (firms["class"] == "A").to_numpy()
    truth[is_a] = rng.random(int(is_a.sum())) < class_a_rate
    true_rates = truth.groupby(firms["class"]).mean().to_dict()
    true_rates["overall"] = float(truth.mean())
    campaign = spec(item_kind="general", ratio_set=ratio_set)
    frame = plan_campaign(campaign, firms, default_policy())
    strata = frame.strata.assign(campaign_id=campaign.campaign_id)
    units = frame.units.assign(problem=truth.loc[frame.units["uscc"]].to_numpy())
    covered = {domain: 0 for domain in true_rates}
    estimates = {domain: [] for domain in true_rates}
    seeds = 200
    for s in range(seeds):
        drawn = draw_units(units, frame.sample_sizes, f"coverage-{s}", campaign.campaign_id)
        table = problem_rate_estimates(drawn.assign(campaign_id=campaign.campaign_id), 0.95,
                                       strata=strata)
        for row in table.itertuples():
            truth_d = true_rates[row.domain]
            covered[row.domain] += row.ci_low <= truth_d <= row.ci_high
            estimates[row.domain].append(row.estimate)
    coverage = {d: c / seeds for d, c in covered.items()}
    assert all(c >= 0.90 for c in coverage.values()), coverage
    for domain, values in estimates.items():  # and the estimates are centred on the truth
        assert np.mean(values) == pytest.approx(true_rates[domain], abs=0.02), domain


def test_outcome_units_flag_problems_and_skip_firms_with_pending_items() -> None:
    results = pd.DataFrame({
        "campaign_id": "C1", "uscc": ["U1", "U1", "U2", "U3", "U3"],
        "class": ["C", "C", "A", "B", "B"], "stratum": ["C", "C", "A", "B", "B"],
        "inclusion_probability": [0.3, 0.3, 0.02, 0.05, 0.05],
        "outcome": ["no_problem", "unreachable", "no_problem", "case_opened", None],
    })
    units = outcome_units(results, default_policy().publication.problem_outcomes)
    assert units.set_index("uscc")["problem"].to_dict() == {"U1": True, "U2": False}


def test_training_labels_carry_design_weights() -> None:
    units = _units([("A", "A", 0.02, True), ("D", "D", 0.5, False)]).assign(uscc=["U1", "U2"])
    labels = training_labels(units)
    assert labels["label"].tolist() == [1, 0]
    assert labels["weight"].tolist() == pytest.approx([50.0, 2.0])

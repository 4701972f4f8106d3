"""Policy comparison: class-driven ratios against uniform sampling at equal budget."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_campaign_synthetic import CLASS_RATES, default_policy, roster

from supervision.campaigns import CampaignError
from supervision.policy_replay import compare_ratio_sets

CYCLES = 4


def _district(n: int = 12000, seed: int = 21) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Classes with the domain's shares; per cycle, each firm violates at its class's rate."""
    firms = roster(n, seed)[["class"]]
    rng = np.random.default_rng(seed + 1000)  # not the roster's stream: classes drew from it
    rates = firms["class"].map(CLASS_RATES).to_numpy(dtype=float)
    truth = pd.concat(
        [pd.DataFrame({"uscc": firms.index, "cycle": c, "violating": rng.random(n) < rates})
         for c in range(CYCLES)],
        ignore_index=True,
    )
    return firms, truth


@pytest.fixture(scope="module")
def comparison() -> pd.DataFrame:
    firms, truth = _district()
    policy = default_policy()
    sets = {name: policy.ratio_sets[name] for name in ("default", "yuexiu_2022")}
    return compare_ratio_sets(firms, truth, sets, CYCLES, "replay-seed",
                              uniform_baseline_for="default",
                              floor_ratio=policy.floor_ratio).set_index("ratio_set")


def test_default_ratios_find_twice_the_problems_per_inspection_of_uniform_sampling(
    comparison: pd.DataFrame,
) -> None:
    table = comparison
    default, uniform = table.loc["default"], table.loc["uniform@default"]
    assert uniform["inspections"] == default["inspections"]  # equal total inspections
    assert default["problems_per_inspection"] >= 2 * uniform["problems_per_inspection"]
    assert default["class_a_inspections"] > 0  # 不免抽: class A keeps a non-zero floor
    assert default["class_a_share_inspected"] < uniform["class_a_share_inspected"]


def test_replay_reports_estimate_errors_that_are_small_for_random_draws(
    comparison: pd.DataFrame,
) -> None:
    table = comparison
    assert set(table.index) == {"default", "yuexiu_2022", "uniform@default"}
    assert (table["overall_rate_abs_error"] < 0.03).all()
    assert (table["class_rate_abs_error"] < 0.1).all()
    assert table.loc["default", "cycles"] == CYCLES
    assert table.loc["yuexiu_2022", "inspections"] > table.loc["default", "inspections"]


def test_replay_is_reproducible_and_checks_its_inputs() -> None:
    firms, truth = _district(2000)
    sets = {"default": default_policy().ratio_sets["default"]}
    first = compare_ratio_sets(firms, truth, sets, 2, "s")
    assert first.equals(compare_ratio_sets(firms, truth, sets, 2, "s"))
    with pytest.raises(CampaignError, match="cycles"):
        compare_ratio_sets(firms, truth, sets, 9, "s")
    with pytest.raises(CampaignError, match="classes"):
        compare_ratio_sets(firms, truth, {"partial": {"A": 0.1}}, 2, "s")


@pytest.mark.slow
def test_on_a_simulated_district_default_ratios_beat_uniform_twice_over() -> None:
    from simulation.district import DistrictConfig, simulate_district

    district = simulate_district(DistrictConfig(enterprises=4000, years=1, seed=1))
    classes = (district.truth["enterprise_class"].rename(columns={"true_class": "class"})
               .set_index("uscc"))
    monthly = district.truth["enterprise_monthly"]
    monthly = monthly.loc[monthly["uscc"].isin(classes.index)]
    months = sorted(monthly["month"].unique())[-12:]
    policy = default_policy()
    table = compare_ratio_sets(classes, monthly, {"default": policy.ratio_sets["default"]},
                               months, "simulated", cycle_column="month",
                               uniform_baseline_for="default",
                               floor_ratio=policy.floor_ratio).set_index("ratio_set")
    default, uniform = table.loc["default"], table.loc["uniform@default"]
    assert default["inspections"] == uniform["inspections"]
    assert default["problems_per_inspection"] >= 2 * uniform["problems_per_inspection"]
    assert default["class_a_inspections"] > 0
    assert default["overall_rate_abs_error"] < 0.05

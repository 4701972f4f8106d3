"""Project backtest: schedule replay, point-in-time folds, and a run on a tiny district."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.contract import TABLES
from features.project_features import PROJECT_FEATURES
from features.snapshot import coerce_types
from models.matrix import MANAGEMENT_GRADES, MatrixRules, SupervisionLevel
from models.risk_source import RISK_SOURCE_GRADES
from simulation.district import DistrictConfig, simulate_district
from supervision.matrix_policy import load_matrix_policy
from training.project_backtest import (
    STRATEGIES,
    ProjectBacktestConfig,
    ProjectBacktestError,
    ProjectTrainingConfig,
    format_project_backtest,
    replay_schedules,
    run_project_backtest,
    summarise_replay,
    train_fold,
    train_project_model,
)

SMALL_TREES = {"n_estimators": 40, "num_leaves": 7, "min_child_samples": 10, "n_jobs": 1}
LEVELS = (SupervisionLevel("red", "红", "red", 30), SupervisionLevel("blue", "蓝", "blue", 90))
# M4 sites red (monthly), everything else blue (quarterly)
RULES = MatrixRules(
    levels=LEVELS,
    cells={(r, m): "red" if m == "M4" else "blue"
           for r in RISK_SOURCE_GRADES for m in MANAGEMENT_GRADES},
    management_cutoffs=(0.2, 0.4, 0.6),
)


def monthly_sites(months: int = 6, sites: int = 10) -> pd.DataFrame:
    """Sites S0..S9; S0 and S1 are risky (M4) and truly defective every month."""
    rows = []
    for m, month in enumerate(pd.date_range("2025-01-01", periods=months, freq="MS")):
        for i in range(sites):
            risky = i < 2
            rows.append({
                "as_of": month, "project_id": f"S{i}", "probability": 0.9 if risky else 0.1,
                "risk_source_grade": "R2", "risk_source_points": float(sites - i),
                "true_risk": 0.8 if risky else 0.05 + 0.001 * i,
                "true_defective": 1.0 if risky else float(i == 5 and m == 0),
            })
    return pd.DataFrame(rows)


def no_events() -> pd.DataFrame:
    return pd.DataFrame({"project_id": pd.Series(dtype="string"),
                         "event_type": pd.Series(dtype="string"),
                         "occurred_date": pd.Series(dtype="datetime64[ns]"),
                         "known_date": pd.Series(dtype="datetime64[ns]")})


def test_every_strategy_gets_the_matrix_number_of_inspections() -> None:
    last = pd.Series(pd.to_datetime(["2024-12-20"] * 10), index=[f"S{i}" for i in range(10)])
    monthly = replay_schedules(monthly_sites(), RULES, no_events(), last, capacity=None)
    counts = monthly.pivot(index="month", columns="strategy", values="inspections")
    assert set(counts.columns) == set(STRATEGIES)
    assert (counts.nunique(axis=1) == 1).all()
    # red S0, S1 every month; the eight blue sites every 90 days (all due in March)
    assert counts["matrix"].tolist() == [2, 2, 10, 2, 2, 10]
    summary = summarise_replay(monthly).set_index("strategy")
    assert summary.loc["matrix", "defects_found"] == summary.loc["oracle", "defects_found"] == 12
    assert summary.loc["uniform", "defects_found"] < 12
    assert summary.loc["matrix", "vs_uniform"] > 1.5
    assert summary.loc["oracle", "pct_of_oracle"] == 1.0
    # uniform = expected finds of a random pick of as many sites: January, 2 of 10 sites
    # visited, 3 defective (S0, S1, S5) → 0.6; later months 2 defective
    found = monthly.pivot(index="month", columns="strategy", values="defects_found")
    expected = [2 / 10 * 3, 2 / 10 * 2, 10 / 10 * 2, 2 / 10 * 2, 2 / 10 * 2, 10 / 10 * 2]
    assert found["uniform"].tolist() == pytest.approx(expected)
    assert summary.loc["uniform", "vs_uniform"] == pytest.approx(1.0)


def test_capacity_caps_the_working_list_and_the_others_follow() -> None:
    last = pd.Series(pd.to_datetime(["2024-12-20"] * 10), index=[f"S{i}" for i in range(10)])
    monthly = replay_schedules(monthly_sites(months=5), RULES, no_events(), last, capacity=0.3)
    counts = monthly.pivot(index="month", columns="strategy", values="inspections")
    # only the two red sites are due in Jan and Feb; from March the eight blue ones queue up
    assert counts["matrix"].tolist() == [2, 2, 3, 3, 3]
    assert (counts.nunique(axis=1) == 1).all()
    summary = summarise_replay(monthly).set_index("strategy")
    assert summary.loc["matrix", "defects_found"] == 10  # red first on the list every month
    assert summary.loc["uniform", "defects_found"] < 10


def synthetic_panel(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    months = pd.date_range("2023-01-01", periods=30, freq="MS")
    rows = len(months) * 60
    panel = pd.DataFrame(
        rng.normal(size=(rows, len(PROJECT_FEATURES))), columns=list(PROJECT_FEATURES))
    panel.insert(0, "as_of", np.repeat(months, 60))
    panel.insert(0, "project_id", np.tile([f"P{i}" for i in range(60)], len(months)))
    signal = panel["problem_inspection_share"].to_numpy()
    panel["label"] = (rng.random(rows) < 1 / (1 + np.exp(-(signal - 1.5)))).astype(float)
    panel["label_date"] = panel["as_of"] + pd.Timedelta(days=20)
    panel["label_known_date"] = panel["as_of"] + pd.Timedelta(days=30)
    return panel


def test_a_fold_learns_only_from_labels_known_before_it() -> None:
    config = ProjectTrainingConfig(label_window_days=60, calibration_months=4,
                                   min_training_positives=10, classifier_params=SMALL_TREES)
    fold_date = pd.Timestamp("2024-07-01")
    panel = synthetic_panel()
    fold = train_fold(panel, fold_date, config)
    assert fold.calibration_from > fold.train_until
    assert fold.calibration_from + pd.DateOffset(months=3) < fold_date
    future = panel.copy()
    late = (future["as_of"] + pd.Timedelta(days=60) > fold_date) | (
        future["label_known_date"] >= fold_date)
    future.loc[late, "label"] = 1.0 - future.loc[late, "label"]
    again = train_fold(future, fold_date, config)
    X = panel[list(PROJECT_FEATURES)].head(200)
    np.testing.assert_array_equal(fold.model.predict_proba(X), again.model.predict_proba(X))


def test_too_little_history_is_a_clear_error() -> None:
    config = ProjectTrainingConfig(label_window_days=60, min_training_positives=10_000,
                                   classifier_params=SMALL_TREES)
    with pytest.raises(ProjectBacktestError, match=r"样本不足.*too few rows"):
        train_fold(synthetic_panel(), pd.Timestamp("2024-07-01"), config)


@pytest.mark.slow
def test_backtest_and_training_on_a_tiny_simulated_district() -> None:
    district = simulate_district(DistrictConfig(enterprises=1200, years=2, seed=3, projects=70))
    snapshot = {name: coerce_types(TABLES[name], district.tables[name]) for name in TABLES}
    policy = load_matrix_policy()
    training = ProjectTrainingConfig(label_window_days=60, panel_start="2025-09-01",
                                     calibration_months=3, min_training_positives=5,
                                     classifier_params=SMALL_TREES)
    config = ProjectBacktestConfig(training=training, capacities=(0.2,),
                                   test_start="2026-05-01", test_end="2026-07-01",
                                   replay_capacities=(0.2,))
    result = run_project_backtest(snapshot, policy.risk_source_rules(), policy.matrix_rules(),
                                  config, truth_monthly=district.truth["project_monthly"])
    models = {entry["model"] for entry in result.pooled}
    assert models == {"management_model", "risk_source_points", "oracle_true_risk"}
    pooled = next(e for e in result.pooled if e["model"] == "management_model")
    assert 0 <= pooled["ece"] < 0.5 and pooled["n_labelled"] > 0
    assert set(result.replay["strategy"]) == set(STRATEGIES)
    assert result.replay["inspections"].nunique() == 1
    assert result.placements["reasons"].str.contains("管理风险 / management").all()
    assert set(result.scored["as_of"].dt.month) == {5, 6, 7}
    text = format_project_backtest(result)
    assert "排期回放" in text and "uniform rotation" in text
    model = train_project_model(snapshot, "2026-08-01", training, panel=result.panel)
    assert model.train_until < model.calibration_from < pd.Timestamp("2026-08-01")

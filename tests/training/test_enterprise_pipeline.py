"""Temporal discipline of the enterprise backtest and the scoring it hands to serving."""

import numpy as np
import pandas as pd
import pytest

from features.contract import TABLES
from features.labels import label_available_date
from features.snapshot import coerce_types
from models.scoring import score_population
from simulation.district import DistrictConfig, simulate_district
from supervision.policy import load_policy
from training.enterprise import (
    LGBM,
    ORACLE,
    SCORECARD,
    UNIFORM,
    EnterpriseData,
    class_rules,
    data_period,
    fit_production_model,
    plan_folds,
    run_backtest,
    scorecard_rules,
)

POLICY = load_policy()
WINDOW = POLICY.enterprise.label_window_months
GRACE = POLICY.enterprise.label_grace_days


@pytest.fixture(scope="module")
def data() -> EnterpriseData:
    district = simulate_district(DistrictConfig(enterprises=2_000, years=4, seed=5))
    snapshot = {n: coerce_types(TABLES[n], f) for n, f in district.tables.items()}
    return EnterpriseData(snapshot, POLICY, district.truth)


def test_folds_learn_only_from_labels_final_before_the_fold() -> None:
    period = (pd.Timestamp("2022-10-01"), pd.Timestamp("2026-09-30"))
    folds = plan_folds(period, window_months=WINDOW, grace_days=GRACE, n_folds=4)
    assert [f.name for f in folds] == ["2024-10-01", "2025-01-01", "2025-04-01", "2025-07-01"]
    for fold in folds:
        used = [*fold.train_as_ofs, *fold.calibration_as_ofs]
        assert all(label_available_date(d, WINDOW, GRACE) <= fold.as_of for d in used)
        assert min(fold.calibration_as_ofs) > max(fold.train_as_ofs)
        assert label_available_date(fold.as_of, WINDOW, GRACE) <= period[1]


def test_too_short_a_period_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="too short"):
        plan_folds((pd.Timestamp("2025-01-01"), pd.Timestamp("2025-12-31")),
                   window_months=WINDOW, grace_days=GRACE, n_folds=4)


def test_label_period_starts_with_the_first_inspection(data: EnterpriseData) -> None:
    start, end = data_period(data.snapshot)
    assert start == data.snapshot["inspections"]["inspection_date"].min()
    assert end >= data.snapshot["enterprise_events"]["known_date"].max()


def test_scorecard_levels_score_exact_values_only() -> None:
    rule = scorecard_rules(POLICY)["tax_grade_rank"]
    points = rule.points(np.array([0.0, 1.0, 2.0, 3.0, np.nan]))
    assert points.tolist() == [0.0, 0.0, 15.0, 25.0, 0.0]


@pytest.mark.slow
def test_backtest_reports_every_model_and_beats_uniform(data: EnterpriseData) -> None:
    result = run_backtest(data, n_folds=2, lgbm_params={"n_estimators": 60})
    models = {r["model"] for r in result.rows}
    assert {LGBM, SCORECARD, UNIFORM, ORACLE} <= models
    mean = {r["model"]: r for r in result.overall()}
    at10 = {m: next(c for c in r["capacity"] if c["capacity"] == 0.10) for m, r in mean.items()}
    assert at10[LGBM]["true_per_inspection"] > 1.5 * at10[UNIFORM]["true_per_inspection"]
    assert at10[ORACLE]["pct_of_oracle"] == pytest.approx(1.0)
    assert "lightgbm" in result.table() and result.records()["folds"]


def test_scores_are_explained_additively_and_classed_by_policy(data: EnterpriseData) -> None:
    model, fold = fit_production_model(data, lgbm_params={"n_estimators": 40})
    X = data.features(fold.as_of)
    population = score_population(model, X, POLICY.feature_catalogue(), class_rules(POLICY))
    scores = population.scores
    np.testing.assert_allclose(population.contributions.sum(axis=1), scores["raw_score"],
                               atol=1e-6)
    listed = X["on_serious_dishonesty_list"].astype(bool)
    assert (scores.loc[listed, "class"] == "D").all()
    assert set(scores["class"]) <= {"A", "B", "C", "D"}
    assert (scores["top_reasons_zh"] != "").all()
    # Context that is the same for every firm on a date is never one firm's reason.
    assert "days_since_report_deadline" in model.feature_names_
    assert "days_since_report_deadline" not in set(population.reasons["feature"].astype(str))
    again = score_population(model, X, POLICY.feature_catalogue(), class_rules(POLICY))
    pd.testing.assert_frame_equal(again.scores, scores)

"""Baselines: the points scorecard (rules, totals, reasons, probability map) and logistic."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from models_synthetic import CATALOGUE, MODEL_INPUTS
from sklearn.metrics import brier_score_loss, roc_auc_score

from models.baselines import LogisticBaseline, PointRule, PointScorecard
from models.inputs import FeatureFrameError

Data = tuple[pd.DataFrame, pd.Series, np.ndarray]

# Illustrative points as a policy file would give them (not policy in code: test input).
CARD = {
    "penalties": PointRule("penalties_365d", per_unit=5.0, cap=20.0),
    "abnormal": PointRule("abnormal_list", bands=((1.0, 10.0),)),
    "complaints": PointRule("complaints_90d", bands=((1.0, 2.0), (3.0, 6.0))),
    "tax": PointRule("tax_score", bands=((70.0, -3.0), (90.0, -6.0)), missing_points=4.0),
}


def test_linear_rule_is_capped_and_missing_gets_its_points() -> None:
    rule = PointRule("x", per_unit=5.0, cap=20.0, missing_points=7.0)
    np.testing.assert_array_equal(
        rule.points(np.array([0.0, 1.0, 3.0, 4.0, 9.0, np.nan])),
        [0.0, 5.0, 15.0, 20.0, 20.0, 7.0],
    )


def test_banded_rule_takes_the_highest_band_reached() -> None:
    rule = PointRule("x", bands=[(1, 2), (3, 6)])  # lists, as parsed from YAML
    assert rule.bands == ((1.0, 2.0), (3.0, 6.0))
    np.testing.assert_array_equal(
        rule.points(np.array([0.0, 0.99, 1.0, 2.5, 3.0, 100.0, np.nan])),
        [0.0, 0.0, 2.0, 2.0, 6.0, 6.0, 0.0],
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {},  # neither kind
        {"per_unit": 1.0, "bands": ((1.0, 1.0),)},  # both kinds
        {"bands": ((3.0, 1.0), (1.0, 2.0))},  # thresholds not increasing
        {"bands": ((1.0, 1.0),), "cap": 5.0},  # cap without per_unit
        {"per_unit": 1.0, "cap": -1.0},
    ],
)
def test_malformed_rules_are_rejected_with_the_feature_named(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="'penalties_365d'"):
        PointRule("penalties_365d", **kwargs)


def test_score_is_the_sum_of_the_explained_points() -> None:
    X = pd.DataFrame(
        {
            "penalties_365d": [0.0, 2.0, 6.0],
            "abnormal_list": [0.0, 1.0, 0.0],
            "complaints_90d": [0.0, 1.0, 5.0],
            "tax_score": [95.0, np.nan, 75.0],
            "unrelated": ["a", "b", "c"],
        },
        index=pd.Index(["e1", "e2", "e3"], name="entity_id"),
    )
    card = PointScorecard(CARD)
    points = card.explain_points(X)
    assert list(points.columns) == list(CARD)
    assert list(points.loc["e2"]) == [10.0, 10.0, 2.0, 4.0]
    assert list(points.loc["e3"]) == [20.0, 0.0, 6.0, -3.0]
    pd.testing.assert_series_equal(
        card.score(X), pd.Series([-6.0, 26.0, 23.0], index=X.index, name="points")
    )
    with pytest.raises(FeatureFrameError, match="tax_score"):
        card.score(X.drop(columns="tax_score"))


def test_fitted_scorecard_probability_is_monotone_in_points_and_beats_the_base_rate(
    train_data: Data, later_data: Data
) -> None:
    X, y, _ = train_data
    X_test, y_test, _ = later_data
    card = PointScorecard(CARD).fit(X, y)
    proba = card.predict_proba(X_test)
    assert proba.shape == (len(X_test), 2)
    order = np.argsort(card.decision_function(X_test), kind="stable")
    assert (np.diff(proba[order, 1]) >= 0).all()
    base_rate = np.full(len(y_test), y.mean())
    assert brier_score_loss(y_test, proba[:, 1]) < brier_score_loss(y_test, base_rate)
    assert card.feature_names_ == [
        "penalties_365d",
        "abnormal_list",
        "complaints_90d",
        "tax_score",
    ]


def test_logistic_baseline_uses_model_inputs_with_missing_indicators(
    train_data: Data, later_data: Data
) -> None:
    X, y, _ = train_data
    X_test, y_test, _ = later_data
    model = LogisticBaseline(CATALOGUE).fit(X, y)
    assert model.feature_names_ == MODEL_INPUTS
    imputer = model.pipeline_.named_steps["impute"]
    flagged = [MODEL_INPUTS[i] for i in imputer.indicator_.features_]
    assert flagged == ["firm_age_years", "tax_score"]  # the columns with NaN in training
    proba = model.predict_proba(X_test)
    assert proba.shape == (len(X_test), 2)
    assert roc_auc_score(y_test, proba[:, 1]) > 0.7
    np.testing.assert_allclose(
        np.log(proba[:, 1] / proba[:, 0]), model.decision_function(X_test), atol=1e-8
    )


def test_logistic_baseline_sample_weight_shifts_probabilities(train_data: Data) -> None:
    X, y, _ = train_data
    weights = np.where(y.to_numpy() == 1, 5.0, 1.0)
    plain = LogisticBaseline(CATALOGUE).fit(X, y).predict_proba(X)[:, 1].mean()
    weighted = LogisticBaseline(CATALOGUE).fit(X, y, sample_weight=weights)
    assert weighted.predict_proba(X)[:, 1].mean() > plain

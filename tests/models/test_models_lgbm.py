"""RiskClassifier: sklearn conventions, monotone constraints, column handling, early stopping."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from models_synthetic import CATALOGUE, MODEL_INPUTS, make_frame
from scipy.special import logit
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from models.inputs import FeatureFrameError
from models.lgbm import RiskClassifier

Data = tuple[pd.DataFrame, pd.Series, np.ndarray]


def test_fit_sets_fitted_attributes_and_keeps_hyperparameters(
    fitted_classifier: RiskClassifier,
) -> None:
    assert fitted_classifier.feature_names_ == MODEL_INPUTS  # audit-only column excluded
    assert "state_owned" not in fitted_classifier.booster_.feature_name()
    assert fitted_classifier.booster_.current_iteration() == 120
    assert fitted_classifier.get_params()["n_estimators"] == 120
    assert fitted_classifier.monotone_constraints_ == [1, 1, 1, -1, -1, 0]
    assert list(fitted_classifier.classes_) == [0, 1]
    unfitted = clone(fitted_classifier)
    assert not hasattr(unfitted, "booster_")
    assert unfitted.get_params()["catalogue"] == CATALOGUE


def test_predict_proba_is_a_probability_pair_that_ranks_well(
    fitted_classifier: RiskClassifier, later_data: Data
) -> None:
    X, y, _ = later_data
    proba = fitted_classifier.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert ((proba >= 0) & (proba <= 1)).all()
    np.testing.assert_allclose(
        logit(proba[:, 1]), fitted_classifier.decision_function(X), rtol=1e-7, atol=1e-7
    )
    assert roc_auc_score(y, proba[:, 1]) > 0.7


def _probability_over_grid(
    model: RiskClassifier, base_rows: pd.DataFrame, feature: str, grid: np.ndarray
) -> np.ndarray:
    """Probabilities with shape (rows, grid points) as `feature` sweeps `grid`."""
    sweep = base_rows.loc[base_rows.index.repeat(len(grid))].copy()
    sweep[feature] = np.tile(grid, len(base_rows))
    return model.predict_proba(sweep)[:, 1].reshape(len(base_rows), len(grid))


@pytest.mark.parametrize("feature", ["penalties_365d", "complaints_90d", "abnormal_list"])
def test_increasing_a_risk_raising_feature_never_lowers_probability(
    fitted_classifier: RiskClassifier, later_data: Data, feature: str
) -> None:
    X = later_data[0].iloc[:300]  # includes rows with NaN in other features
    grid = np.linspace(0.0, 8.0, 33)
    proba = _probability_over_grid(fitted_classifier, X, feature, grid)
    assert (np.diff(proba, axis=1) >= -1e-12).all()
    assert (proba[:, -1] > proba[:, 0]).mean() > 0.5  # and it does matter


@pytest.mark.parametrize("feature", ["firm_age_years", "tax_score"])
def test_increasing_a_risk_lowering_feature_never_raises_probability(
    fitted_classifier: RiskClassifier, later_data: Data, feature: str
) -> None:
    X = later_data[0].iloc[:300]
    grid = np.linspace(0.0, 100.0, 41)
    proba = _probability_over_grid(fitted_classifier, X, feature, grid)
    assert (np.diff(proba, axis=1) <= 1e-12).all()


def test_without_constraints_the_u_shaped_age_effect_shows(train_data: Data) -> None:
    """The monotone tests above would be vacuous if the data were monotone anyway."""
    X, y, _ = train_data
    free = RiskClassifier(
        CATALOGUE, n_estimators=120, use_monotone_constraints=False, n_jobs=1
    ).fit(X, y)
    proba = _probability_over_grid(free, X.iloc[:300], "firm_age_years", np.linspace(0, 40, 41))
    assert (np.diff(proba, axis=1) > 1e-6).any()


def test_columns_are_matched_by_name_not_position(
    fitted_classifier: RiskClassifier, later_data: Data
) -> None:
    X = later_data[0]
    shuffled = X[list(reversed(X.columns))].assign(unrelated_text="x")
    np.testing.assert_array_equal(
        fitted_classifier.decision_function(shuffled), fitted_classifier.decision_function(X)
    )


def test_missing_or_non_numeric_columns_are_named_in_the_error(
    fitted_classifier: RiskClassifier, later_data: Data
) -> None:
    X = later_data[0]
    with pytest.raises(FeatureFrameError, match="tax_score"):
        fitted_classifier.predict_proba(X.drop(columns=["tax_score"]))
    with pytest.raises(FeatureFrameError, match="penalties_365d"):
        fitted_classifier.predict_proba(X.assign(penalties_365d="2"))
    with pytest.raises(FeatureFrameError, match="DataFrame"):
        fitted_classifier.predict_proba(X.to_numpy())  # type: ignore[arg-type]


def test_nullable_integer_columns_are_accepted(
    fitted_classifier: RiskClassifier, later_data: Data
) -> None:
    X = later_data[0].iloc[:50]
    nullable = X.assign(penalties_365d=X["penalties_365d"].astype("Int64"))
    nullable.loc[nullable.index[0], "penalties_365d"] = pd.NA
    expected = X.copy()
    expected.loc[expected.index[0], "penalties_365d"] = np.nan
    np.testing.assert_array_equal(
        fitted_classifier.decision_function(nullable),
        fitted_classifier.decision_function(expected),
    )


def test_training_is_deterministic(train_data: Data) -> None:
    X, y, _ = train_data
    first = RiskClassifier(CATALOGUE, n_estimators=30, n_jobs=1).fit(X, y)
    second = RiskClassifier(CATALOGUE, n_estimators=30, n_jobs=1).fit(X, y)
    assert first.booster_.model_to_string() == second.booster_.model_to_string()


def test_early_stopping_cuts_the_booster_to_its_best_iteration(
    train_data: Data, later_data: Data
) -> None:
    X, y, _ = train_data
    X_val, y_val, _ = later_data
    model = RiskClassifier(
        CATALOGUE, n_estimators=500, learning_rate=0.3, early_stopping_rounds=10, n_jobs=1
    ).fit(X, y, eval_set=(X_val, y_val))
    assert 1 <= model.best_iteration_ < 500
    assert model.booster_.current_iteration() == model.best_iteration_
    losses = model.evals_result_["validation"]["binary_logloss"]
    assert np.argmin(losses) + 1 == model.best_iteration_


def test_early_stopping_without_validation_set_is_an_error(train_data: Data) -> None:
    X, y, _ = train_data
    with pytest.raises(ValueError, match="eval_set"):
        RiskClassifier(CATALOGUE, n_estimators=5, early_stopping_rounds=3, n_jobs=1).fit(X, y)


def test_sample_weight_changes_the_model_and_bad_labels_are_rejected(train_data: Data) -> None:
    X, y, _ = train_data
    weights = np.where(y.to_numpy() == 1, 5.0, 1.0)
    plain = RiskClassifier(CATALOGUE, n_estimators=20, n_jobs=1).fit(X, y)
    weighted = RiskClassifier(CATALOGUE, n_estimators=20, n_jobs=1).fit(X, y, sample_weight=weights)
    assert weighted.predict_proba(X)[:, 1].mean() > plain.predict_proba(X)[:, 1].mean()
    with pytest.raises(ValueError, match="0/1"):
        RiskClassifier(CATALOGUE, n_estimators=5, n_jobs=1).fit(X, y.replace({1: 2}))
    with pytest.raises(ValueError, match="sample_weight"):
        RiskClassifier(CATALOGUE, n_estimators=5, n_jobs=1).fit(X, y, sample_weight=-weights)


def test_without_catalogue_all_columns_are_used_unconstrained() -> None:
    X, y, _ = make_frame(600, seed=5)
    model = RiskClassifier(n_estimators=5, n_jobs=1).fit(X, y)
    assert model.feature_names_ == list(X.columns)
    assert set(model.monotone_constraints_) == {0}

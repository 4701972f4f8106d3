"""CalibratedRiskModel: better calibration on a later slice, ranking untouched."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from models_synthetic import CATALOGUE
from scipy.special import expit, logit
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score

from models.calibration import CalibratedRiskModel, CalibrationMethod
from models.lgbm import RiskClassifier

Data = tuple[pd.DataFrame, pd.Series, np.ndarray]


def expected_calibration_error(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> float:
    """Occupancy-weighted mean |observed rate - mean prediction| over equal-count bins."""
    order = np.argsort(p, kind="stable")
    error = 0.0
    for chunk in np.array_split(order, n_bins):
        error += len(chunk) * abs(y[chunk].mean() - p[chunk].mean())
    return error / len(p)


class ScoreColumn:
    """Test double for a fitted base model whose raw score is the column `raw`."""

    def __init__(self) -> None:
        self.feature_names_ = ["raw"]

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        return X["raw"].to_numpy(dtype=np.float64)


def miscalibrated_scores(n_rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Overconfident, shifted log-odds (3 × true log-odds + 1) with labels from the truth."""
    rng = np.random.default_rng(seed)
    true_p = expit(rng.normal(-2.0, 1.0, n_rows))
    y = (rng.random(n_rows) < true_p).astype(int)
    raw = 3.0 * logit(true_p) + 1.0
    return pd.DataFrame({"raw": raw}), y


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_calibration_lowers_ece_and_keeps_the_ranking(method: CalibrationMethod) -> None:
    X_cal, y_cal = miscalibrated_scores(6000, seed=10)
    X_test, y_test = miscalibrated_scores(6000, seed=11)
    raw_p = expit(X_test["raw"].to_numpy())
    model = CalibratedRiskModel(ScoreColumn(), method=method).fit(X_cal, y_cal)
    calibrated = model.predict_proba(X_test)[:, 1]

    before = expected_calibration_error(y_test, raw_p)
    after = expected_calibration_error(y_test, calibrated)
    assert before > 0.08
    assert after < before / 4
    assert roc_auc_score(y_test, calibrated) == pytest.approx(
        roc_auc_score(y_test, raw_p), abs=1e-12
    )
    np.testing.assert_array_equal(model.decision_function(X_test), X_test["raw"].to_numpy())


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_calibration_map_is_strictly_increasing(method: CalibrationMethod) -> None:
    """Isotonic steps must not tie enterprises the base model tells apart."""
    X_cal, y_cal = miscalibrated_scores(3000, seed=12)
    model = CalibratedRiskModel(ScoreColumn(), method=method).fit(X_cal, y_cal)
    grid = np.linspace(-30.0, 15.0, 4001)  # well beyond the calibration range on both sides
    mapped = model.proba_from_raw(grid)
    assert (np.diff(mapped) > 0).all()
    assert ((mapped > 0) & (mapped < 1)).all()


def test_isotonic_tie_break_moves_probabilities_negligibly() -> None:
    X_cal, y_cal = miscalibrated_scores(3000, seed=13)
    model = CalibratedRiskModel(ScoreColumn()).fit(X_cal, y_cal)
    grid = np.linspace(-20.0, 10.0, 500)
    stepped = model.calibrator_.predict(grid)
    assert np.abs(model.proba_from_raw(grid) - stepped).max() <= 1e-6


def test_calibrating_a_lightgbm_model_on_a_later_slice(train_data: Data, later_data: Data) -> None:
    X, y, _ = train_data
    X_later, y_later, _ = later_data
    weights = np.where(y.to_numpy() == 1, 6.0, 1.0)  # reweighting inflates probabilities
    base = RiskClassifier(CATALOGUE, n_estimators=60, n_jobs=1).fit(X, y, sample_weight=weights)
    X_cal, y_cal = X_later.iloc[:1500], y_later.iloc[:1500]
    X_test, y_test = X_later.iloc[1500:], y_later.iloc[1500:].to_numpy()
    model = CalibratedRiskModel(base).fit(X_cal, y_cal)

    base_p = base.predict_proba(X_test)[:, 1]
    calibrated = model.predict_proba(X_test)
    assert calibrated.shape == (len(X_test), 2)
    assert expected_calibration_error(y_test, calibrated[:, 1]) < 0.5 * (
        expected_calibration_error(y_test, base_p)
    )
    assert roc_auc_score(y_test, calibrated[:, 1]) == pytest.approx(
        roc_auc_score(y_test, base_p), abs=1e-12
    )
    assert model.feature_names_ == base.feature_names_
    assert base.booster_.current_iteration() == 60  # the base is left as it was


def test_unfitted_base_and_unknown_method_are_rejected(train_data: Data) -> None:
    X, y, _ = train_data
    with pytest.raises(NotFittedError):
        CalibratedRiskModel(RiskClassifier(CATALOGUE)).fit(X, y)
    with pytest.raises(ValueError, match="isotonic"):
        CalibratedRiskModel(ScoreColumn(), method="beta").fit(  # type: ignore[arg-type]
            pd.DataFrame({"raw": [0.0, 1.0]}), np.array([0, 1])
        )


def test_platt_on_a_backwards_ranking_is_an_error() -> None:
    X_cal, y_cal = miscalibrated_scores(2000, seed=14)
    with pytest.raises(ValueError, match="backwards"):
        CalibratedRiskModel(ScoreColumn(), method="sigmoid").fit(X_cal, 1 - y_cal)

"""Calibrating a fitted risk model on a later time slice.

Why a separate, later slice: the trees have seen their own training rows, so probabilities
read off the training slice are overconfident; and the inspection population drifts (new
policies, new enterprise mix), so the calibration slice should be the most recent labelled
period *after* the training window. The caller chooses that slice — the model cannot know
the time axis — and only the score-to-probability map is refitted; the trees and their SHAP
explanations stay as trained.

The map is monotone in the base model's raw score, so calibration never reorders
enterprises: AUC, the ranked inspection list and the SHAP story are those of the base model.
"""

from __future__ import annotations

from typing import Any, Literal, Self

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import NotFittedError
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

from models.inputs import binary_target, check_sample_weight

CalibrationMethod = Literal["isotonic", "sigmoid"]


class CalibratedRiskModel(ClassifierMixin, BaseEstimator):
    """A fitted base model plus a monotone raw-score → probability map.

    `base` must already be fitted and expose `decision_function(X)` (raw score) and
    `feature_names_`; `fit` leaves it untouched (do not `clone` this wrapper: the clone
    would carry an unfitted base).

    `method="isotonic"` fits sklearn's `IsotonicRegression(out_of_bounds="clip")` on the raw
    score. Isotonic regression is a step function, and steps would put thousands of
    enterprises on the same probability: quantile cut-offs could then not hit their class
    shares and the ranked list would lose the base model's order. So the isotonic output is
    blended with the logistic of the raw score at weight `tie_break` (default 1e-6, far below
    any meaningful probability difference), which makes the map strictly increasing.
    `method="sigmoid"` is Platt scaling: an unpenalised `LogisticRegression` on the raw score;
    a non-positive slope (the base ranks backwards on the calibration slice) is an error.
    """

    def __init__(
        self,
        base: Any,
        method: CalibrationMethod = "isotonic",
        *,
        tie_break: float = 1e-6,
    ) -> None:
        self.base = base
        self.method = method
        self.tie_break = tie_break

    def fit(
        self,
        X_cal: pd.DataFrame,
        y_cal: pd.Series | np.ndarray,
        sample_weight: pd.Series | np.ndarray | None = None,
    ) -> Self:
        """Fit only the calibrator, on a slice later than the base model's training window."""
        if self.method not in ("isotonic", "sigmoid"):
            raise ValueError(
                f"method must be 'isotonic' or 'sigmoid', got {self.method!r} / 校准方法无效"
            )
        if not 0.0 <= self.tie_break < 1.0:
            raise ValueError(f"tie_break must be in [0, 1), got {self.tie_break}")
        if not hasattr(self.base, "decision_function"):
            raise TypeError(f"{type(self.base).__name__} has no decision_function (raw score)")
        if not hasattr(self.base, "feature_names_"):
            raise NotFittedError(
                f"the base {type(self.base).__name__} must be fitted before calibration / "
                "校准前须先训练基础模型"
            )
        raw = self.base.decision_function(X_cal)
        labels = binary_target(y_cal, len(raw))
        weights = check_sample_weight(sample_weight, len(raw))
        if self.method == "isotonic":
            isotonic = IsotonicRegression(
                y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip"
            )
            isotonic.fit(raw, labels, sample_weight=weights)
            self.calibrator_: IsotonicRegression | LogisticRegression = isotonic
        else:
            platt = LogisticRegression(C=np.inf, max_iter=1000)
            platt.fit(raw.reshape(-1, 1), labels, sample_weight=weights)
            slope = float(platt.coef_[0, 0])
            if slope <= 0.0:
                raise ValueError(
                    f"Platt slope is {slope:.4g} <= 0: the base model ranks the calibration "
                    "slice backwards; retrain instead of calibrating / 基础模型在校准样本上排序失效"
                )
            self.calibrator_ = platt
        self.feature_names_ = list(self.base.feature_names_)
        self.n_features_in_ = len(self.feature_names_)
        self.classes_ = np.array([0, 1])
        return self

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        """The base model's raw score: what SHAP contributions explain and add up to."""
        return np.asarray(self.base.decision_function(X), dtype=np.float64)

    def proba_from_raw(self, raw: np.ndarray) -> np.ndarray:
        """Calibrated positive-class probability for raw base scores (strictly increasing)."""
        check_is_fitted(self, "calibrator_")
        raw = np.asarray(raw, dtype=np.float64)
        if isinstance(self.calibrator_, LogisticRegression):
            return np.asarray(self.calibrator_.predict_proba(raw.reshape(-1, 1))[:, 1])
        stepped = np.asarray(self.calibrator_.predict(raw), dtype=np.float64)
        return (1.0 - self.tie_break) * stepped + self.tie_break * expit(raw)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Shape (n, 2): P(class 0), P(class 1), calibrated."""
        positive = self.proba_from_raw(self.decision_function(X))
        return np.column_stack([1.0 - positive, positive])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """0/1 at calibrated probability 0.5 (sklearn tooling; the product uses classes)."""
        return (self.predict_proba(X)[:, 1] > 0.5).astype(np.int64)

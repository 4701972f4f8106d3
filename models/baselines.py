"""Baselines the learned model must beat: a points scorecard and a logistic regression.

The points scorecard is what many districts run today (a fixed number of points per
penalty, per abnormal-list entry, ...). Fitting only a monotone points → probability map
lets it be compared with the learned models on Brier score and calibration without
changing a single point, so the comparison is fair to the policy as written.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Self

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.impute import SimpleImputer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from features.catalogue import FeatureInfo
from models.inputs import (
    binary_target,
    check_sample_weight,
    feature_matrix,
    resolve_feature_names,
)


@dataclass(frozen=True)
class PointRule:
    """How one scorecard indicator turns a feature value into risk points.

    Points measure risk: more points, riskier (a "deduct from 100" card is the same card
    with the deductions as points). A rule is exactly one of:

    - linear: `per_unit` points per unit of `feature`, then clipped to `[-cap, cap]` when
      `cap` is set (e.g. 5 points per penalty, at most 20);
    - banded: `bands` is a tuple of `(threshold, points)` with strictly increasing
      thresholds; a value earns the points of the highest threshold it reaches (value >=
      threshold), and 0 below the first (e.g. `((1, 10),)` — on the abnormal list: 10).

    A missing value (NaN) earns `missing_points`. All numbers come from the policy file.
    """

    feature: str
    per_unit: float | None = None
    cap: float | None = None
    bands: Sequence[tuple[float, float]] = ()
    missing_points: float = 0.0

    def __post_init__(self) -> None:
        # Policy files give lists; keep the rule hashable and immutable.
        object.__setattr__(self, "bands", tuple((float(t), float(p)) for t, p in self.bands))
        where = f"point rule for {self.feature!r}"
        if (self.per_unit is None) == (not self.bands):
            raise ValueError(
                f"{where}: give exactly one of per_unit or bands / 计分规则须且仅须指定"
                "每单位分值或分段分值之一"
            )
        if self.cap is not None and (self.per_unit is None or self.cap < 0):
            raise ValueError(f"{where}: cap needs per_unit and must be >= 0 / 封顶分值无效")
        thresholds = [t for t, _ in self.bands]
        if any(not math.isfinite(t) for t in thresholds) or any(
            b <= a for a, b in itertools.pairwise(thresholds)
        ):
            raise ValueError(
                f"{where}: band thresholds must be finite and strictly increasing / "
                "分段阈值必须严格递增"
            )

    def points(self, values: np.ndarray) -> np.ndarray:
        """Points for each value (vectorised)."""
        values = np.asarray(values, dtype=np.float64)
        if self.per_unit is not None:
            earned = self.per_unit * values
            if self.cap is not None:
                earned = np.clip(earned, -self.cap, self.cap)
        else:
            thresholds = np.array([t for t, _ in self.bands])
            band_points = np.array([0.0] + [p for _, p in self.bands])
            earned = band_points[np.searchsorted(thresholds, values, side="right")]
        return np.where(np.isnan(values), self.missing_points, earned)


class PointScorecard(BaseEstimator):
    """A transparent points scorecard: `score(X)` is the sum of every rule's points.

    `points` maps an indicator name (the column name in `explain_points`) to its rule.
    `fit` learns only an isotonic points → probability map, so `predict_proba` and Brier
    scores are comparable with the learned models. `score` returns points, not sklearn's
    accuracy — this estimator deliberately is not a ClassifierMixin; use sklearn.metrics.
    """

    def __init__(self, points: Mapping[str, PointRule]) -> None:
        self.points = points

    def _checked_rules(self) -> dict[str, PointRule]:
        rules = dict(self.points)
        if not rules:
            raise ValueError("scorecard has no rules / 评分卡没有计分规则")
        wrong = [name for name, rule in rules.items() if not isinstance(rule, PointRule)]
        if wrong:
            raise TypeError(f"scorecard entries must be PointRule: {wrong}")
        return rules

    def explain_points(self, X: pd.DataFrame) -> pd.DataFrame:
        """Points per indicator (columns in rule order), indexed like `X`: the card's reasons."""
        rules = self._checked_rules()
        features = list(dict.fromkeys(rule.feature for rule in rules.values()))
        matrix = feature_matrix(X, features)
        position = {name: i for i, name in enumerate(features)}
        earned = np.column_stack(
            [rule.points(matrix[:, position[rule.feature]]) for rule in rules.values()]
        )
        return pd.DataFrame(earned, index=X.index, columns=list(rules), copy=False)

    def score(self, X: pd.DataFrame) -> pd.Series:
        """Total points per entity, indexed like `X`."""
        return self.explain_points(X).sum(axis=1).rename("points")

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        """Total points as an array (the raw score, for a uniform interface)."""
        return self.score(X).to_numpy(dtype=np.float64)

    def fit(
        self,
        X: pd.DataFrame,
        y: pd.Series | np.ndarray,
        sample_weight: pd.Series | np.ndarray | None = None,
    ) -> Self:
        """Fit the isotonic points → probability map; the points themselves never change."""
        rules = self._checked_rules()
        total = self.decision_function(X)
        labels = binary_target(y, len(total))
        weights = check_sample_weight(sample_weight, len(total))
        mapping = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
        mapping.fit(total, labels, sample_weight=weights)
        self.calibrator_ = mapping
        self.feature_names_ = list(dict.fromkeys(rule.feature for rule in rules.values()))
        self.n_features_in_ = len(self.feature_names_)
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Shape (n, 2) from the fitted points → probability map."""
        check_is_fitted(self, "calibrator_")
        positive = np.asarray(self.calibrator_.predict(self.decision_function(X)))
        return np.column_stack([1.0 - positive, positive])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """0/1 at probability 0.5 (sklearn tooling only)."""
        return (self.predict_proba(X)[:, 1] > 0.5).astype(np.int64)


class LogisticBaseline(ClassifierMixin, BaseEstimator):
    """Median-imputed, missing-flagged, standardised logistic regression on the model inputs.

    The missing-value indicators matter: in supervision data "no record" is itself
    informative (e.g. no annual report filed), and imputing the median alone would hide it.
    """

    def __init__(
        self,
        catalogue: Mapping[str, FeatureInfo] | None = None,
        features: Sequence[str] | None = None,
        *,
        C: float = 1.0,
        max_iter: int = 1000,
    ) -> None:
        self.catalogue = catalogue
        self.features = features
        self.C = C
        self.max_iter = max_iter

    def fit(
        self,
        X: pd.DataFrame,
        y: pd.Series | np.ndarray,
        sample_weight: pd.Series | np.ndarray | None = None,
    ) -> Self:
        """Fit imputer, scaler and logistic regression on the model inputs of `X`."""
        names = resolve_feature_names(X, self.catalogue, self.features)
        matrix = feature_matrix(X, names)
        labels = binary_target(y, len(matrix))
        weights = check_sample_weight(sample_weight, len(matrix))
        pipeline = Pipeline(
            [
                (
                    "impute",
                    SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                ),
                ("scale", StandardScaler()),
                ("logistic", LogisticRegression(C=self.C, max_iter=self.max_iter)),
            ]
        )
        pipeline.fit(matrix, labels, logistic__sample_weight=weights)
        self.pipeline_ = pipeline
        self.feature_names_ = names
        self.n_features_in_ = len(names)
        self.classes_ = np.array([0, 1])
        return self

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        """Log-odds of the positive class."""
        check_is_fitted(self, "pipeline_")
        return np.asarray(
            self.pipeline_.decision_function(feature_matrix(X, self.feature_names_)),
            dtype=np.float64,
        )

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Shape (n, 2)."""
        check_is_fitted(self, "pipeline_")
        return np.asarray(self.pipeline_.predict_proba(feature_matrix(X, self.feature_names_)))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """0/1 at probability 0.5 (sklearn tooling only)."""
        return (self.decision_function(X) > 0.0).astype(np.int64)

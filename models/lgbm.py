"""LightGBM risk classifier with the catalogue's monotone constraints built in.

Monotone constraints are what make the model defensible to a regulator: more penalties can
never make an enterprise look safer. The directions come from the feature catalogue, so the
constraint and the documented meaning of a feature cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Self

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from features.catalogue import FeatureInfo, monotone_constraints
from models.inputs import (
    binary_target,
    check_sample_weight,
    feature_matrix,
    resolve_feature_names,
)


class RiskClassifier(ClassifierMixin, BaseEstimator):
    """Gradient-boosted trees for a binary "problem found / violation" target.

    Defaults suit a tabular problem with a few percent to 25 % positives on 10^4–10^6 rows:
    shallow trees, a slow learning rate, bagging on rows and columns and a minimum leaf size
    large enough that a leaf is never a handful of enterprises. Training is deterministic
    (fixed seed, `deterministic=True`, row-wise histograms) so a retrain on the same data gives
    the same model bit for bit.

    Features: `features` if given, else the catalogue's model inputs, else every column of the
    training frame. Each feature's monotone direction is taken from `catalogue`
    (`use_monotone_constraints=False` switches them off for diagnostics only).
    `extra_params` are passed to LightGBM verbatim and win over the named ones.
    """

    def __init__(
        self,
        catalogue: Mapping[str, FeatureInfo] | None = None,
        features: Sequence[str] | None = None,
        *,
        n_estimators: int = 300,
        learning_rate: float = 0.05,
        num_leaves: int = 31,
        max_depth: int = 6,
        min_child_samples: int = 50,
        subsample: float = 0.8,
        colsample_bytree: float = 0.8,
        reg_lambda: float = 1.0,
        use_monotone_constraints: bool = True,
        early_stopping_rounds: int | None = None,
        random_state: int = 42,
        n_jobs: int = 2,
        extra_params: Mapping[str, Any] | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.features = features
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.max_depth = max_depth
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.use_monotone_constraints = use_monotone_constraints
        self.early_stopping_rounds = early_stopping_rounds
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.extra_params = extra_params

    def lightgbm_params(self, monotone: Sequence[int]) -> dict[str, Any]:
        """The LightGBM parameter dict this estimator trains with (logged by training)."""
        params: dict[str, Any] = {
            "objective": "binary",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "max_depth": self.max_depth,
            "min_data_in_leaf": self.min_child_samples,
            "bagging_fraction": self.subsample,
            "bagging_freq": 1 if self.subsample < 1.0 else 0,
            "feature_fraction": self.colsample_bytree,
            "lambda_l2": self.reg_lambda,
            "seed": self.random_state,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": self.n_jobs,
            "verbosity": -1,
        }
        if any(monotone):
            params["monotone_constraints"] = list(monotone)
        params.update(self.extra_params or {})
        return params

    def fit(
        self,
        X: pd.DataFrame,
        y: pd.Series | np.ndarray,
        sample_weight: pd.Series | np.ndarray | None = None,
        *,
        eval_set: tuple[pd.DataFrame, pd.Series | np.ndarray] | None = None,
        eval_sample_weight: pd.Series | np.ndarray | None = None,
    ) -> Self:
        """Train on `X`, `y`; with `early_stopping_rounds`, stop on `eval_set`.

        The validation set should be a later time slice than the training rows (the caller
        chooses it): a random split would leak the future into model selection.
        After early stopping the booster is cut to its best iteration, so `booster_`, SHAP and
        any serialised copy all describe the same model.
        """
        names = resolve_feature_names(X, self.catalogue, self.features)
        matrix = feature_matrix(X, names)
        labels = binary_target(y, len(matrix))
        weights = check_sample_weight(sample_weight, len(matrix))
        monotone = (
            monotone_constraints(dict(self.catalogue), names)
            if self.catalogue is not None and self.use_monotone_constraints
            else [0] * len(names)
        )
        params = self.lightgbm_params(monotone)
        train_set = lgb.Dataset(
            matrix, label=labels, weight=weights, feature_name=names, free_raw_data=True
        )

        valid_sets: list[lgb.Dataset] = []
        callbacks: list[Any] = []
        evals_result: dict[str, Any] = {}
        if eval_set is not None:
            X_val, y_val = eval_set
            val_matrix = feature_matrix(X_val, names)
            valid_sets.append(
                lgb.Dataset(
                    val_matrix,
                    label=binary_target(y_val, len(val_matrix)),
                    weight=check_sample_weight(eval_sample_weight, len(val_matrix)),
                    reference=train_set,
                )
            )
            callbacks.append(lgb.record_evaluation(evals_result))
        if self.early_stopping_rounds is not None:
            if eval_set is None:
                raise ValueError(
                    "early_stopping_rounds needs an eval_set (a later time slice) / "
                    "提前停止需要提供验证集"
                )
            stopper = lgb.early_stopping(
                self.early_stopping_rounds, first_metric_only=True, verbose=False
            )
            callbacks.append(stopper)

        booster = lgb.train(
            params,
            train_set,
            num_boost_round=self.n_estimators,
            valid_sets=valid_sets or None,
            valid_names=["validation"] if valid_sets else None,
            callbacks=callbacks or None,
        )
        best = booster.best_iteration if self.early_stopping_rounds is not None else 0
        if best > 0 and best < booster.current_iteration():
            booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))

        self.booster_ = booster
        self.feature_names_ = names
        self.n_features_in_ = len(names)
        self.monotone_constraints_ = list(monotone)
        self.classes_ = np.array([0, 1])
        self.best_iteration_ = booster.current_iteration()
        self.evals_result_ = evals_result
        return self

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        """Raw margin (log-odds of the positive class); what SHAP contributions add up to."""
        check_is_fitted(self, "booster_")
        raw = self.booster_.predict(feature_matrix(X, self.feature_names_), raw_score=True)
        return np.asarray(raw, dtype=np.float64)

    def proba_from_raw(self, raw: np.ndarray) -> np.ndarray:
        """Positive-class probability from raw margins (lets callers reuse a computed score)."""
        return np.asarray(expit(raw), dtype=np.float64)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Shape (n, 2): P(class 0), P(class 1). Uncalibrated; wrap in CalibratedRiskModel."""
        positive = self.proba_from_raw(self.decision_function(X))
        return np.column_stack([1.0 - positive, positive])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """0/1 at probability 0.5 (for sklearn tooling; the product uses classes, not this)."""
        return (self.decision_function(X) > 0.0).astype(np.int64)

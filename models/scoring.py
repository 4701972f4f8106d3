"""Score a population: probability, class with overrides, SHAP contributions and reasons.

One function serves training's final run, the nightly batch and on-demand scoring, so a
decision is computed the same way wherever it is made (and can be replayed bit for bit).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features.catalogue import FeatureInfo
from models.classes import HardRule, assign_classes
from models.explain import shap_contributions, top_reasons
from models.inputs import feature_matrix


@dataclass(frozen=True)
class ClassRules:
    """What turns a probability into a class: cut-offs, hysteresis margin, hard rules."""

    cutoffs: tuple[float, ...]
    labels: tuple[str, ...]
    margin: float = 0.0
    hard_rules: tuple[HardRule, ...] = ()


@dataclass(frozen=True)
class ScoredPopulation:
    """`scores`: one row per entity; `reasons`: top-k long format; `contributions`: SHAP."""

    scores: pd.DataFrame
    reasons: pd.DataFrame
    contributions: pd.DataFrame


def row_digests(matrix: np.ndarray) -> list[str]:
    """sha256 hex digest of each row's bytes (one pass over one buffer: no per-row arrays)."""
    data = np.ascontiguousarray(matrix).tobytes()
    width = matrix.itemsize * matrix.shape[1]
    view, sha256 = memoryview(data), hashlib.sha256
    return [sha256(view[start:start + width]).hexdigest()
            for start in range(0, len(data), width)]


def matrix_hashes(matrix: np.ndarray) -> list[str]:
    """sha256 of each row of a float64 model-input matrix, NaN made canonical first."""
    return row_digests(np.where(np.isnan(matrix), np.nan, matrix))  # one NaN bit pattern


def feature_hashes(X: pd.DataFrame, feature_names: Sequence[str]) -> pd.Series:
    """sha256 of each entity's model-input vector (float64 bytes, NaN-canonical).

    The audit trail stores it so a replay can prove it saw the same inputs, and the nightly
    job can skip re-explaining entities whose inputs did not change.
    """
    return pd.Series(matrix_hashes(feature_matrix(X, feature_names)), index=X.index,
                     name="input_hash")


def _joined(reasons: pd.DataFrame, column: str, index: pd.Index) -> pd.Series:
    texts = reasons.groupby("entity", sort=False, observed=True)[column].agg("；".join)
    return texts.reindex(index).fillna("")


def score_population(
    model: Any,
    X: pd.DataFrame,
    catalogue: Mapping[str, FeatureInfo],
    rules: ClassRules,
    *,
    previous: pd.Series | None = None,
    k: int = 3,
) -> ScoredPopulation:
    """Calibrated probability, class (cut-offs, hysteresis, hard rules) and SHAP reasons.

    `X` holds the model inputs plus the boolean flag columns the hard rules read; `previous`
    is last run's final class per entity (for hysteresis).
    """
    names = list(model.feature_names_)
    inputs = X[names]  # selected once: every step below reads exactly these columns
    raw = np.asarray(model.decision_function(inputs), dtype=np.float64)
    probability = pd.Series(model.proba_from_raw(raw), index=X.index, name="probability")
    flags = (
        X[[r.flag_column for r in rules.hard_rules]].astype(bool) if rules.hard_rules else None
    )
    classes = assign_classes(
        probability, list(rules.cutoffs), margin=rules.margin, previous=previous,
        hard_rules=list(rules.hard_rules), flags=flags, labels=rules.labels,
    )
    contributions = shap_contributions(model, inputs)
    reasons = top_reasons(contributions, inputs, catalogue, k=k)
    scores = pd.DataFrame(
        {
            "raw_score": raw,
            "probability": probability,
            "score_class": classes["score_class"],
            "class": classes["class"],
            "overrides": classes["overrides"].map(",".join),
            "class_reason_zh": classes["reason_zh"],
            "class_reason_en": classes["reason_en"],
            "top_reasons_zh": _joined(reasons, "text_zh", X.index),
            "top_reasons_en": _joined(reasons, "text_en", X.index),
            "input_hash": feature_hashes(inputs, names),
        },
        index=X.index,
    )
    return ScoredPopulation(scores, reasons, contributions)

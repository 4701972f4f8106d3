"""Drift and stability monitoring of a scored population: PSI, class transitions, fairness.

Pure functions over frames. A *profile* summarises a distribution so it can be stored (JSON)
and compared later without keeping the data: interior quantile edges (deciles by default)
and the share of values in each bin, plus the share missing. The population stability index
of a new population against a profile is

    PSI = Σ_bins (actual − expected) · ln(actual / expected)

over the profile's bins (the missing bin included), the usual credit-scoring measure: small
means stable. Where the thresholds sit (conventionally 0.1 to flag, 0.25 to alert) is a
monitoring policy the caller passes in.

The reference profile is computed from the training features when the model is trained (see
`training_reference`) and logged with the model as `REFERENCE_ARTIFACT`; the nightly job
compares every run against it (or, for a model logged without one, against the previous run).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

REFERENCE_ARTIFACT = "monitoring/reference.json"
SCORE_VARIABLE = "score"
# Numerical guard only: an empty bin would make ln(actual / expected) infinite. A share of
# 1e-4 contributes at most ~0.001 per bin for the population sizes monitored here.
PROPORTION_FLOOR = 1e-4
NEW_ROW = "new"
EXITED_COLUMN = "exited"

STATUS_TEXT = {
    "ok": ("稳定", "stable"),
    "flag": ("轻微漂移, 需关注", "drift flagged, watch"),
    "alert": ("显著漂移, 需处理", "significant drift, act"),
    "no_reference": ("无参照分布", "no reference"),
}


@dataclass(frozen=True)
class DriftThresholds:
    """PSI above `flag` is flagged, above `alert` is an alert; `bins` per profile."""

    flag: float
    alert: float
    bins: int

    def __post_init__(self) -> None:
        if not 0 < self.flag < self.alert:
            raise ValueError(f"PSI thresholds need 0 < flag < alert, got {self.flag}, "
                             f"{self.alert} / PSI 阈值须满足 0 < 关注 < 警报")
        if self.bins < 2:
            raise ValueError(f"bins must be at least 2, got {self.bins} / 分箱数至少为 2")


def _values(values: pd.Series | np.ndarray | Sequence[float]) -> np.ndarray:
    if isinstance(values, pd.Series):
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    return np.asarray(values, dtype=np.float64)


def bin_shares(values: pd.Series | np.ndarray | Sequence[float],
               edges: Sequence[float]) -> np.ndarray:
    """Shares of values in (-inf, e1], (e1, e2], …, (ek, inf) and, last, missing (NaN)."""
    data = _values(values)
    if data.size == 0:
        raise ValueError("cannot profile an empty population / 总体为空, 无法计算分布")
    missing = np.isnan(data)
    positions = np.searchsorted(np.asarray(edges, dtype=np.float64), data[~missing], side="left")
    counts = np.bincount(positions, minlength=len(edges) + 1).astype(np.float64)
    return np.append(counts, missing.sum()) / data.size


def distribution_profile(values: pd.Series | np.ndarray | Sequence[float],
                         bins: int) -> dict[str, Any]:
    """Quantile edges (distinct interior ones) and the bin shares of `values`, JSON-ready."""
    data = _values(values)
    present = data[~np.isnan(data)]
    if present.size:
        quantiles = np.quantile(present, np.linspace(0.0, 1.0, bins + 1)[1:-1])
        edges = [float(e) for e in np.unique(quantiles)]
    else:
        edges = []
    shares = bin_shares(data, edges)
    return {"edges": edges, "shares": [float(s) for s in shares], "n": int(data.size)}


def psi(expected: Sequence[float] | np.ndarray, actual: Sequence[float] | np.ndarray,
        floor: float = PROPORTION_FLOOR) -> float:
    """Population stability index of `actual` shares against `expected` shares."""
    e = np.maximum(np.asarray(expected, dtype=np.float64), floor)
    a = np.maximum(np.asarray(actual, dtype=np.float64), floor)
    if e.shape != a.shape:
        raise ValueError(f"share vectors differ in length: {e.shape} vs {a.shape}")
    return float(np.sum((a - e) * np.log(a / e)))


def psi_against(profile: Mapping[str, Any],
                values: pd.Series | np.ndarray | Sequence[float]) -> float:
    """PSI of `values` binned on the profile's own edges."""
    return psi(profile["shares"], bin_shares(values, profile["edges"]))


def drift_status(value: float, thresholds: DriftThresholds) -> str:
    if not math.isfinite(value):
        return "no_reference"
    if value > thresholds.alert:
        return "alert"
    if value > thresholds.flag:
        return "flag"
    return "ok"


def population_profile(features: pd.DataFrame, columns: Sequence[str],
                       score: pd.Series | np.ndarray | None, bins: int) -> dict[str, Any]:
    """Profiles of every column and of the score: what a later run is compared against."""
    profile: dict[str, Any] = {
        "bins": bins,
        "n": len(features),
        "features": {c: distribution_profile(features[c], bins) for c in columns},
    }
    if score is not None:
        profile[SCORE_VARIABLE] = distribution_profile(score, bins)
    return profile


def training_reference(features: pd.DataFrame, columns: Sequence[str],
                       probability: pd.Series | np.ndarray, bins: int) -> dict[str, Any]:
    """The reference to log with a trained model (as `REFERENCE_ARTIFACT`, see
    `reference_json`): its model inputs and calibrated probability on the training rows."""
    return population_profile(features, columns, probability, bins)


def reference_json(reference: Mapping[str, Any]) -> str:
    return json.dumps(reference, ensure_ascii=False, sort_keys=True)


def population_stability(reference: Mapping[str, Any], features: pd.DataFrame,
                         score: pd.Series | np.ndarray | None,
                         thresholds: DriftThresholds) -> pd.DataFrame:
    """PSI per feature and for the score against `reference`, with status and bilingual text.

    Variables present now but absent from the reference get status ``no_reference``.
    Columns: variable, kind (feature/score), psi, status, status_zh, status_en.
    """
    rows: list[dict[str, Any]] = []
    known = reference.get("features", {})
    for column in features.columns:
        value = psi_against(known[column], features[column]) if column in known else math.nan
        rows.append({"variable": str(column), "kind": "feature", "psi": value})
    if score is not None:
        profile = reference.get(SCORE_VARIABLE)
        value = psi_against(profile, score) if profile is not None else math.nan
        rows.append({"variable": SCORE_VARIABLE, "kind": "score", "psi": value})
    table = pd.DataFrame(rows, columns=["variable", "kind", "psi"])
    table["status"] = [drift_status(v, thresholds) for v in table["psi"]]
    table["status_zh"] = [STATUS_TEXT[s][0] for s in table["status"]]
    table["status_en"] = [STATUS_TEXT[s][1] for s in table["status"]]
    return table


def transition_matrix(previous: pd.Series | None, current: pd.Series,
                      labels: Sequence[str]) -> pd.DataFrame:
    """Counts of entities by previous class (rows, plus `new`) and current class (columns,
    plus `exited` for entities scored before but not now)."""
    rows = [*labels, NEW_ROW]
    columns = [*labels, EXITED_COLUMN]
    before = previous if previous is not None else pd.Series(dtype=object)
    joined = pd.DataFrame({"previous": before.astype(object), "current": current.astype(object)})
    joined["previous"] = joined["previous"].where(joined["previous"].notna(), NEW_ROW)
    joined["current"] = joined["current"].where(joined["current"].notna(), EXITED_COLUMN)
    counts = pd.crosstab(joined["previous"], joined["current"])
    return counts.reindex(index=rows, columns=columns, fill_value=0).astype(np.int64)


def class_changes(matrix: pd.DataFrame) -> dict[str, int]:
    """Entities that kept, moved up (riskier), moved down, entered or left, from a matrix
    whose class labels run from least to most risky."""
    labels = [c for c in matrix.columns if c != EXITED_COLUMN]
    counts = matrix.loc[labels, labels].to_numpy(dtype=np.int64)
    positions = np.arange(len(labels))
    after, before = np.meshgrid(positions, positions)
    return {"unchanged": int(counts[after == before].sum()),
            "riskier": int(counts[after > before].sum()),
            "safer": int(counts[after < before].sum()),
            "new": int(matrix.loc[NEW_ROW, labels].to_numpy(dtype=np.int64).sum()),
            "exited": int(matrix.loc[labels, EXITED_COLUMN].to_numpy(dtype=np.int64).sum())}


def frame_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready records of a report frame (NaN → None)."""
    clean = frame.astype(object).where(frame.notna(), None)
    return [{str(k): (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
            for row in clean.to_dict(orient="records")]

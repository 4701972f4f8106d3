"""Evaluation metrics for risk scores: discrimination, calibration and yield at inspection capacity.

Two label populations, never mixed up:

* **Unweighted** metrics use every labelled row (``y`` not NaN). Labels come from past
  inspections, which were partly targeted at risky firms, so these numbers are biased toward
  what earlier targeting already looked at.
* **Weighted** metrics (suffix ``_weighted``) use only rows whose label comes from a random
  draw, i.e. rows with a finite ``ipw_weight`` = 1/π (π = the row's known inclusion
  probability in the draw). Weighting each such row by 1/π makes it stand for the 1/π firms it
  represents (Horvitz–Thompson), so the estimates refer to the whole population, not to the
  firms past policy chose to inspect. A finite weight on an unlabelled row is an error.

Capacity metrics rank the *whole* scored population (labelled or not), inspect the top
``k = round_half_up(capacity · n)`` rows (at least one), then read labels where they exist.
When the simulator's ground truth (``true_violation``) is known for every row, the yield
per inspection and the share of the oracle's yield are exact, not estimates.
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss, roc_auc_score

ArrayLike = Sequence[float] | np.ndarray | pd.Series
KeyLike = Sequence[Any] | np.ndarray | pd.Series
BinStrategy = Literal["quantile", "uniform"]

CAPACITY_COLUMNS: tuple[str, ...] = (
    "capacity",
    "n_inspected",
    "n_labelled_inspected",
    "hits",
    "hit_rate",
    "recall",
    "n_weighted_inspected",
    "hit_rate_weighted",
    "recall_weighted",
    "true_found",
    "true_per_inspection",
    "true_recall",
    "pct_of_oracle",
)


# --------------------------------------------------------------------------- input checks


def _to_float(values: Any, name: str) -> np.ndarray:
    """A 1-D float array; pandas NA and None become NaN so masks work uniformly."""
    if isinstance(values, pd.Series | pd.Index):
        array = values.to_numpy(dtype=float, na_value=np.nan)
    else:
        try:
            array = np.asarray(values, dtype=float)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{name}: values must be numeric ({error})") from error
    if array.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {array.shape}")
    return array


def _same_length(**arrays: np.ndarray | None) -> int:
    lengths = {name: len(a) for name, a in arrays.items() if a is not None}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"arrays differ in length: {lengths}")
    return next(iter(lengths.values()), 0)


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _check_binary(y: np.ndarray, name: str) -> None:
    """Finite label values must be 0 or 1 (NaN = unlabelled is checked by the caller)."""
    bad = np.isfinite(y) & (y != 0) & (y != 1)
    if bad.any():
        i = _first_bad(bad)
        raise ValueError(f"{name}: labels must be 0/1; position {i} holds {y[i]!r}")


def _check_labels_complete(y: np.ndarray, name: str) -> None:
    if np.isnan(y).any():
        i = _first_bad(np.isnan(y))
        raise ValueError(
            f"{name}: position {i} is unlabelled (NaN); select labelled rows first "
            "(evaluate_scores does this for you)"
        )
    _check_binary(y, name)


def _check_probabilities(p: np.ndarray, name: str) -> None:
    bad = ~np.isfinite(p) | (p < 0) | (p > 1)
    if bad.any():
        i = _first_bad(bad)
        raise ValueError(f"{name}: probabilities must lie in [0, 1]; position {i} holds {p[i]!r}")


def _check_weights(w: np.ndarray, name: str) -> None:
    bad = ~np.isfinite(w) | (w < 0)
    if bad.any():
        i = _first_bad(bad)
        raise ValueError(f"{name}: weights must be finite and >= 0; position {i} holds {w[i]!r}")


def _weights_or_ones(sample_weight: Any, n: int) -> np.ndarray:
    if sample_weight is None:
        return np.ones(n)
    w = _to_float(sample_weight, "sample_weight")
    if len(w) != n:
        raise ValueError(f"sample_weight has length {len(w)}, expected {n}")
    _check_weights(w, "sample_weight")
    return w


def _ipw_mask(y: np.ndarray, ipw_weight: np.ndarray | None) -> np.ndarray:
    """Rows usable for weighted metrics: finite weight, and then a label is required."""
    if ipw_weight is None:
        return np.zeros(len(y), dtype=bool)
    has_weight = np.isfinite(ipw_weight)
    unlabelled = has_weight & np.isnan(y)
    if unlabelled.any():
        i = _first_bad(unlabelled)
        raise ValueError(
            f"ipw_weight: position {i} has a weight ({ipw_weight[i]!r}) but no label; "
            "weights belong only to rows labelled by a random draw"
        )
    negative = has_weight & (ipw_weight <= 0)
    if negative.any():
        i = _first_bad(negative)
        raise ValueError(f"ipw_weight: weights are 1/π and must be > 0; position {i} holds "
                         f"{ipw_weight[i]!r}")
    return has_weight


# --------------------------------------------------------------------------- calibration


def _weighted_quantile_edges(p: np.ndarray, w: np.ndarray, bins: int) -> np.ndarray:
    """Interior bin edges so each bin holds about 1/bins of the total weight.

    A row whose cumulative weight share is <= q stays in the lower bin; that puts exactly
    one row per bin when n == bins and weights are equal.
    """
    order = np.argsort(p, kind="stable")
    p_sorted, w_sorted = p[order], w[order]
    total = w_sorted.sum()
    if total <= 0:
        return np.array([])
    share = np.cumsum(w_sorted) / total
    targets = np.arange(1, bins) / bins
    positions = np.minimum(np.searchsorted(share, targets, side="right"), len(p) - 1)
    return np.unique(p_sorted[positions])


def _bin_index(p: np.ndarray, w: np.ndarray, bins: int, strategy: BinStrategy) -> np.ndarray:
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    if strategy == "uniform":
        edges = np.arange(1, bins) / bins
    elif strategy == "quantile":
        edges = _weighted_quantile_edges(p, w, bins)
    else:
        raise ValueError(f"strategy must be 'quantile' or 'uniform', got {strategy!r}")
    return np.searchsorted(edges, p, side="right")


def reliability_table(
    y: ArrayLike,
    p: ArrayLike,
    bins: int = 10,
    sample_weight: ArrayLike | None = None,
    *,
    strategy: BinStrategy = "quantile",
) -> pd.DataFrame:
    """Predicted vs observed rate per probability bin (empty bins are left out).

    Columns: bin, p_mean (weighted mean prediction), observed_rate (weighted share of
    positives), count (rows), weight (sum of weights). Quantile bins are cut on the
    weighted distribution of ``p`` so each bin carries a similar share of the population.
    """
    y_arr, p_arr = _to_float(y, "y"), _to_float(p, "p")
    _same_length(y=y_arr, p=p_arr)
    _check_labels_complete(y_arr, "y")
    _check_probabilities(p_arr, "p")
    w = _weights_or_ones(sample_weight, len(y_arr))
    index = _bin_index(p_arr, w, bins, strategy)
    rows = []
    for b in np.unique(index):
        in_bin = index == b
        weight = float(w[in_bin].sum())
        p_mean = float(np.sum(w[in_bin] * p_arr[in_bin]) / weight) if weight > 0 else np.nan
        observed = float(np.sum(w[in_bin] * y_arr[in_bin]) / weight) if weight > 0 else np.nan
        rows.append((int(b), p_mean, observed, int(in_bin.sum()), weight))
    return pd.DataFrame(rows, columns=["bin", "p_mean", "observed_rate", "count", "weight"])


def expected_calibration_error(
    y: ArrayLike,
    p: ArrayLike,
    *,
    bins: int = 10,
    sample_weight: ArrayLike | None = None,
    strategy: BinStrategy = "quantile",
) -> float:
    """Weight-averaged |observed rate − mean prediction| over bins; NaN with no weight.

    Why it matters here: the class cut-offs are probabilities, so a miscalibrated model
    moves firms between classes even when its ranking is good.
    """
    table = reliability_table(y, p, bins, sample_weight, strategy=strategy)
    table = table[table["weight"] > 0]
    total = table["weight"].sum()
    if total <= 0:
        return float("nan")
    gaps = (table["observed_rate"] - table["p_mean"]).abs()
    return float((table["weight"] * gaps).sum() / total)


# --------------------------------------------------------------------------- AUC and Brier


def roc_auc(y: ArrayLike, scores: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
    """ROC AUC (sklearn); NaN instead of an exception when only one class carries weight."""
    y_arr, s = _to_float(y, "y"), _to_float(scores, "scores")
    _same_length(y=y_arr, scores=s)
    _check_labels_complete(y_arr, "y")
    w = _weights_or_ones(sample_weight, len(y_arr))
    if not np.isfinite(s).all():
        raise ValueError(f"scores: position {_first_bad(~np.isfinite(s))} is not finite")
    if w[y_arr == 1].sum() <= 0 or w[y_arr == 0].sum() <= 0:
        return float("nan")
    weights = None if sample_weight is None else w
    return float(roc_auc_score(y_arr, s, sample_weight=weights))


def brier(y: ArrayLike, p: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
    """Brier score (sklearn); NaN when there is nothing to score. One class is fine."""
    y_arr, p_arr = _to_float(y, "y"), _to_float(p, "p")
    _same_length(y=y_arr, p=p_arr)
    _check_labels_complete(y_arr, "y")
    _check_probabilities(p_arr, "p")
    w = _weights_or_ones(sample_weight, len(y_arr))
    if w.sum() <= 0:
        return float("nan")
    weights = None if sample_weight is None else w
    return float(brier_score_loss(y_arr, p_arr, sample_weight=weights, labels=[0, 1]))


# --------------------------------------------------------------------------- capacity


def inspected_count(n: int, capacity: float) -> int:
    """Inspections affordable at ``capacity`` (a share of n): rounded half up, at least 1."""
    if not 0 < capacity <= 1:
        raise ValueError(f"capacity must be in (0, 1], got {capacity!r}")
    if n == 0:
        return 0
    return max(1, min(n, math.floor(capacity * n + 0.5)))


def inspection_order(scores: ArrayLike, tie_breaker: KeyLike | None = None) -> np.ndarray:
    """Row positions from highest to lowest score.

    Ties go to the smaller ``tie_breaker`` (e.g. a hash of the credit code, so the order
    does not depend on file order); without one, to the earlier row (stable sort).
    """
    s = _to_float(scores, "scores")
    if not np.isfinite(s).all():
        raise ValueError(f"scores: position {_first_bad(~np.isfinite(s))} is not finite")
    if tie_breaker is None:
        return np.argsort(-s, kind="stable")
    keys = np.asarray(tie_breaker)
    if len(keys) != len(s):
        raise ValueError(f"tie_breaker has length {len(keys)}, expected {len(s)}")
    return np.lexsort((np.arange(len(s)), keys, -s))


def _safe_ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator > 0 else float("nan")


def _capacity_row(
    inspected: np.ndarray,
    k: int,
    capacity: float,
    y: np.ndarray,
    ipw: np.ndarray | None,
    truth: np.ndarray | None,
) -> dict[str, float]:
    labelled = ~np.isnan(y)
    positives = labelled & (y == 1)
    hits = float(positives[inspected].sum())
    n_lab_insp = float(labelled[inspected].sum())
    row: dict[str, float] = {
        "capacity": float(capacity),
        "n_inspected": float(k),
        "n_labelled_inspected": n_lab_insp,
        "hits": hits,
        "hit_rate": _safe_ratio(hits, n_lab_insp),
        "recall": _safe_ratio(hits, float(positives.sum())),
    }
    weighted = _ipw_mask(y, ipw)
    w = np.where(weighted, ipw if ipw is not None else 0.0, 0.0)
    wy = np.where(positives, w, 0.0)
    row["n_weighted_inspected"] = float(weighted[inspected].sum())
    row["hit_rate_weighted"] = _safe_ratio(wy[inspected].sum(), w[inspected].sum())
    row["recall_weighted"] = _safe_ratio(wy[inspected].sum(), wy.sum())
    if truth is None:
        row.update(true_found=np.nan, true_per_inspection=np.nan, true_recall=np.nan,
                   pct_of_oracle=np.nan)
    else:
        found = float(truth[inspected].sum())
        total = float(truth.sum())
        row["true_found"] = found
        row["true_per_inspection"] = _safe_ratio(found, k)
        row["true_recall"] = _safe_ratio(found, total)
        row["pct_of_oracle"] = _safe_ratio(found, min(k, total))
    return row


def _prepare_capacity_inputs(
    y: ArrayLike, sample_weight: ArrayLike | None, true_violation: ArrayLike | None, n: int
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    y_arr = _to_float(y, "y")
    _check_binary(y_arr, "y")
    ipw = None if sample_weight is None else _to_float(sample_weight, "sample_weight")
    truth = None if true_violation is None else _to_float(true_violation, "true_violation")
    lengths = {"y": len(y_arr), "sample_weight": None if ipw is None else len(ipw),
               "true_violation": None if truth is None else len(truth)}
    wrong = {name: length for name, length in lengths.items() if length not in (None, n)}
    if wrong:
        raise ValueError(f"arrays differ in length: expected {n} rows, got {wrong}")
    if truth is not None:
        if not np.isfinite(truth).all():
            raise ValueError("true_violation: ground truth must be known (0/1) for every row; "
                             f"position {_first_bad(~np.isfinite(truth))} is missing")
        _check_binary(truth, "true_violation")
    return y_arr, ipw, truth


def capacity_metrics(
    scores: ArrayLike,
    y: ArrayLike,
    *,
    capacities: Sequence[float] = (0.05, 0.10, 0.20),
    sample_weight: ArrayLike | None = None,
    true_violation: ArrayLike | None = None,
    tie_breaker: KeyLike | None = None,
) -> pd.DataFrame:
    """What an inspection team with a fixed capacity would find by following the ranking.

    ``y`` may hold NaN for rows never inspected; ``sample_weight`` is the IPW weight (1/π,
    NaN for rows not labelled by a random draw). One row per capacity, columns
    ``CAPACITY_COLUMNS``: hit rate and recall unweighted (all labelled rows) and weighted
    (random-draw rows only), and, with ground truth, true violations per inspection, share
    of all true violations found, and found / what an all-knowing oracle would find with
    the same k.
    """
    s = _to_float(scores, "scores")
    y_arr, ipw, truth = _prepare_capacity_inputs(y, sample_weight, true_violation, len(s))
    order = inspection_order(s, tie_breaker)
    rows = []
    for capacity in capacities:
        k = inspected_count(len(s), capacity)
        rows.append(_capacity_row(order[:k], k, capacity, y_arr, ipw, truth))
    return pd.DataFrame(rows, columns=list(CAPACITY_COLUMNS))


def uniform_random_expectation(
    y: ArrayLike,
    capacity: float,
    *,
    sample_weight: ArrayLike | None = None,
    true_violation: ArrayLike | None = None,
) -> dict[str, float]:
    """Expected ``capacity_metrics`` row when the k inspected rows are drawn uniformly.

    Analytic, not simulated: every row is inspected with probability k/n, so counts are
    k/n of their totals, recalls are k/n, and hit rates are the population base rates
    (ratio of expectations).
    """
    y_arr, ipw, truth = _prepare_capacity_inputs(y, sample_weight, true_violation, len(y))
    n = len(y_arr)
    k = inspected_count(n, capacity)
    share = _safe_ratio(k, n)
    labelled = ~np.isnan(y_arr)
    positives = labelled & (y_arr == 1)
    weighted = _ipw_mask(y_arr, ipw)
    w = np.where(weighted, ipw if ipw is not None else 0.0, 0.0)
    wy = np.where(positives, w, 0.0)
    row: dict[str, float] = {
        "capacity": float(capacity),
        "n_inspected": float(k),
        "n_labelled_inspected": share * labelled.sum(),
        "hits": share * positives.sum(),
        "hit_rate": _safe_ratio(positives.sum(), labelled.sum()),
        "recall": share if positives.any() else float("nan"),
        "n_weighted_inspected": share * weighted.sum(),
        "hit_rate_weighted": _safe_ratio(wy.sum(), w.sum()),
        "recall_weighted": share if wy.sum() > 0 else float("nan"),
    }
    if truth is None:
        row.update(true_found=np.nan, true_per_inspection=np.nan, true_recall=np.nan,
                   pct_of_oracle=np.nan)
    else:
        total = float(truth.sum())
        row["true_found"] = share * total
        row["true_per_inspection"] = _safe_ratio(total, n)
        row["true_recall"] = share if total > 0 else float("nan")
        row["pct_of_oracle"] = _safe_ratio(share * total, min(k, total))
    return row


# --------------------------------------------------------------------------- weighted rates


def weighted_rates(
    y: ArrayLike,
    ipw_weight: ArrayLike,
    *,
    groups: ArrayLike | None = None,
) -> pd.DataFrame:
    """Population positive rate estimated from random-draw labels, overall or per group.

    Columns: group, n (rows = population size), n_labelled, positive_rate (unweighted,
    all labelled rows), n_random (rows with a finite 1/π weight), est_positives
    (Horvitz–Thompson total Σ y/π), est_population (Σ 1/π), positive_rate_ht (Σ y/π ÷ n,
    unbiased when the frame is the whole sampled population), positive_rate_weighted (Hájek
    Σ y/π ÷ Σ 1/π, the steadier ratio estimate used elsewhere) and effective_n (Kish
    (Σw)²/Σw², how many equally weighted draws the estimate is worth).
    """
    y_arr = _to_float(y, "y")
    _check_binary(y_arr, "y")
    w_all = _to_float(ipw_weight, "ipw_weight")
    _same_length(y=y_arr, ipw_weight=w_all)
    weighted = _ipw_mask(y_arr, w_all)
    if groups is None:
        keys = np.full(len(y_arr), "(all)", dtype=object)
    else:
        keys = pd.Series(groups).astype(object).where(pd.notna(pd.Series(groups)),
                                                      "(missing)").to_numpy()
        if len(keys) != len(y_arr):
            raise ValueError(f"groups has length {len(keys)}, expected {len(y_arr)}")
    rows = []
    for key in pd.unique(keys):
        member = keys == key
        labelled = member & ~np.isnan(y_arr)
        chosen = member & weighted
        w, yw = w_all[chosen], y_arr[chosen]
        rows.append({
            "group": key,
            "n": int(member.sum()),
            "n_labelled": int(labelled.sum()),
            "positive_rate": _safe_ratio(float(y_arr[labelled].sum()), float(labelled.sum())),
            "n_random": int(chosen.sum()),
            "est_positives": float(np.sum(w * yw)),
            "est_population": float(w.sum()),
            "positive_rate_ht": _safe_ratio(float(np.sum(w * yw)), float(member.sum()))
            if chosen.any() else float("nan"),
            "positive_rate_weighted": _safe_ratio(float(np.sum(w * yw)), float(w.sum())),
            "effective_n": _safe_ratio(float(w.sum()) ** 2, float(np.sum(w**2))),
        })
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- per-model summary


def capacity_key(metric: str, capacity: float) -> str:
    """Flat metric name for one capacity, valid as an MLflow key: 'hit_rate_at_10pct'."""
    return f"{metric}_at_{100 * capacity:g}pct"


def evaluate_scores(
    name: str,
    scores: ArrayLike,
    probabilities: ArrayLike | None,
    y: ArrayLike,
    ipw_weight: ArrayLike | None,
    true_violation: ArrayLike | None = None,
    *,
    capacities: Sequence[float] = (0.05, 0.10, 0.20),
    bins: int = 10,
    strategy: BinStrategy = "quantile",
    tie_breaker: KeyLike | None = None,
) -> dict[str, Any]:
    """Everything reported for one model in one fold, as plain Python values.

    ``scores`` rank (decision_function, points or probabilities); ``probabilities`` feed
    Brier and ECE (None for a model without probabilities → those are NaN). Rows are the
    whole scored population; ``y`` NaN = unlabelled; ``ipw_weight`` NaN = not from a
    random draw. Returns scalar summary keys, ``flat`` (capacity metrics as
    ``capacity_key`` names) and ``capacity``: one dict per capacity with the model's
    metrics and the uniform-random expectation under ``random_*`` keys. Unavailable
    metrics are NaN; ``backtest_records`` gives the strict-JSON form (NaN → null).
    """
    s = _to_float(scores, "scores")
    y_arr = _to_float(y, "y")
    ipw = None if ipw_weight is None else _to_float(ipw_weight, "ipw_weight")
    prob = None if probabilities is None else _to_float(probabilities, "probabilities")
    truth = None if true_violation is None else _to_float(true_violation, "true_violation")
    _same_length(scores=s, y=y_arr, ipw_weight=ipw, probabilities=prob, true_violation=truth)
    _check_binary(y_arr, "y")
    labelled = ~np.isnan(y_arr)
    weighted = _ipw_mask(y_arr, ipw)
    w = ipw[weighted] if ipw is not None else np.array([])

    summary: dict[str, Any] = {
        "model": name,
        "n": len(s),
        "n_labelled": int(labelled.sum()),
        "n_random_labelled": int(weighted.sum()),
        "positive_rate": _safe_ratio(float(y_arr[labelled].sum()), float(labelled.sum())),
        "positive_rate_weighted": _safe_ratio(float(np.sum(w * y_arr[weighted])),
                                              float(w.sum())),
        "true_violation_rate": _safe_ratio(float(truth.sum()), len(truth))
        if truth is not None else float("nan"),
        "auc": roc_auc(y_arr[labelled], s[labelled]),
        "auc_weighted": roc_auc(y_arr[weighted], s[weighted], w),
        "auc_true": roc_auc(truth, s) if truth is not None else float("nan"),
    }
    if prob is None:
        summary.update(brier=np.nan, brier_weighted=np.nan, ece=np.nan, ece_weighted=np.nan)
    else:
        summary["brier"] = brier(y_arr[labelled], prob[labelled])
        summary["brier_weighted"] = brier(y_arr[weighted], prob[weighted], w)
        summary["ece"] = expected_calibration_error(
            y_arr[labelled], prob[labelled], bins=bins, strategy=strategy
        )
        summary["ece_weighted"] = expected_calibration_error(
            y_arr[weighted], prob[weighted], bins=bins, sample_weight=w, strategy=strategy
        )
    table = capacity_metrics(s, y_arr, capacities=capacities, sample_weight=ipw,
                             true_violation=truth, tie_breaker=tie_breaker)
    per_capacity: list[dict[str, float]] = []
    flat: dict[str, float] = {}
    for record in table.to_dict(orient="records"):
        capacity = float(record["capacity"])
        random = uniform_random_expectation(y_arr, capacity, sample_weight=ipw,
                                            true_violation=truth)
        entry = {str(k): float(v) for k, v in record.items()}
        entry.update({f"random_{k}": v for k, v in random.items() if k != "capacity"})
        per_capacity.append(entry)
        for key, value in entry.items():
            if key != "capacity":
                flat[capacity_key(key, capacity)] = value
    summary["capacity"] = per_capacity
    summary["flat"] = flat
    return summary


def summary_metrics(summary: Mapping[str, Any]) -> dict[str, float]:
    """The numeric metrics of an ``evaluate_scores`` result as one flat name → value map.

    This is what the promotion gate and MLflow see, e.g. 'auc', 'ece_weighted',
    'hit_rate_weighted_at_10pct', 'true_per_inspection_at_10pct'.
    """
    flat = {k: float(v) for k, v in summary.items()
            if isinstance(v, int | float | np.number) and not isinstance(v, bool)}
    flat.update(summary.get("flat", {}))
    return flat


# --------------------------------------------------------------------------- backtest table

_TABLE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    # (key, header, kind); kind drives number formatting
    ("model", "模型 / model", "text"),
    ("fold", "折 / fold", "text"),
    ("n_labelled", "标注数 / labelled", "int"),
    ("auc", "AUC", "3f"),
    ("auc_weighted", "AUC (IPW)", "3f"),
    ("brier", "Brier", "4f"),
    ("ece", "ECE", "4f"),
    ("ece_weighted", "ECE (IPW)", "4f"),
    ("hit_rate", "命中率@{c} / hit@{c}", "pct"),
    ("hit_rate_weighted", "加权命中率@{c} / IPW hit@{c}", "pct"),
    ("random_hit_rate_weighted", "随机命中率 / random hit", "pct"),
    ("true_per_inspection", "真实违法/次@{c} / true viol. per insp.@{c}", "3f"),
    ("random_true_per_inspection", "随机/次 / random per insp.", "3f"),
    ("pct_of_oracle", "占神谕比例 / % of oracle", "pct"),
)


def _capacity_entry(row: Mapping[str, Any], capacity: float) -> Mapping[str, float]:
    for entry in row.get("capacity", []):
        if math.isclose(float(entry["capacity"]), capacity):
            return dict(entry)
    raise ValueError(f"model {row.get('model')!r}: no capacity metrics at {capacity:g} "
                     "(evaluate it with that capacity)")


def _json_value(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def backtest_records(rows: Sequence[Mapping[str, Any]], capacity: float = 0.10
                     ) -> list[dict[str, Any]]:
    """The backtest table in a JSON-serialisable form (NaN → None), one dict per row.

    Keys are the stable English metric names (not the display headers) so consumers do
    not depend on wording; the capacity the table was cut at is under 'capacity'.
    """
    records = []
    for row in rows:
        entry = _capacity_entry(row, capacity)
        record: dict[str, Any] = {"capacity": capacity}
        for key, _, _ in _TABLE_COLUMNS:
            value = entry.get(key, row.get(key))
            if value is not None or key != "fold":
                record[key] = _json_value(value)
        records.append(record)
    json.dumps(records, allow_nan=False)  # fail here rather than in a consumer
    return records


def _display_width(text: str) -> int:
    """Terminal columns a string takes: CJK characters are two wide."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int, right: bool) -> str:
    fill = " " * (width - _display_width(text))
    return fill + text if right else text + fill


def _format_cell(value: Any, kind: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if kind == "text":
        return str(value)
    if kind == "int":
        return f"{int(value):d}"
    if kind == "pct":
        return f"{100 * float(value):.1f}%"
    return f"{float(value):.{kind[0]}f}"


def format_backtest_table(rows: Sequence[Mapping[str, Any]], capacity: float = 0.10) -> str:
    """A fixed-width, bilingual text table of ``evaluate_scores`` results at one capacity.

    A row may carry a 'fold' key (e.g. the as-of date) added by the backtest loop; the fold
    column appears only when some row has one. '—' marks a metric that is not available
    (e.g. no random-draw labels, or no ground truth outside the simulator).
    """
    records = backtest_records(rows, capacity)
    cap_label = f"{100 * capacity:g}%"
    has_fold = any(r.get("fold") is not None for r in records)
    columns = [c for c in _TABLE_COLUMNS if c[0] != "fold" or has_fold]
    body = [[_format_cell(r.get(key), kind) for key, _, kind in columns] for r in records]
    right = [kind != "text" for _, _, kind in columns]
    return render_fixed_width([header.format(c=cap_label) for _, header, _ in columns],
                              body, right)


def render_fixed_width(headers: Sequence[str], body: Sequence[Sequence[str]],
                       right_aligned: Sequence[bool]) -> str:
    """Aligned text table; a '中文 / English' header is split over two lines (Chinese on top)
    so bilingual headers do not double the table's width."""
    split = [tuple(h.split(" / ", 1)) if " / " in h else (h, "") for h in headers]
    widths = [max(_display_width(x) for x in [*pair, *(line[i] for line in body)])
              for i, pair in enumerate(split)]

    def line(cells: Sequence[str]) -> str:
        padded = (_pad(c, w, r) for c, w, r in zip(cells, widths, right_aligned, strict=True))
        return "  ".join(padded).rstrip()

    header_lines = [line([pair[0] for pair in split])]
    if any(pair[1] for pair in split):
        header_lines.append(line([pair[1] for pair in split]))
    rule = "  ".join("-" * w for w in widths)
    return "\n".join([*header_lines, rule, *(line(b) for b in body)])

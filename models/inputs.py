"""Turning a feature frame into the exact matrix a fitted model was trained on.

Every estimator in `models` selects its columns by name through `feature_matrix`, so a frame
with reordered or extra columns scores the same, and a missing or non-numeric column fails
with an error that names it instead of silently shifting every feature by one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype

from features.catalogue import FeatureInfo, model_inputs


class FeatureFrameError(ValueError):
    """A feature frame does not match what the model expects."""


def resolve_feature_names(
    X: pd.DataFrame,
    catalogue: Mapping[str, FeatureInfo] | None,
    features: Sequence[str] | None,
) -> list[str]:
    """The model's input columns: explicit `features`, else the catalogue's model inputs,
    else every column of `X` (for ad-hoc frames without a catalogue)."""
    if features is not None:
        names = list(features)
    elif catalogue is not None:
        names = model_inputs(dict(catalogue))
    else:
        names = [str(c) for c in X.columns]
    if not names:
        raise FeatureFrameError("no model input features / 没有可用的模型输入特征")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise FeatureFrameError(f"duplicate feature names / 特征名重复: {duplicates}")
    return names


def feature_matrix(X: pd.DataFrame, feature_names: Sequence[str]) -> np.ndarray:
    """`X[feature_names]` as a float64 matrix (NaN kept), checked column by column.

    Float64 because LightGBM predicts in double precision: the same numbers in, the same
    scores out, bit for bit.
    """
    if not isinstance(X, pd.DataFrame):
        raise FeatureFrameError(
            f"expected a pandas DataFrame with named columns, got {type(X).__name__} / "
            "输入必须是带列名的 DataFrame"
        )
    missing = [c for c in feature_names if c not in X.columns]
    if missing:
        raise FeatureFrameError(
            f"feature frame is missing model columns / 特征表缺少模型所需列: {missing}"
        )
    if X.columns.has_duplicates:
        dup = sorted({str(c) for c in X.columns[X.columns.duplicated()]})
        raise FeatureFrameError(f"feature frame has duplicate columns / 特征表列名重复: {dup}")
    dtypes = dict(zip(X.columns, X.dtypes, strict=True))  # one lookup per column, no Series
    bad = [
        f"{c} ({dtypes[c]})"
        for c in feature_names
        if not (is_numeric_dtype(dtypes[c]) or is_bool_dtype(dtypes[c]))
    ]
    if bad:
        raise FeatureFrameError(
            f"model columns must be numeric (NaN allowed) / 模型输入列必须为数值型: {bad}"
        )
    selected = X if list(X.columns) == list(feature_names) else X[list(feature_names)]
    if all(isinstance(dtype, np.dtype) for dtype in selected.dtypes):
        return selected.to_numpy(dtype=np.float64)
    # Nullable extension dtypes (Int64, boolean, Float64) carry pd.NA, which must become NaN.
    return selected.to_numpy(dtype=np.float64, na_value=np.nan)


def binary_target(y: pd.Series | np.ndarray | Sequence[int], n_rows: int) -> np.ndarray:
    """Labels as an int array of 0/1, with both classes present."""
    values = np.asarray(y)
    if values.ndim != 1 or len(values) != n_rows:
        raise ValueError(
            f"target must be 1-D with {n_rows} rows, got shape {values.shape} / "
            "标签长度与特征行数不一致"
        )
    try:
        as_float = values.astype(np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError("target must be 0/1 / 标签必须为0或1") from err
    invalid = ~np.isin(as_float, (0.0, 1.0))
    if invalid.any():
        raise ValueError(
            f"target must be 0/1; {int(invalid.sum())} rows are not, first at position "
            f"{int(np.flatnonzero(invalid)[0])} / 标签必须为0或1"
        )
    labels = as_float.astype(np.int64)
    if labels.min() == labels.max():
        raise ValueError("target has a single class; both 0 and 1 are needed / 标签只有一个类别")
    return labels


def check_sample_weight(
    sample_weight: pd.Series | np.ndarray | Sequence[float] | None, n_rows: int
) -> np.ndarray | None:
    """Non-negative finite weights of the right length, or None."""
    if sample_weight is None:
        return None
    weights = np.asarray(sample_weight, dtype=np.float64)
    if weights.shape != (n_rows,):
        raise ValueError(
            f"sample_weight must have shape ({n_rows},), got {weights.shape} / 样本权重长度不一致"
        )
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise ValueError("sample_weight must be finite and >= 0 / 样本权重必须为非负有限数")
    return weights

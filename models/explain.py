"""SHAP contributions and bilingual reason codes for every score.

Contributions come from LightGBM's own TreeSHAP (`pred_contrib=True`): exact, additive to
the raw score, and the fastest path available — a nightly run explains the whole district.
They explain the *raw* score of the trees; calibration is a monotone map on top, so the
direction and ranking of reasons carry over to the calibrated probability.

Reasons are built with vectorised numpy (argpartition over the contribution matrix), never a
per-row Python loop, so explaining costs little more than the TreeSHAP call itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.catalogue import GROUP_LABELS, FeatureInfo
from models.inputs import feature_matrix

BIAS_COLUMN = "bias"
REASON_COLUMNS = [
    "entity",
    "rank",
    "feature",
    "value",
    "contribution",
    "raises_risk",
    "reason_code",
    "text_zh",
    "text_en",
]

# Stable three-letter codes per indicator group; part of every reason code, never renamed.
GROUP_CODES: dict[str, str] = {
    "basic": "BAS",
    "dynamic": "DYN",
    "supervision": "SUP",
    "related": "REL",
    "social": "SOC",
    "project": "PRO",
    "participant": "PAR",
}
_PROJECT_GROUPS = frozenset({"project", "participant"})
_CJK = re.compile(r"[\u4e00-\u9fff]")


def booster_of(model: Any) -> lgb.Booster:
    """The LightGBM booster inside a RiskClassifier, a CalibratedRiskModel around one, or a
    bare `lgb.Booster`."""
    if isinstance(model, lgb.Booster):
        return model
    booster = getattr(model, "booster_", None)
    if isinstance(booster, lgb.Booster):
        return booster
    base = getattr(model, "base", None)
    if base is not None:
        return booster_of(base)
    raise TypeError(
        f"{type(model).__name__} has no fitted LightGBM booster; TreeSHAP needs a fitted "
        "RiskClassifier, a CalibratedRiskModel around one, or an lgb.Booster (the points "
        "scorecard explains itself with explain_points) / 模型没有可解释的 LightGBM 树模型"
    )


def shap_contributions(model: Any, X: pd.DataFrame) -> pd.DataFrame:
    """Exact TreeSHAP contributions to the raw score: one column per feature plus `bias`.

    Each row sums to the model's raw score (log-odds) for that row; indexed like `X`.
    """
    booster = booster_of(model)
    names = list(getattr(model, "feature_names_", None) or booster.feature_name())
    if BIAS_COLUMN in names:
        raise ValueError(f"a feature may not be called {BIAS_COLUMN!r} / 特征名与偏置列冲突")
    contributions = booster.predict(feature_matrix(X, names), pred_contrib=True)
    return pd.DataFrame(
        np.asarray(contributions, dtype=np.float64),
        index=X.index,
        columns=[*names, BIAS_COLUMN],
        copy=False,
    )


def global_importance(contributions: pd.DataFrame) -> pd.Series:
    """Mean |SHAP| per feature over the rows, largest first (bias excluded)."""
    features = contributions.drop(columns=[BIAS_COLUMN], errors="ignore")
    importance = np.abs(features.to_numpy(dtype=np.float64)).mean(axis=0)
    return pd.Series(importance, index=features.columns, name="mean_abs_shap").sort_values(
        ascending=False, kind="stable"
    )


def check_catalogue_labels(catalogue: Mapping[str, FeatureInfo]) -> None:
    """Every feature needs a Chinese and an English label and a known group, or no reason
    text can be shown for it; all problems are reported at once."""
    problems: list[str] = []
    for key, info in catalogue.items():
        if key != info.name:
            problems.append(f"{key}: catalogue key differs from FeatureInfo.name {info.name!r}")
        if not _CJK.search(info.zh or ""):
            problems.append(f"{key}: Chinese label (zh) is empty or has no Chinese text")
        if not (info.en or "").strip() or _CJK.search(info.en):
            problems.append(f"{key}: English label (en) is empty or contains Chinese text")
        if info.group not in GROUP_LABELS or info.group not in GROUP_CODES:
            problems.append(f"{key}: unknown indicator group {info.group!r}")
    if problems:
        raise ValueError(
            "feature catalogue labels incomplete / 特征目录标签不完整:\n" + "\n".join(problems)
        )


def reason_code(info: FeatureInfo) -> str:
    """Stable reason code, e.g. ENT-SUP-PENALTIES_365D: domain, indicator group, feature."""
    domain = "PRJ" if info.group in _PROJECT_GROUPS else "ENT"
    feature = re.sub(r"[^0-9A-Za-z]+", "_", info.name).strip("_").upper()
    return f"{domain}-{GROUP_CODES[info.group]}-{feature}"


def _format_values(values: np.ndarray) -> list[str]:
    """Short numbers, never padded: 2 -> "2", 0.123456 -> "0.123", 12345.6 -> "12346"."""
    texts: list[str] = []
    for v in (values + 0.0).tolist():  # + 0.0: no "-0"
        whole = v == round(v) or abs(v) >= 1000
        texts.append(f"{v:.0f}" if whole else f"{v:.3g}")
    return texts


def _top_k(work: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column positions and keys of each row's `k` largest keys, largest first; ties go to
    the lower position (catalogue order). k rounds of argmax: cheaper than a partition or a
    sort when k is a handful and rows have dozens of features. Overwrites `work` (the
    chosen keys become -inf), which is the caller's scratch copy."""
    rows = np.arange(len(work))
    chosen = np.empty((len(work), k), dtype=np.int64)
    chosen_keys = np.empty((len(work), k), dtype=np.float64)
    for rank in range(k):
        best = np.argmax(work, axis=1)
        chosen[:, rank] = best
        chosen_keys[:, rank] = work[rows, best]
        work[rows, best] = -np.inf
    return chosen, chosen_keys


def _categorical(texts: list[str], codes: np.ndarray) -> pd.Categorical:
    """`texts[codes]` as a categorical, equal texts merged into one category."""
    distinct = pd.Categorical(texts)
    categories = pd.Index(distinct.categories)
    return pd.Categorical.from_codes(np.asarray(distinct.codes)[codes], categories=categories)


def _reason_texts(
    infos: list[FeatureInfo], feature_idx: np.ndarray, value: np.ndarray, raises: np.ndarray
) -> tuple[pd.Categorical, pd.Categorical]:
    """Bilingual reason texts, e.g. "近365天行政处罚次数为2次，风险上升" / "penalties in the last
    365 days: 2 times, raised the risk". Each distinct (feature, value, direction) is rendered
    once, however many entities share it: counts repeat a lot across a district."""
    distinct, value_code = np.unique(value, return_inverse=True)  # NaNs collapse into one
    shown = _format_values(np.nan_to_num(distinct))
    width = max(len(distinct), 1)
    combos, row_combo = np.unique(
        (feature_idx * width + value_code.reshape(-1)) * 2 + raises.astype(np.int64),
        return_inverse=True,
    )
    zh: list[str] = []
    en: list[str] = []
    for combo in combos.tolist():
        f, rest = divmod(combo, width * 2)
        v, up = divmod(rest, 2)
        info = infos[f]
        if np.isnan(distinct[v]):
            value_zh, value_en = "缺失", ": missing"
        else:
            unit_en = f" {info.unit_en}" if info.unit_en else ""
            value_zh, value_en = f"为{shown[v]}{info.unit_zh}", f": {shown[v]}{unit_en}"
        zh.append(info.zh + value_zh + ("，风险上升" if up else "，风险下降"))
        en.append(info.en + value_en + (", raised the risk" if up else ", lowered the risk"))
    codes = row_combo.reshape(-1)
    return _categorical(zh, codes), _categorical(en, codes)


def top_reasons(
    contributions: pd.DataFrame,
    X: pd.DataFrame,
    catalogue: Mapping[str, FeatureInfo],
    k: int = 3,
) -> pd.DataFrame:
    """The top-`k` reasons per entity, long format, ordered by entity then rank.

    Reasons are the features that raised the risk most (positive contributions), largest
    first. An entity with no risk-raising feature gets its top risk-lowering features
    instead, flagged `raises_risk=False`. Features with a zero contribution are never
    reasons. Columns: entity (the index label), rank (1..k), feature, value, contribution,
    raises_risk, reason_code, text_zh, text_en; `feature`, `reason_code` and the texts are
    categoricals (few distinct values over many rows).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if not contributions.index.equals(X.index):
        raise ValueError(
            "contributions and feature frame must have the same index (same entities, same "
            "order) / 贡献值与特征表的索引不一致"
        )
    features = [str(c) for c in contributions.columns if c != BIAS_COLUMN]
    unknown = [f for f in features if f not in catalogue]
    if unknown:
        raise ValueError(f"features missing from the catalogue / 特征目录中缺少: {unknown}")
    features = [f for f in features if catalogue[f].reason]
    if not features:
        raise ValueError("contributions have no feature columns / 贡献值表没有特征列")
    infos = [catalogue[f] for f in features]
    check_catalogue_labels({info.name: info for info in infos})

    positions = contributions.columns.get_indexer(pd.Index(features))
    all_values = contributions.to_numpy(dtype=np.float64)
    if np.array_equal(positions, np.arange(len(features))):
        matrix = all_values[:, : len(features)]  # a view: bias is last, as produced here
    else:
        matrix = all_values[:, positions]
    n_rows, n_features = matrix.shape
    k_eff = min(k, n_features)

    raises_row = np.asarray((matrix > 0).any(axis=1), dtype=bool)
    # Rank by contribution where something raised the risk, by its negation elsewhere;
    # only strictly positive keys are reasons.
    key = np.where(raises_row[:, None], matrix, -matrix)
    chosen, chosen_keys = _top_k(key, k_eff)
    keep = (chosen_keys > 0).reshape(-1)

    row = np.repeat(np.arange(n_rows), k_eff)[keep]
    rank = np.tile(np.arange(1, k_eff + 1), n_rows)[keep]
    feature_idx = chosen.reshape(-1)[keep]
    contribution = matrix[row, feature_idx]
    value = feature_matrix(X, features)[row, feature_idx]
    raises = raises_row[row]
    text_zh, text_en = _reason_texts(infos, feature_idx, value, raises)
    codes = [reason_code(info) for info in infos]
    return pd.DataFrame(
        {
            "entity": contributions.index[row],
            "rank": rank.astype(np.int64),
            "feature": pd.Categorical.from_codes(feature_idx, categories=pd.Index(features)),
            "value": value,
            "contribution": contribution,
            "raises_risk": raises,
            "reason_code": pd.Categorical.from_codes(feature_idx, categories=pd.Index(codes)),
            "text_zh": text_zh,
            "text_en": text_en,
        },
        columns=REASON_COLUMNS,
    )

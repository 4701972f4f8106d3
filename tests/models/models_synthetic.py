"""Synthetic enterprise-like data and a small catalogue for the models tests.

The true risk has a known shape: penalties, abnormal-list status and complaints raise it,
a good tax score lowers it, and firm age has a U-shaped effect that the catalogue
nevertheless declares as decreasing — so a monotone constraint visibly changes the model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit

from features.catalogue import FeatureInfo

CATALOGUE: dict[str, FeatureInfo] = {
    "penalties_365d": FeatureInfo(
        "penalties_365d",
        "supervision",
        "近365天行政处罚次数",
        "penalties in the last 365 days",
        direction=1,
        unit_zh="次",
        unit_en="times",
    ),
    "abnormal_list": FeatureInfo(
        "abnormal_list",
        "supervision",
        "是否列入经营异常名录",
        "on the abnormal-operation list",
        direction=1,
    ),
    "complaints_90d": FeatureInfo(
        "complaints_90d",
        "social",
        "近90天投诉举报次数",
        "complaints in the last 90 days",
        direction=1,
        unit_zh="次",
        unit_en="times",
    ),
    "firm_age_years": FeatureInfo(
        "firm_age_years",
        "basic",
        "成立年限",
        "years since establishment",
        direction=-1,
        unit_zh="年",
        unit_en="years",
    ),
    "tax_score": FeatureInfo(
        "tax_score",
        "dynamic",
        "纳税信用评分",
        "tax credit score",
        direction=-1,
        unit_zh="分",
    ),
    "log_capital": FeatureInfo(
        "log_capital",
        "basic",
        "注册资本（对数）",
        "registered capital (log)",
    ),
    "state_owned": FeatureInfo(
        "state_owned",
        "basic",
        "是否国有",
        "state-owned",
        model_input=False,
    ),
}
MODEL_INPUTS = [name for name, info in CATALOGUE.items() if info.model_input]


def make_frame(n_rows: int, seed: int) -> tuple[pd.DataFrame, pd.Series, np.ndarray]:
    """Features (with NaN), labels and the true probability, indexed by entity id."""
    rng = np.random.default_rng(seed)
    penalties = rng.poisson(0.4, n_rows).astype(float)
    abnormal = (rng.random(n_rows) < 0.08).astype(float)
    complaints = rng.poisson(0.8, n_rows).astype(float)
    age = rng.gamma(2.0, 3.0, n_rows)
    tax = np.clip(rng.normal(80, 10, n_rows), 0, 100)
    capital = rng.normal(5.0, 1.5, n_rows)
    state = (rng.random(n_rows) < 0.1).astype(float)
    logit = (
        -2.6
        + 0.7 * penalties
        + 1.4 * abnormal
        + 0.25 * complaints
        + 0.04 * (age - 6.0) ** 2 / 6.0
        - 0.35 * age / 6.0
        - 0.04 * (tax - 80.0)
        + 0.3 * np.sin(capital)
    )
    tax_missing = rng.random(n_rows) < 0.1
    logit = logit + 0.8 * tax_missing
    tax[tax_missing] = np.nan
    age[rng.random(n_rows) < 0.03] = np.nan
    probability = expit(logit)
    label = (rng.random(n_rows) < probability).astype(int)
    index = pd.Index([f"E{seed:02d}{i:06d}" for i in range(n_rows)], name="entity_id")
    frame = pd.DataFrame(
        {
            "penalties_365d": penalties,
            "abnormal_list": abnormal,
            "complaints_90d": complaints,
            "firm_age_years": age,
            "tax_score": tax,
            "log_capital": capital,
            "state_owned": state,
        },
        index=index,
    )
    return frame, pd.Series(label, index=index, name="violation"), probability

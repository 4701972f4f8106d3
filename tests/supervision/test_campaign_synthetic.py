"""Small synthetic rosters, inspector tables and the default sampling policy for the tests.

Imported by the campaign-engine tests (pytest puts this folder on sys.path); holds no tests.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from features.uscc import make_code
from supervision.campaigns import CampaignSpec
from supervision.sampling_policy import SamplingPolicy

POLICY_FILE = Path(__file__).resolve().parents[2] / "supervision/policies/default.yaml"
# Tianhe district class shares and Henan 2021 problem-discovery rates (docs/domain.md §2, §4).
CLASS_SHARES = {"A": 0.501, "B": 0.264, "C": 0.201, "D": 0.034}
CLASS_RATES = {"A": 0.0, "B": 0.396, "C": 0.565, "D": 0.85}


def policy_dict() -> dict[str, Any]:
    return dict(yaml.safe_load(POLICY_FILE.read_text(encoding="utf-8"))["sampling"])


def default_policy(**changes: Any) -> SamplingPolicy:
    data = policy_dict()
    data.update(changes)
    return SamplingPolicy.model_validate(data)


def roster(n: int = 400, seed: int = 0, shares: dict[str, float] | None = None) -> pd.DataFrame:
    """A roster indexed by uscc with class, probability, reasons and targeting attributes."""
    rng = np.random.default_rng(seed)
    shares = shares or CLASS_SHARES
    classes = rng.choice(list(shares), size=n, p=np.array(list(shares.values())) / sum(
        shares.values()))
    base = {"A": 0.02, "B": 0.1, "C": 0.3, "D": 0.7}
    return pd.DataFrame(
        {
            "uscc": [make_code("91440105", 1000 + i) for i in range(n)],
            "name": [f"海珠测试企业{i}有限公司" for i in range(n)],
            "legal_rep_name": [f"张{'三四五六'[i % 4]}{'丰明' if i % 3 else ''}" for i in range(n)],
            "class": classes,
            "probability": [min(0.99, base[c] + rng.uniform(0, 0.2)) for c in classes],
            "top_reasons": [["行政处罚 / penalty", "年报未报 / no annual report"]] * n,
            "entity_type": rng.choice(["limited_company", "individual_business"], size=n),
            "registered_capital": rng.uniform(10, 5000, size=n).round(2),
            "employees": rng.integers(1, 200, size=n),
            "industry_code": rng.choice(["I6432", "F5211", "C1391"], size=n),
            "street": rng.choice(["南华西街道", "江南中街道", "赤岗街道"], size=n),
            "registered_address": [f"广州市海珠区测试路{i}号" for i in range(n)],
            "status": "active",
            "digital_undisturbed": False,
        }
    ).set_index("uscc")


def spec(**changes: Any) -> CampaignSpec:
    data: dict[str, Any] = {
        "campaign_id": "HZ-2025-market-01",
        "department": "market",
        "title": "2025年度企业公示信息抽查",
        "check_items": ["annual_report"],
        "item_kind": "key",
        "period_start": dt.date(2025, 4, 1),
        "period_end": dt.date(2025, 6, 30),
    }
    data.update(changes)
    return CampaignSpec.model_validate(data)


def inspectors(n: int = 8, department: str = "market", start: int = 0) -> pd.DataFrame:
    surnames = "王李张刘陈杨黄赵吴周"
    return pd.DataFrame(
        {
            "inspector_id": [f"{department[:3].upper()}{start + j:03d}" for j in range(n)],
            "name": [f"{surnames[j % 10]}执法{j}" for j in range(n)],
            "department": department,
            "certificate_no": [f"4401051900{start + j:04d}" for j in range(n)],
            "fields": "annual_report;product_quality",
            "active": True,
        }
    )


def population_with_truth(n: int, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    """Roster with the domain's class shares and a true problem indicator per firm."""
    frame = roster(n, seed)
    rng = np.random.default_rng(seed + 1)
    rates = frame["class"].map(CLASS_RATES).to_numpy(dtype=float)
    truth = pd.Series(rng.random(n) < rates, index=frame.index, name="problem")
    return frame, truth

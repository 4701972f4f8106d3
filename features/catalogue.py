"""Feature catalogue: what each model feature means, in both languages, and how it may act.

Reason codes, monotone constraints, the model-input filter and the docs all read the same
entry, so a feature's label and its allowed direction are defined exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

IndicatorGroup = Literal[
    "basic",  # 企业基础属性信息 basic attributes
    "dynamic",  # 企业动态信息 dynamic changes
    "supervision",  # 监管信息 supervision records
    "related",  # 关联关系信息 related parties
    "social",  # 社会评价信息 social evaluation
    "project",  # 工程项目 construction project (project model)
    "participant",  # 参建单位 project participants (project model)
]

GROUP_LABELS: dict[str, tuple[str, str]] = {
    "basic": ("企业基础属性信息", "basic attributes"),
    "dynamic": ("企业动态信息", "dynamic changes"),
    "supervision": ("监管信息", "supervision records"),
    "related": ("关联关系信息", "related parties"),
    "social": ("社会评价信息", "social evaluation"),
    "project": ("工程项目信息", "project records"),
    "participant": ("参建单位信息", "participant records"),
}


@dataclass(frozen=True)
class FeatureInfo:
    """One model feature.

    `direction` is the monotone constraint the model must respect: +1 when more of it can
    never lower risk (e.g. penalties), -1 when more can never raise it, 0 when unconstrained.
    `model_input` is False for attributes kept only for audit (e.g. ownership type).
    `reason` is False for context the model needs but that is the same for every entity on a
    date (e.g. where the date falls in the yearly filing cycle): never a reason for one firm.
    """

    name: str
    group: IndicatorGroup
    zh: str
    en: str
    direction: Literal[-1, 0, 1] = 0
    model_input: bool = True
    unit_zh: str = ""
    unit_en: str = ""
    reason: bool = True


def model_inputs(catalogue: dict[str, FeatureInfo]) -> list[str]:
    """Names of the features a model may use, in catalogue order."""
    return [name for name, info in catalogue.items() if info.model_input]


def monotone_constraints(catalogue: dict[str, FeatureInfo], columns: list[str]) -> list[int]:
    """LightGBM monotone constraints aligned with `columns`."""
    return [int(catalogue[c].direction) if c in catalogue else 0 for c in columns]

"""Model card: the bilingual Markdown page stored with every registered model version.

It says what the model is for and what it is not for, on which data it was trained and
judged, how well it ranks and how well its probabilities hold, how it treats groups of
firms, and where it should not be trusted — so an auditor can read one page per version.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from features.catalogue import GROUP_LABELS, FeatureInfo

GOVERNANCE_NOTE = (
    "> **不评价、不惩戒、不公开、不免抽。** 风险分类只用于分配检查力量：它不是对企业的评价，"
    "不作为惩戒依据，不对外公开，任何类别都不免于随机抽查。\n>\n"
    "> **Not a rating, not a punishment, not published, no exemption.** The risk class only "
    "allocates inspection effort: it does not rate the firm, is no ground for sanctions, is "
    "not made public, and no class is exempt from random sampling."
)

_DIRECTION = {1: "↑ 只增风险 / can only raise risk", -1: "↓ 只降风险 / can only lower risk",
              0: "不限 / unconstrained"}


def _cell(value: Any) -> str:
    """Markdown-safe cell text; floats at 4 significant digits, missing as '—'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency such as tabulate)."""
    if frame.empty:
        return "_（无数据 / no rows）_"
    header = "| " + " | ".join(_cell(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(_cell(v) for v in row) + " |"
            for row in frame.itertuples(index=False, name=None)]
    return "\n".join([header, rule, *rows])


def _features_table(features: Mapping[str, FeatureInfo] | Sequence[FeatureInfo],
                    model_input: bool) -> pd.DataFrame:
    infos = list(features.values()) if isinstance(features, Mapping) else list(features)
    rows = [{
        "特征 / feature": f"`{info.name}`",
        "指标组 / group": " / ".join(GROUP_LABELS.get(info.group, (info.group, info.group))),
        "含义 / meaning": f"{info.zh} / {info.en}",
        "方向约束 / monotone": _DIRECTION[info.direction],
    } for info in infos if info.model_input == model_input]
    return pd.DataFrame(rows)


def _limits_lines(limits: Sequence[str | tuple[str, str]]) -> list[str]:
    lines = []
    for limit in limits:
        text = limit if isinstance(limit, str) else f"{limit[0]} / {limit[1]}"
        lines.append(f"- {text}")
    return lines or ["- _（未列出 / none listed）_"]


def render_model_card(
    *,
    model_name: str,
    version: str,
    intended_use_zh: str,
    intended_use_en: str,
    data_window: Mapping[str, Any],
    features: Mapping[str, FeatureInfo] | Sequence[FeatureInfo],
    metrics_table: pd.DataFrame,
    fairness_table: pd.DataFrame | None,
    limits: Sequence[str | tuple[str, str]],
    policy_version: str,
) -> str:
    """The model card as Markdown with bilingual headings.

    ``features`` is the feature catalogue (entries with ``model_input=False`` are listed
    as audit-only attributes); ``limits`` are bilingual strings or (zh, en) pairs.
    """
    window = pd.DataFrame({"项目 / item": list(data_window.keys()),
                           "值 / value": [str(v) for v in data_window.values()]})
    audit_only = _features_table(features, model_input=False)
    parts = [
        f"# 模型卡 / Model card: {model_name} v{version}",
        f"策略版本 / policy version: `{policy_version}`",
        "## 用途 / Intended use",
        intended_use_zh,
        intended_use_en,
        GOVERNANCE_NOTE,
        "## 数据 / Data",
        markdown_table(window),
        "### 特征 / Features",
        markdown_table(_features_table(features, model_input=True)),
    ]
    if not audit_only.empty:
        parts += ["### 仅用于审计的属性 / Audit-only attributes (not model inputs)",
                  markdown_table(audit_only)]
    parts += [
        "## 指标 / Metrics",
        markdown_table(metrics_table),
        "## 公平性 / Fairness",
        markdown_table(fairness_table) if fairness_table is not None
        else "_（未提供 / not provided）_",
        "## 局限 / Limits",
        "\n".join(_limits_lines(limits)),
    ]
    return "\n\n".join(parts) + "\n"

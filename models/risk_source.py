"""Risk-source grade R1–R4: the inherent hazard of the works, from a rule table.

Why rules and not a model: the risk-source axis is what regulators publish and argue about
(Beijing, Hangzhou grade it from permit data: scale, use, crowding, excavation depth, number of
over-scale dangerous works), so every grade must be traceable to named, bilingual rules that a
district writes into its own policy file.

How a grade is reached (the policy supplies every number):

1. each rule whose conditions all hold *fires*; a condition on a missing value does not hold;
2. the points of the fired rules are summed; the grade is R1 plus one step for each policy
   cut-off the sum reaches (``point_cutoffs`` = the minimum points for R2, R3 and R4);
3. a fired rule may carry a floor (``min_grade``): the grade is never below the highest floor
   among the fired rules (e.g. excavation ≥ 5 m → at least R3, as Hangzhou grades it high).

R4 is the most hazardous grade. The rule structures here are plain frozen dataclasses; the
policy package validates the YAML and builds them, this module only evaluates them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from features.contract import PROJECT_STAGES, PROJECT_TYPES, PROJECT_USES, STRUCTURES

RISK_SOURCE_GRADES: tuple[str, ...] = ("R1", "R2", "R3", "R4")
RISK_SOURCE_GRADE_LABELS: dict[str, tuple[str, str]] = {
    "R1": ("低风险源", "low hazard"),
    "R2": ("一般风险源", "moderate hazard"),
    "R3": ("较大风险源", "considerable hazard"),
    "R4": ("重大风险源", "major hazard"),
}

InputKind = Literal["number", "category", "flag"]
Operator = Literal["ge", "gt", "le", "lt", "eq", "ne", "in", "not_in"]

# Which operators make sense for which kind of input (the policy validator enforces it).
OPERATORS_BY_KIND: dict[str, tuple[str, ...]] = {
    "number": ("ge", "gt", "le", "lt", "eq", "ne"),
    "category": ("eq", "ne", "in", "not_in"),
    "flag": ("eq", "ne"),
}


@dataclass(frozen=True)
class RuleInput:
    """A project attribute a rule may test; `allowed` lists the codes of a category."""

    kind: InputKind
    zh: str
    en: str
    allowed: tuple[str, ...] = ()


# What the rules can see: the permit attributes plus the point-in-time state of the works
# (see `features.project_features.project_state`).
RULE_INPUTS: dict[str, RuleInput] = {
    "project_type": RuleInput("category", "工程类别", "project type", tuple(PROJECT_TYPES)),
    "use": RuleInput("category", "使用功能", "intended use", tuple(PROJECT_USES)),
    "structure": RuleInput("category", "结构形式", "structural system", tuple(STRUCTURES)),
    "floor_area_m2": RuleInput("number", "建筑面积 (平方米)", "floor area (m²)"),
    "height_m": RuleInput("number", "建筑高度 (米)", "height (m)"),
    "storeys": RuleInput("number", "地上层数", "storeys above ground"),
    "excavation_depth_m": RuleInput("number", "基坑开挖深度 (米)", "excavation depth (m)"),
    "dangerous_works": RuleInput("number", "危大工程数量", "dangerous sub-works"),
    "over_scale_dangerous_works": RuleInput(
        "number", "超危大工程数量", "over-scale dangerous sub-works"
    ),
    "crowded_surroundings": RuleInput("flag", "周边人员密集", "crowded surroundings"),
    "stage": RuleInput("category", "当前施工阶段", "current stage", tuple(PROJECT_STAGES)),
    "dangerous_works_active": RuleInput(
        "flag", "危大工程施工中", "a dangerous-works phase is under way"
    ),
}

ConditionValue = float | bool | str | tuple[str, ...]


@dataclass(frozen=True)
class Condition:
    """`column op value`, e.g. excavation_depth_m ge 5, or use in (school, hospital)."""

    column: str
    op: Operator
    value: ConditionValue


@dataclass(frozen=True)
class RiskSourceRule:
    """A named rule: when every condition holds it adds `points` and may floor the grade."""

    name: str
    zh: str
    en: str
    when: tuple[Condition, ...]
    points: int = 0
    min_grade: str | None = None


@dataclass(frozen=True)
class RiskSourceRules:
    """The whole rule table: rules plus the minimum points for R2, R3 and R4."""

    rules: tuple[RiskSourceRule, ...]
    point_cutoffs: tuple[int, int, int]


RISK_SOURCE_COLUMNS: tuple[str, ...] = (
    "project_id",
    "risk_source_points",
    "risk_source_grade",
    "risk_source_rules",
    "risk_source_reasons",
)


def grade_number(grade: str) -> int:
    """1 for R1 … 4 for R4."""
    return RISK_SOURCE_GRADES.index(grade) + 1


def _numeric(values: pd.Series) -> np.ndarray:
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _condition_mask(frame: pd.DataFrame, condition: Condition) -> np.ndarray:
    """Rows where the condition holds; a missing value never satisfies a condition."""
    if condition.column not in frame.columns:
        raise KeyError(
            f"项目数据缺少规则所需的列 {condition.column!r} / "
            f"projects lack the column {condition.column!r} a risk-source rule tests"
        )
    kind = RULE_INPUTS[condition.column].kind if condition.column in RULE_INPUTS else "category"
    raw = frame[condition.column]
    present = raw.notna().to_numpy(dtype=bool)
    op, value = condition.op, condition.value
    if kind == "number":
        x, v = _numeric(raw), float(value)  # type: ignore[arg-type]
        with np.errstate(invalid="ignore"):
            result = {
                "ge": x >= v, "gt": x > v, "le": x <= v, "lt": x < v, "eq": x == v, "ne": x != v,
            }[op]
    elif kind == "flag":
        flags = raw.astype("boolean").fillna(False).to_numpy(dtype=bool)
        result = flags == bool(value) if op == "eq" else flags != bool(value)
    else:
        text = raw.astype("string").fillna("").to_numpy(dtype=object)
        choices = [value] if isinstance(value, str) else list(value)  # type: ignore[arg-type]
        inside = np.isin(text, choices)
        result = inside if op in ("eq", "in") else ~inside
    return np.asarray(result, dtype=bool) & present


def rule_firing(projects: pd.DataFrame, rules: RiskSourceRules) -> pd.DataFrame:
    """One boolean column per rule (in policy order): did it fire for the project?"""
    fired = {}
    for rule in rules.rules:
        mask = np.ones(len(projects), dtype=bool)
        for condition in rule.when:
            mask &= _condition_mask(projects, condition)
        fired[rule.name] = mask
    return pd.DataFrame(fired, index=projects.index, columns=[r.name for r in rules.rules])


def points_to_grade(points: np.ndarray, cutoffs: Sequence[int]) -> np.ndarray:
    """Grade number 1–4: one step up for each cut-off the points reach."""
    steps = np.zeros(len(points), dtype=int)
    for cutoff in cutoffs:
        steps += (points >= cutoff).astype(int)
    return 1 + steps


def _reason(rule: RiskSourceRule) -> str:
    parts = []
    if rule.points:
        parts.append(f"{rule.points:+d}分 / pts")
    if rule.min_grade:
        parts.append(f"≥{rule.min_grade}")
    suffix = f" ({', '.join(parts)})" if parts else ""
    return f"{rule.zh} / {rule.en}{suffix}"


def grade_risk_source(projects: pd.DataFrame, rules: RiskSourceRules) -> pd.DataFrame:
    """Risk-source grade of each project with the rules that fired and why.

    `projects` needs `project_id` and every column a rule tests (see `RULE_INPUTS`); one row
    per project. Returns `RISK_SOURCE_COLUMNS`: total points, grade R1–R4, the fired rule
    names (a tuple, policy order) and their bilingual reasons joined by '; '.
    """
    fired = rule_firing(projects, rules)
    points = np.zeros(len(projects), dtype=int)
    floor = np.ones(len(projects), dtype=int)
    for rule in rules.rules:
        mask = fired[rule.name].to_numpy(dtype=bool)
        points += mask * int(rule.points)
        if rule.min_grade is not None:
            floor = np.where(mask, np.maximum(floor, grade_number(rule.min_grade)), floor)
    grade = np.maximum(points_to_grade(points, rules.point_cutoffs), floor)
    by_name = {rule.name: rule for rule in rules.rules}
    matrix = fired.to_numpy(dtype=bool)
    columns = list(fired.columns)
    names_fired = np.empty(len(matrix), dtype=object)
    for i in range(len(matrix)):
        names_fired[i] = tuple(columns[j] for j in np.flatnonzero(matrix[i]))
    reasons = ["; ".join(_reason(by_name[n]) for n in names) for names in names_fired]
    return pd.DataFrame(
        {
            "project_id": projects["project_id"].to_numpy(),
            "risk_source_points": pd.array(points, dtype="Int64"),
            "risk_source_grade": pd.array(
                [RISK_SOURCE_GRADES[g - 1] for g in grade], dtype="string"
            ),
            "risk_source_rules": names_fired,
            "risk_source_reasons": pd.array(reasons, dtype="string"),
        },
        columns=list(RISK_SOURCE_COLUMNS),
    )

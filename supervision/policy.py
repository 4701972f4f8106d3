"""Policy as data: every ratio, cut-off, window and list a district sets, validated from YAML.

A district's rules live in one versioned YAML file (`policies/default.yaml` is Haizhu's 2022
plan). `load_policy(path)` validates it into a frozen `Policy`; a broken file raises
`PolicyError` naming the file, each broken field path and the rule in Chinese and English,
never a raw pydantic dump. `Policy.version` (from the file) and `Policy.content_hash` (sha256 of
the canonical JSON of the validated content) travel with every decision, so any class or draw
can be traced to the exact rules that produced it.

Adding a section (`sampling`, `matrix`, `triggers`, ...): define its model on `_Section` (unknown
keys are rejected), add it to `Policy` as an optional field (`sampling: SamplingPolicy | None =
None`) and, if it must agree with other sections, add a check function to `_CROSS_CHECKS`.
Optional sections left out of a file do not change `content_hash` (None is not hashed).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from features.catalogue import FeatureInfo
from features.contract import ENTERPRISE_EVENT_TYPES, ENTITY_TYPES, OWNERSHIP_TYPES
from features.enterprise_features import (
    AUDIT_ATTRIBUTES,
    HARD_RULE_FLAGS,
    INDUSTRY_SECTIONS,
    SIZE_BANDS,
    enterprise_feature_catalogue,
)
from features.labels import LABEL_EVENT_TYPES
from supervision.matrix_policy import MatrixPolicy
from supervision.sampling_policy import SamplingPolicy
from supervision.trigger_policy import DigitalPolicy

CLASS_CODES: tuple[str, ...] = ("A", "B", "C", "D")  # lowest risk first
RiskClassCode = Literal["A", "B", "C", "D"]
HardRuleEffect = Literal["force", "at_most", "at_least"]
SHARE_TOLERANCE = 1e-6

# Promotion metrics and whether a larger value is better.
PROMOTION_METRICS: dict[str, bool] = {
    "auc": True,
    "average_precision": True,
    "precision_at_capacity": True,
    "recall_at_capacity": True,
    "brier": False,
    "log_loss": False,
}
AT_CAPACITY_METRICS = frozenset({"precision_at_capacity", "recall_at_capacity"})

# Allowed reference-group values per audit attribute (None: any non-empty text, e.g. street).
_REFERENCE_VALUES: dict[str, tuple[str, ...] | None] = {
    "ownership_type": tuple(OWNERSHIP_TYPES),
    "entity_type": tuple(ENTITY_TYPES),
    "size_band": tuple(SIZE_BANDS),
    "industry_section": tuple(INDUSTRY_SECTIONS),
    "street": None,
}

_PACKAGED_DEFAULT = "policies/default.yaml"


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyProblem:
    """One broken rule: where (dotted field path) and what, in both languages."""

    path: str
    zh: str
    en: str
    got: str | None = None

    def line(self, source: str) -> str:
        where = f" {self.path}" if self.path else ""
        got = f" (当前值 / got {self.got})" if self.got is not None else ""
        return f"策略文件 {source}:{where} {self.zh} / {self.en}{got}"


class PolicyError(Exception):
    """A policy file that cannot be used; the message lists every problem, one per line."""

    def __init__(self, source: str, problems: Sequence[PolicyProblem]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__("\n".join(p.line(source) for p in self.problems))


# A rule problem before it knows its full path: (sub-path, zh, en, offending value or None).
Problem = tuple[str, str, str, Any]


def _problem(path: str, zh: str, en: str, got: Any = None) -> Problem:
    return (path, zh, en, got)


def _rule(problems: Iterable[Problem]) -> PydanticCustomError:
    """A validation failure carrying problems whose sub-paths extend the error's location."""
    items = tuple(problems)
    summary = "; ".join(f"{p} {zh} / {en}".strip() for p, zh, en, _ in items)
    return PydanticCustomError("policy_rule", "{summary}", {"summary": summary, "items": items})


def _one(path: str, zh: str, en: str, got: Any = None) -> PydanticCustomError:
    return _rule([_problem(path, zh, en, got)])


def _join_path(*parts: str | int) -> str:
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part:
            text += part if not text or part.startswith("[") else f".{part}"
    return text


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


_TYPE_NAMES: dict[str, tuple[str, str]] = {
    "float": ("数字", "a number"),
    "int": ("整数", "an integer"),
    "string": ("文本", "text"),
    "list": ("列表", "a list"),
    "dict": ("映射", "a mapping"),
    "model": ("映射", "a mapping"),
    "bool": ("布尔值", "true or false"),
}


def _describe(error: Mapping[str, Any]) -> tuple[str, str]:
    """Bilingual wording for one pydantic error type."""
    kind = str(error["type"])
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return "缺少必填项", "required field is missing"
    if kind == "extra_forbidden":
        return "是未知字段 (不允许)", "is an unknown field (not allowed)"
    if kind == "literal_error":
        expected = str(ctx.get("expected", ""))
        return f"取值必须是 {expected.replace(' or ', ', ')} 之一", f"must be one of {expected}"
    bounds = {
        "greater_than": ("必须大于 {gt}", "must be greater than {gt}"),
        "greater_than_equal": ("必须大于或等于 {ge}", "must be at least {ge}"),
        "less_than": ("必须小于 {lt}", "must be less than {lt}"),
        "less_than_equal": ("必须小于或等于 {le}", "must be at most {le}"),
        "too_short": ("至少需要 {min_length} 项", "needs at least {min_length} item(s)"),
        "too_long": ("至多允许 {max_length} 项", "allows at most {max_length} item(s)"),
        "string_too_short": ("不能为空", "must not be empty"),
    }
    if kind in bounds:
        zh, en = bounds[kind]
        return zh.format(**ctx), en.format(**ctx)
    for stem, (zh_name, en_name) in _TYPE_NAMES.items():
        if kind.startswith(stem + "_"):
            return f"类型错误, 应为{zh_name}", f"wrong type, expected {en_name}"
    message = str(error.get("msg", ""))
    if any("\u4e00" <= ch <= "\u9fff" for ch in message):  # already bilingual (other sections)
        zh, _, en = message.partition(" / ")
        return zh, en or message
    return "取值无效", message


def _problems_from(exc: ValidationError) -> list[PolicyProblem]:
    problems: list[PolicyProblem] = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        ctx = error.get("ctx") or {}
        if error["type"] == "policy_rule":
            for subpath, zh, en, got in ctx["items"]:
                shown = None if got is None else _shown(got)
                problems.append(PolicyProblem(_join_path(*loc, subpath), zh, en, shown))
        else:
            zh, en = _describe(error)
            shows_value = error["type"] not in ("missing", "extra_forbidden")
            got = _shown(error.get("input")) if shows_value else None
            problems.append(PolicyProblem(_join_path(*loc), zh, en, got))
    return problems


# --------------------------------------------------------------------------------------------
# Section models
# --------------------------------------------------------------------------------------------


class _Section(BaseModel):
    """Base of every policy model: unknown keys rejected, no silent type coercion, immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _strictly_increasing(values: Sequence[float]) -> bool:
    return all(b > a for a, b in itertools.pairwise(values))


def _increasing_problems(values: Sequence[float]) -> list[Problem]:
    if _strictly_increasing(values):
        return []
    return [_problem("", "必须严格递增", "must be strictly increasing", list(values))]


class Bilingual(_Section):
    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)


class RiskClass(_Section):
    """A credit-risk class and its bilingual name."""

    code: RiskClassCode
    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)


class HardRule(_Section):
    """An override applied on top of the model's class.

    Classes are ordered A (lowest risk) < B < C < D. When the enterprise's audit flag
    `condition` (a boolean column of the feature frame) is true: `force` sets the class,
    `at_least` raises it to at least `class`, `at_most` lowers it to at most `class`. Rules are
    applied in file order, so a later rule has the last word (list `force` rules last).
    """

    name: str = Field(min_length=1)
    condition: str
    effect: HardRuleEffect
    risk_class: RiskClassCode = Field(alias="class")
    reason: Bilingual

    @field_validator("condition")
    @classmethod
    def _known_condition(cls, value: str) -> str:
        if value not in HARD_RULE_FLAGS:
            choices = ", ".join(HARD_RULE_FLAGS)
            raise _one("", f"必须是以下条件之一: {choices}",
                       f"must be one of the conditions: {choices}", value)
        return value


class ClassesPolicy(_Section):
    """Classes A-D, their cut-offs and overrides.

    Which wins: `cutoffs` are what scoring applies — a calibrated probability p gets the class
    whose index is the number of cut-offs ≤ p. `target_shares` never classify directly; they
    are the district's intended class mix, used by `cutoffs_from_target_shares` to *set*
    cut-offs from a reference score distribution (then `Policy.with_cutoffs`). A file may give
    either or both; scoring needs cut-offs. `hysteresis_margin`: an enterprise keeps its
    previous class unless its probability crosses a cut-off by more than this margin.
    """

    labels: list[RiskClass]
    cutoffs: list[float] | None = None
    target_shares: dict[str, float] | None = None
    hysteresis_margin: float = Field(ge=0, lt=0.5)
    hard_rules: list[HardRule] = Field(default_factory=list)

    @field_validator("labels")
    @classmethod
    def _exactly_a_to_d(cls, value: list[RiskClass]) -> list[RiskClass]:
        if tuple(c.code for c in value) != CLASS_CODES:
            raise _one("", "必须依次为 A, B, C, D 四类", "must be exactly the classes A, B, C, D "
                       "in this order")
        return value

    @field_validator("cutoffs")
    @classmethod
    def _valid_cutoffs(cls, value: list[float] | None) -> list[float] | None:
        if value is None:
            return value
        problems = []
        wanted = len(CLASS_CODES) - 1
        if len(value) != wanted:
            problems.append(_problem(
                "", f"必须恰好有 {wanted} 个切分点", f"must have exactly {wanted} cut-offs, one "
                "between neighbouring classes", value,
            ))
        problems += [
            _problem(f"[{i}]", "必须在 0 和 1 之间 (不含端点)", "must lie strictly between 0 and 1",
                     v)
            for i, v in enumerate(value)
            if not 0 < v < 1
        ]
        problems += _increasing_problems(value)
        if problems:
            raise _rule(problems)
        return value

    @field_validator("target_shares")
    @classmethod
    def _valid_shares(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is None:
            return value
        if set(value) != set(CLASS_CODES):
            raise _one("", "必须恰好给出 A, B, C, D 四类的占比",
                       "must give a share for exactly the classes A, B, C, D", sorted(value))
        problems = [
            _problem(key, "必须在 0 和 1 之间", "must lie between 0 and 1", share)
            for key, share in value.items()
            if not 0 <= share <= 1
        ]
        total = math.fsum(value.values())
        if abs(total - 1) > SHARE_TOLERANCE:
            problems.append(_problem("", "各类占比之和必须为 1",
                                     f"shares must sum to 1 (±{SHARE_TOLERANCE:g})",
                                     round(total, 9)))
        if problems:
            raise _rule(problems)
        return {code: value[code] for code in CLASS_CODES}

    @field_validator("hard_rules")
    @classmethod
    def _unique_rule_names(cls, value: list[HardRule]) -> list[HardRule]:
        seen: set[str] = set()
        problems = []
        for i, rule in enumerate(value):
            if rule.name in seen:
                problems.append(_problem(f"[{i}].name", "规则名称重复",
                                         f"duplicate rule name {rule.name!r}"))
            seen.add(rule.name)
        if problems:
            raise _rule(problems)
        return value

    @model_validator(mode="after")
    def _cutoffs_or_shares(self) -> ClassesPolicy:
        if self.cutoffs is None and self.target_shares is None:
            raise _one("cutoffs", "必须给出 cutoffs 或 target_shares (至少其一)",
                       "cutoffs or target_shares is required (at least one)")
        if self.cutoffs is not None:
            gap = min(b - a for a, b in itertools.pairwise(self.cutoffs))
            if self.hysteresis_margin * 2 >= gap:
                raise _one("hysteresis_margin",
                           f"必须小于相邻切分点最小间距的一半 ({gap / 2:g})",
                           f"must be less than half the smallest gap between cut-offs "
                           f"({gap / 2:g})")
        return self

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(c.code for c in self.labels)


class SizeBandLimits(_Section):
    """Lower limits of the small, medium and large bands (micro below the first)."""

    employees: list[int]
    registered_capital_10k_cny: list[float]

    @field_validator("employees", "registered_capital_10k_cny")
    @classmethod
    def _three_increasing(cls, value: list[Any]) -> list[Any]:
        problems = []
        if len(value) != len(SIZE_BANDS) - 1:
            problems.append(_problem("", f"必须恰好有 {len(SIZE_BANDS) - 1} 个界限",
                                     f"must have exactly {len(SIZE_BANDS) - 1} limits "
                                     "(small, medium, large)", value))
        problems += [_problem(f"[{i}]", "必须为正数", "must be positive", v)
                     for i, v in enumerate(value) if v <= 0]
        problems += _increasing_problems(value)
        if problems:
            raise _rule(problems)
        return value


class LabelPolicy(_Section):
    """Which recorded outcomes label an enterprise "a real problem surfaced" (besides
    non-exempt inspection findings, which always do).

    `events`: enterprise-event types that label; `excluded_items`: per event type, item codes
    that do not (e.g. an abnormal listing whose only cause is a late annual report). Left
    out of a file: the original definition (every penalty and listing counts).
    """

    events: list[str] = Field(default_factory=lambda: list(LABEL_EVENT_TYPES))
    excluded_items: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str]) -> list[str]:
        problems = [
            _problem(f"[{i}]", "不是数据契约中的企业事件类型",
                     f"is not an enterprise event type of the contract "
                     f"({', '.join(ENTERPRISE_EVENT_TYPES)})", v)
            for i, v in enumerate(value) if v not in ENTERPRISE_EVENT_TYPES
        ]
        problems += [_problem(f"[{i}]", "重复", "is listed twice", v)
                     for i, v in enumerate(value) if v in value[:i]]
        if problems:
            raise _rule(problems)
        return value

    @model_validator(mode="after")
    def _exclusions_of_labelling_events(self) -> LabelPolicy:
        problems = [
            _problem(f"excluded_items.{kind}", "不是上面 events 中的标签事件",
                     "is not one of the labelling events above", kind)
            for kind in self.excluded_items if kind not in self.events
        ]
        problems += [
            _problem(f"excluded_items.{kind}[{i}]", "事项代码不能为空", "item code must not be "
                     "empty", code)
            for kind, codes in self.excluded_items.items()
            for i, code in enumerate(codes) if not str(code).strip()
        ]
        if problems:
            raise _rule(problems)
        return self


class EnterprisePolicy(_Section):
    """Enterprise credit-risk classification: windows for features and labels, classes."""

    label_window_months: int = Field(gt=0)
    label_grace_days: int = Field(ge=0)
    label: LabelPolicy = Field(default_factory=LabelPolicy)
    feature_windows_days: list[int] = Field(min_length=1)
    newly_established_months: int = Field(gt=0)
    large_capital_10k_cny: float = Field(gt=0)
    size_bands: SizeBandLimits
    classes: ClassesPolicy

    @field_validator("feature_windows_days")
    @classmethod
    def _positive_increasing(cls, value: list[int]) -> list[int]:
        problems = [
            _problem(f"[{i}]", "必须为正整数天数", "must be a positive number of days", v)
            for i, v in enumerate(value)
            if v <= 0
        ]
        problems += _increasing_problems(value)
        if problems:
            raise _rule(problems)
        return value


class Exemption(_Section):
    """One item of the minor-violation exemption list (轻微违法免处罚清单)."""

    code: str = Field(min_length=1, pattern=r"^\S+$")
    name_zh: str = Field(min_length=1)
    name_en: str = Field(min_length=1)
    legal_basis: str = Field(min_length=1)
    situation: str = Field(min_length=1)


class FairnessPolicy(_Section):
    """Acceptable band for a group's rate relative to its reference group, per attribute."""

    band: list[float]
    reference_groups: dict[str, str] = Field(min_length=1)

    @field_validator("band")
    @classmethod
    def _brackets_one(cls, value: list[float]) -> list[float]:
        if len(value) != 2 or not 0 < value[0] < 1 < value[1]:
            raise _one("", "必须为 [下限, 上限] 且 0 < 下限 < 1 < 上限",
                       "must be [lower, upper] with 0 < lower < 1 < upper", value)
        return value

    @field_validator("reference_groups")
    @classmethod
    def _known_groups(cls, value: dict[str, str]) -> dict[str, str]:
        problems = []
        for attribute, group in value.items():
            if attribute not in _REFERENCE_VALUES:
                choices = ", ".join(AUDIT_ATTRIBUTES)
                problems.append(_problem(attribute, f"不是可审计的属性; 可选: {choices}",
                                         f"is not an audit attribute; choose from {choices}"))
                continue
            allowed = _REFERENCE_VALUES[attribute]
            if (allowed is not None and group not in allowed) or not group:
                problems.append(_problem(attribute, f"参照组不是有效取值; 可选: {allowed}",
                                         f"reference group {group!r} is not a valid value",
                                         group))
        if problems:
            raise _rule(problems)
        return value


class PromotionPolicy(_Section):
    """A challenger replaces the champion only if it beats it on the latest backtest fold."""

    metric: Literal[
        "auc", "average_precision", "precision_at_capacity", "recall_at_capacity", "brier",
        "log_loss",
    ]
    capacity: float | None = None
    min_improvement: float = Field(ge=0)

    @model_validator(mode="after")
    def _capacity_when_needed(self) -> PromotionPolicy:
        if self.metric in AT_CAPACITY_METRICS and self.capacity is None:
            raise _one("capacity", f"指标 {self.metric} 需要给出检查能力比例",
                       f"metric {self.metric} needs an inspection capacity")
        if self.metric not in AT_CAPACITY_METRICS and self.capacity is not None:
            raise _one("capacity", f"指标 {self.metric} 不使用检查能力比例, 请删除",
                       f"metric {self.metric} takes no capacity; remove it")
        return self

    @property
    def higher_is_better(self) -> bool:
        return PROMOTION_METRICS[self.metric]

    def beats(self, challenger: float, champion: float) -> bool:
        """True when the challenger's metric improves on the champion's by ≥ min_improvement."""
        gain = challenger - champion if self.higher_is_better else champion - challenger
        return gain >= self.min_improvement


class EvaluationPolicy(_Section):
    """How models are judged: capacities, calibration, fairness band, promotion gate."""

    inspection_capacities: list[float] = Field(min_length=1)
    calibration_bins: int = Field(ge=2)
    ece_gate: float = Field(gt=0, lt=1)
    fairness: FairnessPolicy
    promotion: PromotionPolicy

    @field_validator("inspection_capacities")
    @classmethod
    def _fractions_increasing(cls, value: list[float]) -> list[float]:
        problems = [_problem(f"[{i}]", "必须在 (0, 1] 之间", "must lie in (0, 1]", v)
                    for i, v in enumerate(value) if not 0 < v <= 1]
        problems += _increasing_problems(value)
        if problems:
            raise _rule(problems)
        return value

    @model_validator(mode="after")
    def _capacity_is_evaluated(self) -> EvaluationPolicy:
        capacity = self.promotion.capacity
        if capacity is not None and capacity not in self.inspection_capacities:
            raise _one("promotion.capacity",
                       f"必须是 inspection_capacities 中的一项 {self.inspection_capacities}",
                       "must be one of inspection_capacities", capacity)
        return self


class ScorecardItem(_Section):
    """Points for one feature: `points` per unit (capped at `cap`), or `levels` by exact value."""

    feature: str
    points: float | None = None
    cap: float | None = Field(default=None, gt=0)
    levels: dict[int, float] | None = None

    @model_validator(mode="after")
    def _points_or_levels(self) -> ScorecardItem:
        if (self.points is None) == (self.levels is None):
            raise _one("points", "points 与 levels 必须且只能给出其一",
                       "give exactly one of points and levels")
        if self.cap is not None and self.points is None:
            raise _one("cap", "cap 只能与 points 一起使用", "cap only applies to points")
        return self


class Scorecard(_Section):
    """The hand-made point scorecard (the government-style baseline model)."""

    base_points: float = 0.0
    items: list[ScorecardItem] = Field(min_length=1)
    class_cutoffs: list[float] | None = None

    @field_validator("items")
    @classmethod
    def _unique_features(cls, value: list[ScorecardItem]) -> list[ScorecardItem]:
        seen: set[str] = set()
        problems = []
        for i, item in enumerate(value):
            if item.feature in seen:
                problems.append(_problem(f"[{i}].feature", "特征重复",
                                         f"duplicate feature {item.feature!r}"))
            seen.add(item.feature)
        if problems:
            raise _rule(problems)
        return value

    @field_validator("class_cutoffs")
    @classmethod
    def _three_increasing(cls, value: list[float] | None) -> list[float] | None:
        if value is None:
            return value
        problems = []
        if len(value) != len(CLASS_CODES) - 1:
            problems.append(_problem("", f"必须恰好有 {len(CLASS_CODES) - 1} 个分数线",
                                     f"must have exactly {len(CLASS_CODES) - 1} point cut-offs",
                                     value))
        problems += _increasing_problems(value)
        if problems:
            raise _rule(problems)
        return value


# --------------------------------------------------------------------------------------------
# The root model
# --------------------------------------------------------------------------------------------


def _scorecard_features_exist(policy: Policy) -> Iterable[Problem]:
    catalogue = policy.feature_catalogue()
    for i, item in enumerate(policy.scorecard.items):
        path = f"scorecard.items[{i}].feature"
        info = catalogue.get(item.feature)
        if info is None:
            yield _problem(path, "不是特征目录中的特征",
                           f"{item.feature!r} is not a feature of the catalogue "
                           f"(windows {policy.enterprise.feature_windows_days})")
        elif not info.model_input:
            yield _problem(path, f"{item.feature} 仅用于审计, 不得计分",
                           f"{item.feature!r} is audit-only and must not score points")


class MonitoringPolicy(_Section):
    """Drift bands of the nightly monitoring (population stability index, PSI).

    A feature or the score whose PSI against the training reference exceeds `psi_flag` is
    flagged for attention, above `psi_alert` it raises an alert; `bins` is the number of
    quantile bins of the reference the PSI is computed over. Credit scoring's convention is
    0.1 / 0.25 over deciles.
    """

    psi_flag: float = Field(gt=0)
    psi_alert: float = Field(gt=0)
    bins: int = Field(ge=2, le=100)

    @model_validator(mode="after")
    def _alert_above_flag(self) -> MonitoringPolicy:
        if self.psi_alert <= self.psi_flag:
            raise _one("psi_alert", f"必须大于 psi_flag ({self.psi_flag})",
                       f"must be greater than psi_flag ({self.psi_flag})", self.psi_alert)
        return self


# Checks that need more than one section; each yields problems with full paths. They run once
# every section is valid on its own.
_CROSS_CHECKS: list[Callable[[Policy], Iterable[Problem]]] = [_scorecard_features_exist]


class Policy(_Section):
    """A district's whole policy. Optional sections are added as `name: Model | None = None`."""

    version: str = Field(min_length=1)
    district: Bilingual
    enterprise: EnterprisePolicy
    exemptions: list[Exemption] = Field(min_length=1)
    evaluation: EvaluationPolicy
    scorecard: Scorecard
    sampling: SamplingPolicy | None = None
    digital: DigitalPolicy | None = None
    matrix: MatrixPolicy | None = None
    monitoring: MonitoringPolicy | None = None

    @field_validator("exemptions")
    @classmethod
    def _unique_codes(cls, value: list[Exemption]) -> list[Exemption]:
        seen: set[str] = set()
        problems = []
        for i, item in enumerate(value):
            if item.code in seen:
                problems.append(_problem(f"[{i}].code", "免罚清单代码重复",
                                         f"duplicate exemption code {item.code!r}"))
            seen.add(item.code)
        if problems:
            raise _rule(problems)
        return value

    _source: str = PrivateAttr(default="<内存 / in memory>")

    @model_validator(mode="after")
    def _cross_sections(self) -> Policy:
        problems = [problem for check in _CROSS_CHECKS for problem in check(self)]
        if problems:
            raise _rule(problems)
        return self

    @property
    def source(self) -> str:
        """Where the policy was read from (not part of its content)."""
        return self._source

    @cached_property
    def content_hash(self) -> str:
        """sha256 of the canonical JSON of the validated content (keys sorted, None dropped)."""
        content = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    @property
    def exempt_codes(self) -> frozenset[str]:
        return frozenset(item.code for item in self.exemptions)

    def feature_catalogue(self) -> dict[str, FeatureInfo]:
        """The enterprise feature catalogue for this policy's windows."""
        return enterprise_feature_catalogue(self.enterprise.feature_windows_days)

    def enterprise_feature_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `features.enterprise_features.build_enterprise_features`."""
        enterprise = self.enterprise
        return {
            "exempt_codes": self.exempt_codes,
            "windows_days": tuple(enterprise.feature_windows_days),
            "newly_established_months": enterprise.newly_established_months,
            "large_capital_10k_cny": enterprise.large_capital_10k_cny,
            "size_band_employees": tuple(enterprise.size_bands.employees),
            "size_band_capital_10k_cny": tuple(enterprise.size_bands.registered_capital_10k_cny),
        }

    def enterprise_label_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `features.labels.build_enterprise_labels`."""
        return {
            "window_months": self.enterprise.label_window_months,
            "exempt_codes": self.exempt_codes,
            "grace_days": self.enterprise.label_grace_days,
            "label_events": tuple(self.enterprise.label.events),
            "excluded_event_items": {
                kind: frozenset(codes)
                for kind, codes in self.enterprise.label.excluded_items.items()
            },
        }

    def with_cutoffs(self, cutoffs: Sequence[float]) -> Policy:
        """A validated copy with new class cut-offs (its content hash changes accordingly)."""
        data = self.model_dump(by_alias=True, exclude_none=True)
        data["enterprise"]["classes"]["cutoffs"] = [float(c) for c in cutoffs]
        return parse_policy(data, source=f"{self.source} + cutoffs {list(cutoffs)}")


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _UniqueKeyLoader(_SafeLoader):  # type: ignore[valid-type,misc]
    """Safe YAML loader (C-accelerated when available) that refuses duplicate keys."""


def _mapping_without_duplicates(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            line = key_node.start_mark.line + 1
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (第 {line} 行重复的键 / line {line})",
                key_node.start_mark,
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates
)


def _parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"第 {mark.line + 1} 行第 {mark.column + 1} 列" if mark else ""
        where_en = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise PolicyError(source, [PolicyProblem(
            "", f"YAML 格式错误{where}: {exc.problem}", f"malformed YAML{where_en}: {exc.problem}"
        )]) from None
    except yaml.YAMLError as exc:
        raise PolicyError(source, [PolicyProblem("", "YAML 格式错误", f"malformed YAML: {exc}")]) \
            from None


def parse_policy(data: Any, source: str = "<内存 / in memory>") -> Policy:
    """Validate an already-parsed mapping; raise `PolicyError` listing every problem."""
    if not isinstance(data, Mapping):
        raise PolicyError(source, [PolicyProblem(
            "", "顶层必须是键值映射", "the top level must be a mapping of sections",
            type(data).__name__,
        )])
    try:
        policy = Policy.model_validate(dict(data))
    except ValidationError as exc:
        raise PolicyError(source, _problems_from(exc)) from None
    policy._source = source
    return policy


def default_policy_text() -> str:
    """The packaged default policy file (Haizhu 2022) as text."""
    return resources.files("supervision").joinpath(_PACKAGED_DEFAULT).read_text(encoding="utf-8")


def load_policy(path: Path | None = None) -> Policy:
    """Load and validate a policy file; None loads the packaged default."""
    if path is None:
        source = f"supervision/{_PACKAGED_DEFAULT}"
        text = default_policy_text()
    else:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise PolicyError(source, [PolicyProblem("", "文件不存在", "file not found")]) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyError(source, [PolicyProblem(
                "", f"无法读取 (需为 UTF-8 文本): {exc}", f"cannot be read as UTF-8 text: {exc}"
            )]) from None
    return parse_policy(_parse_yaml(text, source), source)


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def cutoffs_from_target_shares(
    reference_scores: Sequence[float] | np.ndarray,
    target_shares: Mapping[str, float],
) -> list[float]:
    """Cut-offs that split a reference score distribution into the target class shares.

    The cut-off between class k and k+1 is the quantile at the cumulative share of classes
    A..k, so (ties aside) `target_shares[A]` of the reference population scores below the
    first cut-off, and so on. Use on a recent, representative scored population, then
    `policy.with_cutoffs(...)` so the new cut-offs are versioned with the policy.
    """
    scores = np.asarray(reference_scores, dtype=np.float64).ravel()
    if scores.size == 0 or not np.isfinite(scores).all():
        raise ValueError(
            "参照分数必须非空且为有限数 / reference scores must be non-empty and finite"
        )
    if set(target_shares) != set(CLASS_CODES):
        raise ValueError("目标占比必须恰好覆盖 A, B, C, D / target shares must cover exactly A-D")
    cumulative = np.cumsum([target_shares[c] for c in CLASS_CODES[:-1]])
    cutoffs = [float(v) for v in np.quantile(scores, cumulative)]
    if not _strictly_increasing(cutoffs) or not all(0 < c < 1 for c in cutoffs):
        raise ValueError(
            f"参照分数过于集中, 无法按目标占比切分 (得到 {cutoffs}) / reference scores are too "
            f"concentrated to split by the target shares (got {cutoffs})"
        )
    return cutoffs

"""The construction risk-matrix section of the policy file (`matrix:`), as validated data.

A district grades its construction sites by its own published rules: which project features
add risk-source points, where the R and M grades start, which supervision level each of the
16 matrix cells gets, how often each level is inspected and which events override the table.
All of it lives in the `matrix:` section of the policy file; this module validates it (unknown keys,
missing cells, unknown levels, non-positive intervals fail with a bilingual message naming the
place in the file) and turns it into the plain rule structures that `models.risk_source` and
`models.matrix` evaluate — validation here, evaluation there.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from features.contract import PROJECT_EVENT_TYPES, SEVERITIES
from models.matrix import (
    MANAGEMENT_GRADES,
    AccidentOverride,
    MatrixRules,
    SupervisionLevel,
)
from models.risk_source import (
    OPERATORS_BY_KIND,
    RISK_SOURCE_GRADES,
    RULE_INPUTS,
    Condition,
    RiskSourceRule,
    RiskSourceRules,
)

SECTION_KEY = "matrix"
_CODE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class MatrixPolicyError(ValueError):
    """A policy file or mapping that does not satisfy the `matrix:` section's rules."""


def _error(code: str, zh: str, en: str) -> PydanticCustomError:
    return PydanticCustomError(f"matrix_{code}", f"{zh} / {en}")


def _positive_days(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _error(
            "positive_days",
            f"天数必须为正整数, 实际为 {value!r}",
            f"must be a positive whole number of days, got {value!r}",
        )
    return value


def _positive_count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _error("positive_int", f"必须为正整数, 实际为 {value!r}",
                     f"must be a positive whole number, got {value!r}")
    return value


def _whole_number(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _error("int", f"必须为整数, 实际为 {value!r}",
                     f"must be a whole number, got {value!r}")
    return value


def _code(value: object) -> str:
    if not isinstance(value, str) or not _CODE_PATTERN.match(value):
        raise _error(
            "code",
            "名称须为小写字母开头的小写字母、数字或下划线 (最多64位)",
            "names must be lower-case letters, digits or underscores, starting with a letter",
        )
    return value


def _text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _error("text", "必须为非空文本", "must be non-empty text")
    return value.strip()


Days = Annotated[int, BeforeValidator(_positive_days)]
Points = Annotated[int, BeforeValidator(_whole_number)]
Count = Annotated[int, BeforeValidator(_positive_count)]
Code = Annotated[str, BeforeValidator(_code)]
Text = Annotated[str, BeforeValidator(_text)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleConditionPolicy(_Strict):
    """One test on a project attribute, e.g. `{column: excavation_depth_m, op: ge, value: 5}`."""

    column: str
    op: str
    value: float | int | bool | str | list[str]

    @model_validator(mode="after")
    def _fits_column(self) -> RuleConditionPolicy:
        if self.column not in RULE_INPUTS:
            known = ", ".join(RULE_INPUTS)
            raise _error(
                "column",
                f"规则不能检验列 {self.column!r}, 可用列: {known}",
                f"rules cannot test column {self.column!r}; usable columns: {known}",
            )
        spec = RULE_INPUTS[self.column]
        allowed_ops = OPERATORS_BY_KIND[spec.kind]
        if self.op not in allowed_ops:
            raise _error(
                "op",
                f"列 {self.column} 不支持运算 {self.op!r}, 可用: {', '.join(allowed_ops)}",
                f"column {self.column} does not support op {self.op!r}; "
                f"use one of {', '.join(allowed_ops)}",
            )
        value = self.value
        if spec.kind == "number" and (isinstance(value, bool | str | list)):
            raise _error("number", f"列 {self.column} 的比较值必须为数字",
                         f"column {self.column} must be compared with a number")
        if spec.kind == "flag" and not isinstance(value, bool):
            raise _error("flag", f"列 {self.column} 的比较值必须为 true 或 false",
                         f"column {self.column} must be compared with true or false")
        if spec.kind == "category":
            many = self.op in ("in", "not_in")
            if many != isinstance(value, list):
                raise _error(
                    "category_value",
                    "in/not_in 需要列表, eq/ne 需要单个代码",
                    "in/not_in need a list of codes, eq/ne a single code",
                )
            codes = value if isinstance(value, list) else [value]
            unknown = [c for c in codes if c not in spec.allowed]
            if unknown:
                raise _error(
                    "category_code",
                    f"列 {self.column} 的代码 {unknown} 未定义, 可用: {', '.join(spec.allowed)}",
                    f"column {self.column} has no codes {unknown}; "
                    f"known: {', '.join(spec.allowed)}",
                )
        return self

    def to_condition(self) -> Condition:
        value: Any = self.value
        if isinstance(value, list):
            value = tuple(value)
        elif RULE_INPUTS[self.column].kind == "number":
            value = float(value)
        return Condition(column=self.column, op=self.op, value=value)  # type: ignore[arg-type]


class RiskSourceRulePolicy(_Strict):
    """A named rule: all of `when` hold → add `points`, and the grade is at least `min_grade`."""

    name: Code
    zh: Text
    en: Text
    when: list[RuleConditionPolicy] = Field(min_length=1)
    points: Points = 0
    min_grade: str | None = None

    @model_validator(mode="after")
    def _does_something(self) -> RiskSourceRulePolicy:
        if self.min_grade is not None and self.min_grade not in RISK_SOURCE_GRADES:
            raise _error(
                "min_grade",
                f"min_grade 必须为 {', '.join(RISK_SOURCE_GRADES)} 之一, 实际为 {self.min_grade!r}",
                f"min_grade must be one of {', '.join(RISK_SOURCE_GRADES)}, "
                f"got {self.min_grade!r}",
            )
        if self.points == 0 and self.min_grade is None:
            raise _error(
                "no_effect",
                f"规则 {self.name} 既不加分也不设最低等级",
                f"rule {self.name} neither adds points nor sets a minimum grade",
            )
        return self


class RiskSourcePolicy(_Strict):
    """The rule table and the minimum points of R2, R3 and R4."""

    point_cutoffs: dict[str, Points]
    rules: list[RiskSourceRulePolicy] = Field(min_length=1)

    @field_validator("point_cutoffs")
    @classmethod
    def _ascending_cutoffs(cls, value: dict[str, int]) -> dict[str, int]:
        expected = list(RISK_SOURCE_GRADES[1:])
        if sorted(value) != expected:
            raise _error(
                "point_cutoffs",
                f"须恰好给出 {', '.join(expected)} 的最低分, 实际为 {sorted(value)}",
                f"must give the minimum points of exactly {', '.join(expected)}, "
                f"got {sorted(value)}",
            )
        points = [value[g] for g in expected]
        if any(b <= a for a, b in itertools.pairwise(points)) or points[0] <= 0:
            raise _error(
                "point_cutoffs_order",
                f"最低分须为正数且逐级递增, 实际为 {points}",
                f"minimum points must be positive and strictly increasing, got {points}",
            )
        return value

    @field_validator("rules")
    @classmethod
    def _unique_names(cls, value: list[RiskSourceRulePolicy]) -> list[RiskSourceRulePolicy]:
        names = [rule.name for rule in value]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise _error("rule_names", f"规则名重复: {repeated}",
                         f"duplicate rule names: {repeated}")
        return value


def _open_unit_interval(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise _error("unit_interval", f"必须为 0 与 1 之间的数, 实际为 {value!r}",
                     f"must be a number strictly between 0 and 1, got {value!r}")
    return float(value)


Share = Annotated[float, BeforeValidator(_open_unit_interval)]


class ManagementPolicy(_Strict):
    """The management model's label, its promotion calibration limit, and where M2, M3 and M4
    start on its calibrated defect probability.

    `label_window_days`: the label is the first inspection within this many days after the
    as-of date (training and backtest use it; a model is only comparable to one trained on
    the same window). `ece_gate`: the largest pooled backtest calibration error with which a
    project model may become champion (the enterprise gate's `evaluation.ece_gate` does not
    apply: the site-level label is rarer and noisier than the enterprise one).
    """

    label_window_days: Days
    ece_gate: Share
    probability_cutoffs: dict[str, float]
    top_reasons: Count = 3

    @field_validator("probability_cutoffs")
    @classmethod
    def _ascending_probabilities(cls, value: dict[str, float]) -> dict[str, float]:
        expected = list(MANAGEMENT_GRADES[1:])
        if sorted(value) != expected:
            raise _error(
                "probability_cutoffs",
                f"须恰好给出 {', '.join(expected)} 的最低概率, 实际为 {sorted(value)}",
                f"must give the lowest probability of exactly {', '.join(expected)}, "
                f"got {sorted(value)}",
            )
        cuts = [value[g] for g in expected]
        ascending = all(b > a for a, b in itertools.pairwise(cuts))
        if not ascending or not all(0 < c < 1 for c in cuts):
            raise _error(
                "probability_order",
                f"概率分界须在 0 与 1 之间且逐级递增, 实际为 {cuts}",
                f"probability cut-offs must lie strictly between 0 and 1 and increase, got {cuts}",
            )
        return value


class LevelPolicy(_Strict):
    """A supervision level (e.g. red 红) and its inspection interval in days."""

    code: Code
    zh: Text
    en: Text
    interval_days: Days


class AccidentPolicy(_Strict):
    """An accident keeps the site at `level` or above for `days` after the accident."""

    level: str
    days: Days
    severities: list[str] = Field(default_factory=list)

    @field_validator("severities")
    @classmethod
    def _known_severities(cls, value: list[str]) -> list[str]:
        unknown = [s for s in value if s not in SEVERITIES]
        if unknown:
            raise _error(
                "severity",
                f"严重程度 {unknown} 未定义, 可用: {', '.join(SEVERITIES)}",
                f"unknown severities {unknown}; known: {', '.join(SEVERITIES)}",
            )
        return value


class OverridesPolicy(_Strict):
    """Event overrides of the matrix table."""

    accident: AccidentPolicy | None = None
    regrade_on: list[str] = Field(default_factory=list)

    @field_validator("regrade_on")
    @classmethod
    def _known_events(cls, value: list[str]) -> list[str]:
        unknown = [e for e in value if e not in PROJECT_EVENT_TYPES]
        if unknown:
            raise _error(
                "event_type",
                f"事件类型 {unknown} 未定义, 可用: {', '.join(PROJECT_EVENT_TYPES)}",
                f"unknown event types {unknown}; known: {', '.join(PROJECT_EVENT_TYPES)}",
            )
        return value


class MatrixPolicy(_Strict):
    """The whole `matrix:` section."""

    version: Text
    risk_source: RiskSourcePolicy
    management: ManagementPolicy
    levels: list[LevelPolicy] = Field(min_length=1)
    cells: dict[str, dict[str, str]]
    overrides: OverridesPolicy = Field(default_factory=OverridesPolicy)

    @field_validator("levels")
    @classmethod
    def _unique_levels(cls, value: list[LevelPolicy]) -> list[LevelPolicy]:
        codes = [level.code for level in value]
        repeated = sorted({c for c in codes if codes.count(c) > 1})
        if repeated:
            raise _error("level_codes", f"监管等级重复: {repeated}",
                         f"duplicate supervision levels: {repeated}")
        return value

    @field_validator("cells")
    @classmethod
    def _complete_cells(
        cls, value: dict[str, dict[str, str]], info: ValidationInfo
    ) -> dict[str, dict[str, str]]:
        problems_zh, problems_en = [], []
        extra_rows = sorted(set(value) - set(RISK_SOURCE_GRADES))
        if extra_rows:
            problems_zh.append(f"未知风险源等级 {extra_rows}")
            problems_en.append(f"unknown risk-source grades {extra_rows}")
        levels = info.data.get("levels")
        known = [level.code for level in levels] if levels else None
        for r in RISK_SOURCE_GRADES:
            row = value.get(r, {})
            extra = sorted(set(row) - set(MANAGEMENT_GRADES))
            if extra:
                problems_zh.append(f"{r} 行有未知管理等级 {extra}")
                problems_en.append(f"row {r} has unknown management grades {extra}")
            for m in MANAGEMENT_GRADES:
                if m not in row:
                    problems_zh.append(f"缺少单元格 {r}×{m}")
                    problems_en.append(f"cell {r}×{m} is missing")
                elif known is not None and row[m] not in known:
                    problems_zh.append(f"单元格 {r}×{m} 的监管等级 {row[m]!r} 未定义")
                    problems_en.append(f"cell {r}×{m} names an unknown level {row[m]!r}")
        if problems_zh:
            defined = f" (已定义等级 / defined levels: {', '.join(known)})" if known else ""
            raise _error("cells", "; ".join(problems_zh), "; ".join(problems_en) + defined)
        return value

    @model_validator(mode="after")
    def _accident_level_known(self) -> MatrixPolicy:
        accident = self.overrides.accident
        codes = [level.code for level in self.levels]
        if accident is not None and accident.level not in codes:
            raise _error(
                "accident_level",
                f"事故调整的监管等级 {accident.level!r} 未定义 (overrides.accident.level)",
                f"overrides.accident.level names an unknown level {accident.level!r}; "
                f"defined levels: {', '.join(codes)}",
            )
        return self

    def risk_source_rules(self) -> RiskSourceRules:
        """The rule table as `models.risk_source` evaluates it."""
        cutoffs = self.risk_source.point_cutoffs
        return RiskSourceRules(
            rules=tuple(
                RiskSourceRule(
                    name=rule.name,
                    zh=rule.zh,
                    en=rule.en,
                    when=tuple(c.to_condition() for c in rule.when),
                    points=rule.points,
                    min_grade=rule.min_grade,
                )
                for rule in self.risk_source.rules
            ),
            point_cutoffs=(cutoffs["R2"], cutoffs["R3"], cutoffs["R4"]),
        )

    def matrix_rules(self) -> MatrixRules:
        """Levels, cells, M cut-offs and overrides as `models.matrix` evaluates them."""
        cuts = self.management.probability_cutoffs
        accident = self.overrides.accident
        return MatrixRules(
            levels=tuple(
                SupervisionLevel(level.code, level.zh, level.en, level.interval_days)
                for level in self.levels
            ),
            cells={(r, m): self.cells[r][m] for r in RISK_SOURCE_GRADES for m in MANAGEMENT_GRADES},
            management_cutoffs=(cuts["M2"], cuts["M3"], cuts["M4"]),
            accident=None if accident is None else AccidentOverride(
                accident.level, accident.days, tuple(accident.severities)
            ),
            regrade_events=tuple(self.overrides.regrade_on),
        )


def format_location(loc: tuple[Any, ...], root: str = SECTION_KEY) -> str:
    """`("levels", 2, "interval_days")` → `matrix.levels[2].interval_days`."""
    text = root
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def policy_error_lines(exc: ValidationError, root: str = SECTION_KEY) -> list[str]:
    """One readable line per problem: `<path>: <中文 / English>`."""
    return [f"{format_location(tuple(err['loc']), root)}: {err['msg']}" for err in exc.errors()]


def parse_matrix_policy(data: Any, source: str = "<policy>") -> MatrixPolicy:
    """Validate a `matrix:` mapping; raise `MatrixPolicyError` listing every problem."""
    try:
        return MatrixPolicy.model_validate(data)
    except ValidationError as exc:
        lines = "\n".join(f"  {line}" for line in policy_error_lines(exc))
        raise MatrixPolicyError(
            f"{source}: 风险矩阵策略无效 / invalid risk-matrix policy:\n{lines}"
        ) from None


def load_matrix_policy(path: str | Path | None = None) -> MatrixPolicy:
    """Read a YAML file whose top-level key is `matrix:` (default: the packaged fragment)."""
    path = Path(path) if path is not None else default_policy_path()
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise MatrixPolicyError(f"{path}: YAML 格式错误 / malformed YAML: {exc}") from None
    except OSError as exc:
        raise MatrixPolicyError(f"{path}: 无法读取 / cannot read: {exc}") from None
    if not isinstance(document, dict) or SECTION_KEY not in document:
        raise MatrixPolicyError(
            f"{path}: 缺少顶层键 {SECTION_KEY}: / missing top-level key {SECTION_KEY}:"
        )
    return parse_matrix_policy(document[SECTION_KEY], source=str(path))


def default_policy_path() -> Path:
    """The packaged default policy file, whose `matrix:` section is this policy."""
    return Path(__file__).parent / "policies" / "default.yaml"

"""Policy section `digital:` — digital-economy tagging and trigger-based supervision, as data.

Every threshold, window, cool-down, severity and action a district sets for "触发式监管" lives
here, validated with messages that name the field path and the rule in Chinese and English, so
a district editing its YAML file sees "digital.triggers[2].window_days 必须为正整数 / must be a
positive integer" rather than a traceback.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from features.contract import DIGITAL_TAGS, ENTERPRISE_EVENT_TYPES, SEVERITIES

SECTION_KEY = "digital"

# Actions a trigger case can ask for, weakest first: when several rules fire for one firm the
# case takes the strongest. The order is the meaning of the codes, not a tunable threshold.
ACTIONS: dict[str, str] = {
    "advice": "提醒告知 / advice",
    "talk": "约谈 / talk",
    "correction_notice": "责令改正通知 / correction notice",
    "inspection": "现场检查 / on-site inspection",
}
ACTION_RANK: dict[str, int] = {code: rank for rank, code in enumerate(ACTIONS)}
SEVERITY_RANK: dict[str, int] = {code: rank for rank, code in enumerate(SEVERITIES)}
TOLERANCE_ACTIONS: tuple[str, ...] = ("advice", "talk")
RULE_KINDS: tuple[str, ...] = ("complaint_surge", "new_event", "class_drop")

Action = Literal["advice", "talk", "correction_notice", "inspection"]
Severity = Literal["minor", "general", "serious"]

_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_INDUSTRY_PREFIX_PATTERN = re.compile(r"^[A-T][0-9]{0,4}$")


class TriggerPolicyError(ValueError):
    """A policy file or mapping that does not satisfy the `digital:` section's rules."""


def _error(code: str, zh: str, en: str) -> PydanticCustomError:
    return PydanticCustomError(f"digital_{code}", f"{zh} / {en}")


def _positive_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _error("positive_int", "必须为正整数", "must be a positive integer")
    return value


def _non_negative_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _error("non_negative_int", "必须为非负整数", "must be a non-negative integer")
    return value


def _positive_number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise _error("positive_number", "必须为正数", "must be a positive number")
    return float(value)


def _strict_bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise _error("bool", "必须为 true 或 false", "must be true or false")
    return value


def _text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _error("text", "必须为非空文本", "must be non-empty text")
    return value.strip()


def _rule_name(value: object) -> str:
    if not isinstance(value, str) or not _NAME_PATTERN.match(value):
        raise _error(
            "rule_name",
            "规则名须为小写字母开头的小写字母、数字或下划线 (最多64位)",
            "rule name must be lower-case letters, digits or underscores, starting with a letter "
            "(at most 64)",
        )
    return value


def _one_of(code: str, allowed: dict[str, str], zh: str, en: str) -> Any:
    def check(value: object) -> str:
        if not isinstance(value, str) or value not in allowed:
            listed = ", ".join(allowed)
            raise _error(code, f"{zh}须为以下之一: {listed}", f"{en} must be one of: {listed}")
        return value

    return check


def _industry_prefix(value: object) -> str:
    if not isinstance(value, str) or not _INDUSTRY_PREFIX_PATTERN.match(value):
        raise _error(
            "industry_prefix",
            "行业代码前缀须为门类字母加0至4位数字 (如 I643)",
            "industry code prefix must be a section letter and 0–4 digits (e.g. I643)",
        )
    return value


def _list_of(value: object) -> list[Any]:
    if not isinstance(value, list):
        raise _error("list", "必须为列表", "must be a list")
    return value


def _non_empty_list(value: list[Any]) -> list[Any]:
    if not value:
        raise _error("non_empty", "不能为空列表", "must not be an empty list")
    return value


def _unique_items(value: list[Any]) -> list[Any]:
    if len(set(value)) != len(value):
        raise _error("unique", "列表中有重复值", "list holds duplicate values")
    return value


PositiveInt = Annotated[int, BeforeValidator(_positive_int)]
NonNegativeInt = Annotated[int, BeforeValidator(_non_negative_int)]
PositiveNumber = Annotated[float, BeforeValidator(_positive_number)]
StrictBool = Annotated[bool, BeforeValidator(_strict_bool)]
Text = Annotated[str, BeforeValidator(_text)]
RuleName = Annotated[str, BeforeValidator(_rule_name)]
TagCode = Annotated[str, BeforeValidator(_one_of("tag", DIGITAL_TAGS, "标签", "tag"))]
EventType = Annotated[
    str, BeforeValidator(_one_of("event_type", ENTERPRISE_EVENT_TYPES, "事件类型", "event type"))
]
SeverityCode = Annotated[
    str, BeforeValidator(_one_of("severity", SEVERITIES, "严重程度", "severity"))
]
ActionCode = Annotated[str, BeforeValidator(_one_of("action", ACTIONS, "处置方式", "action"))]
IndustryPrefix = Annotated[str, BeforeValidator(_industry_prefix)]
Keyword = Annotated[str, BeforeValidator(_text)]


_IsList = BeforeValidator(_list_of)
_Unique = AfterValidator(_unique_items)
_NonEmpty = AfterValidator(_non_empty_list)
IndustryPrefixes = Annotated[list[IndustryPrefix], _IsList, _Unique]
Keywords = Annotated[list[Keyword], _IsList, _Unique]
EventTypes = Annotated[list[EventType], _IsList, _Unique]
NonEmptyEventTypes = Annotated[list[EventType], _IsList, _NonEmpty, _Unique]
NonEmptySeverities = Annotated[list[SeverityCode], _IsList, _NonEmpty, _Unique]
NonEmptyTags = Annotated[list[TagCode], _IsList, _NonEmpty, _Unique]
NonEmptyTexts = Annotated[list[Text], _IsList, _NonEmpty, _Unique]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TagRule(_Strict):
    """Tag firms whose industry code starts with a prefix OR whose business scope has a keyword."""

    name: RuleName
    tag: TagCode
    zh: Text
    en: Text
    industry_prefixes: IndustryPrefixes = Field(default_factory=list)
    scope_keywords: Keywords = Field(default_factory=list)

    @model_validator(mode="after")
    def _matches_something(self) -> TagRule:
        if not self.industry_prefixes and not self.scope_keywords:
            raise _error(
                "tag_rule_empty",
                "标签规则须至少有一个行业代码前缀或经营范围关键词",
                "a tag rule needs at least one industry prefix or business-scope keyword",
            )
        return self


class _TriggerRuleBase(_Strict):
    name: RuleName
    zh: Text
    en: Text
    action: ActionCode
    severity: SeverityCode
    cooldown_days: NonNegativeInt | None = None


class ComplaintSurgeRule(_TriggerRuleBase):
    """Complaints in the last `window_days` ≥ `min_count` AND ≥ multiplier × own baseline.

    The baseline is the firm's complaint rate over the `baseline_days` before the window,
    scaled to one window (shorter when the firm is younger; zero when it has no history).
    """

    kind: Literal["complaint_surge"]
    window_days: PositiveInt
    min_count: PositiveInt
    baseline_days: PositiveInt
    baseline_multiplier: PositiveNumber


class NewEventRule(_TriggerRuleBase):
    """Records of `event_types` (and `severities`, when given) that became known recently.

    `min_count`: at least this many such records within the lookback (a second model hit
    before a visit). `corroborated_by` / `corroboration_days`: fire only when the firm also
    has a record of one of these types known within the last `corroboration_days` (a lone
    weak signal waits for a second, independent one; the corroborating records are shown as
    evidence but not consumed, so they can still fire their own rules).
    """

    kind: Literal["new_event"]
    event_types: NonEmptyEventTypes
    severities: NonEmptySeverities | None = None
    lookback_days: PositiveInt | None = None
    min_count: PositiveInt = 1
    corroborated_by: Annotated[list[EventType], _IsList, _NonEmpty, _Unique] | None = None
    corroboration_days: PositiveInt | None = None

    @model_validator(mode="after")
    def _corroboration_complete(self) -> NewEventRule:
        if (self.corroborated_by is None) != (self.corroboration_days is None):
            raise _error(
                "corroboration",
                "corroborated_by 与 corroboration_days 须同时给出或同时省略",
                "corroborated_by and corroboration_days go together: give both or neither",
            )
        return self


class ClassDropRule(_TriggerRuleBase):
    """The firm's credit-risk class fell (per `class_order`, best first) into `to_classes`."""

    kind: Literal["class_drop"]
    class_order: NonEmptyTexts
    to_classes: NonEmptyTexts
    severity_by_class: dict[str, SeverityCode] = Field(default_factory=dict)

    @field_validator("to_classes", "severity_by_class")
    @classmethod
    def _classes_known(cls, value: Any, info: ValidationInfo) -> Any:
        order = info.data.get("class_order")
        if order is None:  # class_order itself is invalid and already reported
            return value
        unknown = sorted(set(value) - set(order))
        if unknown:
            listed = ", ".join(unknown)
            raise _error(
                "unknown_class",
                f"分类 {listed} 不在 class_order 中",
                f"class {listed} is not in class_order",
            )
        return value


TriggerRule = Annotated[
    ComplaintSurgeRule | NewEventRule | ClassDropRule, Field(discriminator="kind")
]


class TolerancePolicy(_Strict):
    """包容期: first, minor, promptly corrected lapses of young new-industry firms get advice/talk.

    - eligible firm: carries one of `tags` and was established less than `period_days` ago;
    - "minor": the firing's severity is in `tolerated_severities`;
    - "first": the firm has no earlier trigger case and no earlier record of a type in
      `prior_problem_event_types` known before this evaluation (other than the evidence itself);
    - "promptly corrected": every evidence record of a type in `corrected_by` is followed by
      its correcting record (e.g. abnormal_list_out) within `correction_days` of becoming known.
      A tolerated case still uncorrected after that is escalated to the rules' own actions;
      a repeat lapse fires again, is no longer "first", and so gets the full action.
    """

    enabled: StrictBool
    period_days: PositiveInt
    tags: NonEmptyTags
    tolerated_severities: NonEmptySeverities
    action_map: dict[ActionCode, ActionCode]
    prior_problem_event_types: EventTypes
    corrected_by: dict[EventType, EventType] = Field(default_factory=dict)
    correction_days: PositiveInt

    @field_validator("action_map")
    @classmethod
    def _maps_to_lenient_actions(cls, value: dict[str, str]) -> dict[str, str]:
        harsh = sorted(v for v in value.values() if v not in TOLERANCE_ACTIONS)
        if harsh:
            raise _error(
                "tolerance_action",
                f"包容期处置方式只能为 advice 或 talk, 不能为 {', '.join(harsh)}",
                f"tolerance actions must be advice or talk, not {', '.join(harsh)}",
            )
        return value


class DigitalPolicy(_Strict):
    """The `digital:` section: tagging rules, trigger rules and their shared settings."""

    tagging: Annotated[list[TagRule], _IsList, _NonEmpty]
    apply_to_all_firms: StrictBool
    lookback_days: PositiveInt
    cooldown_days: NonNegativeInt
    tolerance: TolerancePolicy
    triggers: Annotated[list[TriggerRule], _IsList, _NonEmpty]

    @field_validator("tagging", "triggers")
    @classmethod
    def _unique_rule_names(cls, rules: list[Any]) -> list[Any]:
        names = [rule.name for rule in rules]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise _error(
                "duplicate_rule",
                f"规则名重复: {', '.join(repeated)}",
                f"duplicate rule names: {', '.join(repeated)}",
            )
        return rules

    @model_validator(mode="wrap")
    @classmethod
    def _bilingual_errors(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> DigitalPolicy:
        """Re-issue pydantic's built-in (English) errors in both languages, paths made readable."""
        try:
            result: DigitalPolicy = handler(data)
        except ValidationError as exc:
            details = [
                InitErrorDetails(
                    type=PydanticCustomError(str(err["type"]), _bilingual_message(err)),
                    loc=_strip_union_tags(tuple(err["loc"])),
                    input=err.get("input"),
                )
                for err in exc.errors()
            ]
            raise ValidationError.from_exception_data(exc.title, details) from None
        return result

    def trigger(self, name: str) -> ComplaintSurgeRule | NewEventRule | ClassDropRule:
        """The trigger rule called `name`."""
        for rule in self.triggers:
            if rule.name == name:
                return rule
        raise KeyError(name)


_BUILTIN_MESSAGES: dict[str, tuple[str, str]] = {
    "missing": ("缺少必填字段", "required field is missing"),
    "extra_forbidden": ("不允许的字段 (拼写错误?)", "unknown field (misspelt?)"),
    "model_type": ("必须为键值映射", "must be a mapping of keys to values"),
    "model_attributes_type": ("必须为键值映射", "must be a mapping of keys to values"),
    "dict_type": ("必须为键值映射", "must be a mapping of keys to values"),
    "list_type": ("必须为列表", "must be a list"),
    "union_tag_not_found": (
        f"缺少规则类型 kind (可选: {', '.join(RULE_KINDS)})",
        f"rule kind is missing (one of: {', '.join(RULE_KINDS)})",
    ),
    "union_tag_invalid": (
        f"未知的规则类型 kind (可选: {', '.join(RULE_KINDS)})",
        f"unknown rule kind (one of: {', '.join(RULE_KINDS)})",
    ),
}


def _bilingual_message(err: Any) -> str:
    if str(err["type"]).startswith("digital_"):
        return str(err["msg"])
    zh, en = _BUILTIN_MESSAGES.get(str(err["type"]), ("取值无效", str(err["msg"])))
    return f"{zh} / {en}"


def _strip_union_tags(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop the discriminator value pydantic inserts after a list index (`triggers.2.new_event`)."""
    kept: list[Any] = []
    for i, part in enumerate(loc):
        if part in RULE_KINDS and i > 0 and isinstance(loc[i - 1], int):
            continue
        kept.append(part)
    return tuple(kept)


def format_location(loc: tuple[Any, ...], root: str = SECTION_KEY) -> str:
    """`("triggers", 2, "window_days")` → `digital.triggers[2].window_days`."""
    text = root
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def policy_error_lines(exc: ValidationError, root: str = SECTION_KEY) -> list[str]:
    """One readable line per problem: `<path> <中文 / English>`."""
    return [
        f"{format_location(_strip_union_tags(tuple(err['loc'])), root)} {err['msg']}"
        for err in exc.errors()
    ]


def parse_digital_policy(data: Any, source: str = "<policy>") -> DigitalPolicy:
    """Validate a `digital:` mapping; raise `TriggerPolicyError` listing every problem."""
    try:
        return DigitalPolicy.model_validate(data)
    except ValidationError as exc:
        lines = "\n".join(f"  {line}" for line in policy_error_lines(exc))
        raise TriggerPolicyError(
            f"{source}: 数字经济监管策略无效 / invalid digital-economy policy:\n{lines}"
        ) from None


def load_trigger_policy(path: str | Path) -> DigitalPolicy:
    """Read a YAML file whose top-level key is `digital:` (tests and tools; serving owns I/O)."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise TriggerPolicyError(f"{path}: YAML 格式错误 / malformed YAML: {exc}") from None
    if not isinstance(document, dict) or SECTION_KEY not in document:
        raise TriggerPolicyError(
            f"{path}: 缺少顶层键 {SECTION_KEY}: / missing top-level key {SECTION_KEY}:"
        )
    return parse_digital_policy(document[SECTION_KEY], source=str(path))


def default_policy_path() -> Path:
    """The packaged default policy file, whose `digital:` section is this policy."""
    return Path(__file__).parent / "policies" / "default.yaml"

"""The `digital:` policy section: the default file is valid, and every validation rule reports
the field path and the rule in Chinese and English."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from supervision.trigger_policy import (
    DigitalPolicy,
    TriggerPolicyError,
    default_policy_path,
    load_trigger_policy,
    parse_digital_policy,
    policy_error_lines,
)


@pytest.fixture(scope="module")
def default_section() -> dict[str, Any]:
    return yaml.safe_load(default_policy_path().read_text(encoding="utf-8"))["digital"]


def rule_index(section: dict[str, Any], name: str) -> int:
    return [r["name"] for r in section["triggers"]].index(name)


def test_default_section_is_valid_and_complete(default_section):
    policy = DigitalPolicy.model_validate(default_section)
    kinds = {rule.kind for rule in policy.triggers}
    assert kinds == {"complaint_surge", "new_event", "class_drop"}
    covered = {t for rule in policy.triggers if rule.kind == "new_event" for t in rule.event_types}
    assert covered >= {
        "monitoring_hit",
        "case_lead",
        "abnormal_list_in",
        "penalty",
        "serious_dishonesty_in",
        "public_opinion",
    }
    assert {rule.tag for rule in policy.tagging} == {
        "platform",
        "live_commerce",
        "online_game",
        "algorithm_service",
        "data_service",
    }


Mutation = Callable[[dict[str, Any]], Any]


def _set(path: list[Any], value: Any) -> Mutation:
    def mutate(section: dict[str, Any]) -> None:
        target = section
        for part in path[:-1]:
            target = target[part] if not callable(part) else part(target)
        target[path[-1]] = value

    return mutate


def _trigger(name: str, key: str, value: Any) -> Mutation:
    def mutate(section: dict[str, Any]) -> None:
        section["triggers"][rule_index(section, name)][key] = value

    return mutate


def _delete(key: str) -> Mutation:
    def mutate(section: dict[str, Any]) -> None:
        del section[key]

    return mutate


def _duplicate_first_trigger(section: dict[str, Any]) -> None:
    section["triggers"].append(copy.deepcopy(section["triggers"][0]))


def _empty_tag_rule(section: dict[str, Any]) -> None:
    section["tagging"][0]["industry_prefixes"] = []
    section["tagging"][0]["scope_keywords"] = []


CASES: list[tuple[str, Mutation, str, str]] = [
    (
        "positive int",
        _trigger("complaint_surge", "window_days", 0),
        "digital.triggers[{complaint_surge}].window_days",
        "必须为正整数 / must be a positive integer",
    ),
    (
        "int not float",
        _trigger("complaint_surge", "min_count", 2.5),
        "digital.triggers[{complaint_surge}].min_count",
        "必须为正整数 / must be a positive integer",
    ),
    (
        "non-negative int",
        _set(["cooldown_days"], -1),
        "digital.cooldown_days",
        "必须为非负整数 / must be a non-negative integer",
    ),
    (
        "positive number",
        _trigger("complaint_surge", "baseline_multiplier", 0),
        "digital.triggers[{complaint_surge}].baseline_multiplier",
        "必须为正数 / must be a positive number",
    ),
    (
        "bool",
        _set(["apply_to_all_firms"], "yes"),
        "digital.apply_to_all_firms",
        "必须为 true 或 false / must be true or false",
    ),
    (
        "text",
        _trigger("case_lead", "zh", "  "),
        "digital.triggers[{case_lead}].zh",
        "必须为非空文本 / must be non-empty text",
    ),
    (
        "rule name",
        _trigger("case_lead", "name", "Case Lead"),
        "digital.triggers[{case_lead}].name",
        "rule name must be lower-case",
    ),
    (
        "tag",
        _set(["tagging", 0, "tag"], "fintech"),
        "digital.tagging[0].tag",
        "标签须为以下之一: platform",
    ),
    (
        "event type",
        _trigger("case_lead", "event_types", ["lead"]),
        "digital.triggers[{case_lead}].event_types[0]",
        "event type must be one of:",
    ),
    (
        "severity",
        _trigger("public_opinion", "severity", "critical"),
        "digital.triggers[{public_opinion}].severity",
        "severity must be one of: minor, general, serious",
    ),
    (
        "action",
        _trigger("case_lead", "action", "fine"),
        "digital.triggers[{case_lead}].action",
        "action must be one of: advice, talk",
    ),
    (
        "industry prefix",
        _set(["tagging", 0, "industry_prefixes"], ["6432"]),
        "digital.tagging[0].industry_prefixes[0]",
        "section letter and 0–4 digits",
    ),
    (
        "list",
        _trigger("case_lead", "event_types", "case_lead"),
        "digital.triggers[{case_lead}].event_types",
        "必须为列表 / must be a list",
    ),
    (
        "non-empty list",
        _trigger("case_lead", "event_types", []),
        "digital.triggers[{case_lead}].event_types",
        "不能为空列表 / must not be an empty list",
    ),
    (
        "unique list",
        _trigger("public_opinion", "severities", ["general", "general"]),
        "digital.triggers[{public_opinion}].severities",
        "列表中有重复值 / list holds duplicate values",
    ),
    (
        "tag rule needs a matcher",
        _empty_tag_rule,
        "digital.tagging[0]",
        "a tag rule needs at least one industry prefix",
    ),
    (
        "class in order",
        _trigger("class_drop", "to_classes", ["E"]),
        "digital.triggers[{class_drop}].to_classes",
        "分类 E 不在 class_order 中 / class E is not in class_order",
    ),
    (
        "lenient tolerance action",
        _set(["tolerance", "action_map", "inspection"], "inspection"),
        "digital.tolerance.action_map",
        "tolerance actions must be advice or talk, not inspection",
    ),
    (
        "duplicate rule",
        _duplicate_first_trigger,
        "digital.triggers",
        "规则名重复: complaint_surge / duplicate rule names: complaint_surge",
    ),
    (
        "missing field",
        _delete("lookback_days"),
        "digital.lookback_days",
        "缺少必填字段 / required field is missing",
    ),
    (
        "unknown field",
        _trigger("case_lead", "window_days", 30),
        "digital.triggers[{case_lead}].window_days",
        "不允许的字段 (拼写错误?) / unknown field (misspelt?)",
    ),
    (
        "unknown kind",
        _trigger("case_lead", "kind", "lead_rule"),
        "digital.triggers[{case_lead}]",
        "未知的规则类型 kind",
    ),
    (
        "tolerance tag",
        _set(["tolerance", "tags"], ["robotics"]),
        "digital.tolerance.tags[0]",
        "tag must be one of:",
    ),
]


@pytest.mark.parametrize(("label", "mutate", "path", "message"), CASES, ids=[c[0] for c in CASES])
def test_each_validation_rule_names_path_and_rule(default_section, label, mutate, path, message):
    section = copy.deepcopy(default_section)
    indices = {rule["name"]: i for i, rule in enumerate(default_section["triggers"])}
    mutate(section)
    with pytest.raises(ValidationError) as caught:
        DigitalPolicy.model_validate(section)
    lines = policy_error_lines(caught.value)
    expected = path.format(**indices)
    assert any(line.startswith(expected + " ") and message in line for line in lines), lines


def test_errors_stay_bilingual_when_nested_in_the_policy_root(default_section):
    section = copy.deepcopy(default_section)
    section["triggers"][2]["lookback_days"] = 0
    with pytest.raises(ValidationError) as caught:
        DigitalPolicy.model_validate(section)
    (error,) = caught.value.errors()
    assert error["loc"] == ("triggers", 2, "lookback_days")  # union tag removed from the path
    assert error["msg"] == "必须为正整数 / must be a positive integer"


def test_bad_policy_files_name_the_file(tmp_path: Path, default_section):
    broken = copy.deepcopy(default_section)
    broken["triggers"][0]["window_days"] = "thirty"
    bad = tmp_path / "digital.yaml"
    bad.write_text(yaml.safe_dump({"digital": broken}, allow_unicode=True), encoding="utf-8")
    with pytest.raises(TriggerPolicyError) as caught:
        load_trigger_policy(bad)
    text = str(caught.value)
    assert str(bad) in text and "invalid digital-economy policy" in text
    assert "digital.triggers[0].window_days 必须为正整数 / must be a positive integer" in text

    no_section = tmp_path / "other.yaml"
    no_section.write_text("sampling: {}\n", encoding="utf-8")
    with pytest.raises(TriggerPolicyError, match="missing top-level key digital"):
        load_trigger_policy(no_section)

    malformed = tmp_path / "malformed.yaml"
    malformed.write_text("digital: [unclosed\n", encoding="utf-8")
    with pytest.raises(TriggerPolicyError, match="malformed YAML"):
        load_trigger_policy(malformed)

    with pytest.raises(TriggerPolicyError, match="must be a mapping"):
        parse_digital_policy(["not", "a", "mapping"])

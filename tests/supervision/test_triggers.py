"""Trigger engine: each rule fires on a hand-made frame and not below its threshold, point in
time, one case per firm, updates, cool-down, tolerance period and "无事不扰" flags."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from features.contract import ENTERPRISE_EVENTS, ENTERPRISES
from features.snapshot import coerce_types
from features.uscc import check_character
from supervision.tagging import tag_enterprises
from supervision.trigger_policy import (
    DigitalPolicy,
    TriggerPolicyError,
    default_policy_path,
    load_trigger_policy,
    parse_digital_policy,
)
from supervision.triggers import (
    TriggerInputError,
    case_id_for,
    close_cases,
    describe_case,
    evaluate_triggers,
    merge_case_book,
    undisturbed_flags,
)

AS_OF = pd.Timestamp("2024-06-01")


def uscc(n: int) -> str:
    first17 = f"91440101MA{n:07d}"
    return first17 + check_character(first17)


PLATFORM = uscc(1)  # tagged by industry code, old firm (no tolerance)
YOUNG = uscc(2)  # tagged, established 2023 (tolerance period)
PLAIN = uscc(3)  # not digital


def enterprises() -> pd.DataFrame:
    rows = [
        (PLATFORM, "I6432", "2015-03-01", "网络平台服务"),
        (YOUNG, "I6513", "2023-09-01", "应用软件开发"),
        (PLAIN, "C1311", "2010-01-01", "粮食加工"),
    ]
    frame = pd.DataFrame(
        {
            "uscc": [r[0] for r in rows],
            "name": ["甲公司", "乙公司", "丙公司"],
            "industry_code": [r[1] for r in rows],
            "entity_type": "limited_company",
            "ownership_type": "private",
            "registered_capital": 100.0,
            "established_date": [r[2] for r in rows],
            "street": "华洲街道",
            "registered_address": "广州市海珠区",
            "legal_rep_id": ["p1", "p2", "p3"],
            "legal_rep_name": ["张三", "李四", "王五"],
            "business_scope": [r[3] for r in rows],
            "status": "active",
        }
    )
    return coerce_types(ENTERPRISES, frame)


_counter = iter(range(1, 100_000))


def event(
    firm: str,
    event_type: str,
    known: str,
    *,
    occurred: str | None = None,
    severity: str | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    return {
        "event_id": event_id or f"E{next(_counter):05d}",
        "uscc": firm,
        "event_type": event_type,
        "occurred_date": occurred or known,
        "known_date": known,
        "severity": severity,
    }


def events(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return coerce_types(ENTERPRISE_EVENTS, pd.DataFrame(rows, columns=list(rows[0])))


def snapshot(rows: list[dict[str, Any]]) -> dict[str, pd.DataFrame]:
    return {"enterprises": enterprises(), "enterprise_events": events(rows)}


@pytest.fixture(scope="module")
def default() -> DigitalPolicy:
    return load_trigger_policy(default_policy_path())


@pytest.fixture(scope="module")
def policy(default: DigitalPolicy) -> DigitalPolicy:
    """The engine's semantics are tested on single records: the default rules, but a lone minor
    model hit or penalty fires (the default policy's corroboration is tested below)."""
    rules = [
        rule.model_copy(update={"corroborated_by": None, "corroboration_days": None})
        if rule.name in ("monitoring_minor", "new_penalty") else rule
        for rule in default.triggers
    ]
    return default.model_copy(update={"triggers": rules})


def run(
    rows: list[dict[str, Any]],
    policy: DigitalPolicy,
    *,
    as_of: pd.Timestamp = AS_OF,
    classes: pd.DataFrame | None = None,
    book: pd.DataFrame | None = None,
) -> Any:
    snap = snapshot(rows)
    tags = tag_enterprises(snap["enterprises"], None, policy, as_of)
    return evaluate_triggers(
        snap, as_of, tags=tags, classes=classes, open_cases=book, policy=policy
    )


def complaints(firm: str, dates: list[str]) -> list[dict[str, Any]]:
    return [event(firm, "complaint", d) for d in dates]


# --- each rule type ------------------------------------------------------------------------


def test_complaint_surge_fires_with_observed_values_and_bilingual_text(policy):
    rows = complaints(PLATFORM, ["2024-05-10", "2024-05-20", "2024-05-25", "2024-05-30"])
    rows += complaints(PLATFORM, ["2023-09-01", "2023-12-01"])  # baseline 2 in 365 days
    result = run(rows, policy)
    assert result.opened == (case_id_for(PLATFORM, AS_OF),)
    case = result.cases.iloc[0]
    assert case["action"] == "inspection" and case["rules_fired"] == ["complaint_surge"]
    item = case["evidence"][0]
    assert item["observed"] == {"count": 4, "baseline": 0.16}
    assert item["zh"] == "30天内投诉4次 (阈值3次, 基线0.16次)"
    assert item["en"] == "4 complaints in 30 days (threshold 3, baseline 0.16)"
    assert len(item["event_ids"]) == 4


def test_complaint_surge_needs_count_threshold(policy):
    rows = complaints(PLATFORM, ["2024-05-20", "2024-05-25"])
    assert run(rows, policy).cases.empty


def test_complaint_surge_needs_to_exceed_own_baseline(policy):
    # 3 in the window but 30 in the previous year: baseline 30*30/365 ≈ 2.47, 2× ≈ 4.9 > 3
    history = [str(pd.Timestamp("2023-05-10") + pd.Timedelta(days=11 * i))[:10] for i in range(30)]
    rows = complaints(PLATFORM, history) + complaints(
        PLATFORM, ["2024-05-20", "2024-05-25", "2024-05-30"]
    )
    result = run(rows, policy)
    assert result.cases.empty


def test_monitoring_hit_severity_sets_the_action(policy):
    minor = run([event(PLATFORM, "monitoring_hit", "2024-05-20", severity="minor")], policy)
    assert minor.cases.iloc[0]["action"] == "correction_notice"
    assert minor.cases.iloc[0]["rules_fired"] == ["monitoring_minor"]
    serious = run([event(PLATFORM, "monitoring_hit", "2024-05-20", severity="serious")], policy)
    assert serious.cases.iloc[0]["action"] == "inspection"
    assert serious.cases.iloc[0]["severity"] == "serious"
    assert serious.cases.iloc[0]["rules_fired"] == ["monitoring_serious"]


@pytest.mark.parametrize(
    ("event_type", "rule"),
    [
        ("case_lead", "case_lead"),
        ("abnormal_list_in", "abnormal_list_entry"),
        ("penalty", "new_penalty"),
        ("serious_dishonesty_in", "serious_dishonesty"),
    ],
)
def test_new_entries_fire_within_lookback_only(policy, event_type, rule):
    fresh = run([event(PLATFORM, event_type, "2024-05-15")], policy)
    assert list(fresh.cases["rules_fired"]) == [[rule]]
    old = run([event(PLATFORM, event_type, "2024-04-01")], policy)  # 61 days > lookback 30
    assert old.cases.empty


def test_public_opinion_needs_general_severity(policy):
    minor = [event(PLATFORM, "public_opinion", "2024-05-20", severity="minor")]
    assert run(minor, policy).cases.empty
    fired = run([event(PLATFORM, "public_opinion", "2024-05-20", severity="general")], policy)
    assert list(fired.cases["rules_fired"]) == [["public_opinion"]]


def classes_frame(current: str, previous: str | None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "uscc": [PLATFORM],
            "class": [current],
            "previous_class": [previous],
            "probability": [0.42],
            "reasons": [["近一年行政处罚2次 / 2 penalties in the last year"]],
        }
    )


def test_class_drop_fires_only_on_a_fall_into_c_or_d(policy):
    dropped = run([event(PLATFORM, "annual_report", "2024-05-01")], policy,
                  classes=classes_frame("D", "B"))
    case = dropped.cases.iloc[0]
    assert case["rules_fired"] == ["class_drop"] and case["severity"] == "serious"
    assert case["risk_class"] == "D" and case["previous_class"] == "B"
    assert case["probability"] == pytest.approx(0.42)
    assert case["reasons"] == ["近一年行政处罚2次 / 2 penalties in the last year"]
    assert case["evidence"][0]["en"] == "risk class fell from B to D"
    for current, previous in [("C", "C"), ("B", "A"), ("C", "D"), ("C", None)]:
        result = run([event(PLATFORM, "annual_report", "2024-05-01")], policy,
                     classes=classes_frame(current, previous))
        assert result.cases.empty, (current, previous)


def test_class_drop_fires_once_per_classification(policy):
    rows = [event(PLATFORM, "annual_report", "2024-05-01")]
    classes = classes_frame("C", "B").assign(classified_on=pd.Timestamp("2024-05-31"))
    first = run(rows, policy, classes=classes)
    book = close_cases(merge_case_book(None, first), first.opened, "2024-06-02")
    later = pd.Timestamp("2024-10-01")  # past the cool-down, same classification run
    assert run(rows, policy, as_of=later, classes=classes, book=book).cases.empty
    rerun = classes.assign(classified_on=pd.Timestamp("2024-09-30"))
    assert run(rows, policy, as_of=later, classes=rerun, book=book).opened


def test_untagged_firms_are_ignored_unless_policy_says_all(policy):
    rows = [event(PLAIN, "case_lead", "2024-05-20")]
    assert run(rows, policy).cases.empty
    everyone = policy.model_copy(update={"apply_to_all_firms": True})
    assert list(run(rows, everyone).cases["uscc"]) == [PLAIN]


# --- point in time -------------------------------------------------------------------------


def test_records_known_on_or_after_as_of_are_ignored(policy):
    past = [event(PLATFORM, "monitoring_hit", "2024-05-20", severity="minor", event_id="M1")]
    future = [
        event(PLATFORM, "case_lead", "2024-06-01", occurred="2024-05-01"),  # known on as_of
        event(PLATFORM, "penalty", "2024-07-01", occurred="2024-05-10"),
        *complaints(PLATFORM, ["2024-06-02", "2024-06-03", "2024-06-04"]),
    ]
    base = run(past, policy)
    with_future = run(past + future, policy)
    pd.testing.assert_frame_equal(base.cases, with_future.cases)
    assert list(with_future.firings["rule"]) == ["monitoring_minor"]


# --- one case per firm, updates, cool-down --------------------------------------------------


def test_two_rules_one_case_with_two_evidence_items(policy):
    rows = [
        event(PLATFORM, "case_lead", "2024-05-20"),
        event(PLATFORM, "monitoring_hit", "2024-05-21", severity="minor"),
    ]
    result = run(rows, policy)
    assert len(result.cases) == 1
    case = result.cases.iloc[0]
    assert sorted(case["rules_fired"]) == ["case_lead", "monitoring_minor"]
    assert len(case["evidence"]) == 2
    assert case["action"] == "inspection"  # strongest of inspection and correction notice
    zh, en = describe_case(case)
    assert zh.startswith("现场检查: ") and "转办交办线索" in zh
    assert en.startswith("on-site inspection: ")


def test_open_case_is_updated_not_duplicated_and_evidence_not_reused(policy):
    first_rows = [event(PLATFORM, "monitoring_hit", "2024-05-20", severity="minor")]
    first = run(first_rows, policy)
    book = merge_case_book(None, first)
    later = AS_OF + pd.Timedelta(days=7)
    same = run(first_rows, policy, as_of=later, book=book)
    assert same.cases.empty  # the same record does not fire twice
    more = [*first_rows, event(PLATFORM, "case_lead", "2024-06-03")]
    second = run(more, policy, as_of=later, book=book)
    assert second.opened == () and second.updated == (first.opened[0],)
    case = second.cases.iloc[0]
    assert case["opened_on"] == AS_OF and case["updated_on"] == later
    assert case["rules_fired"] == ["monitoring_minor", "case_lead"]
    assert case["action"] == "inspection"
    assert len(merge_case_book(book, second)) == 1


def test_cool_down_blocks_same_rule_same_severity_but_not_higher(policy):
    first = run([event(PLATFORM, "monitoring_hit", "2024-05-20", severity="general")], policy)
    book = close_cases(merge_case_book(None, first), first.opened, "2024-06-10")
    later = pd.Timestamp("2024-07-01")  # 21 days after closing < 90-day cool-down
    again = [
        event(PLATFORM, "monitoring_hit", "2024-05-20", severity="general"),
        event(PLATFORM, "monitoring_hit", "2024-06-20", severity="general"),
    ]
    blocked = run(again, policy, as_of=later, book=book)
    assert blocked.cases.empty
    assert list(blocked.firings["outcome"]) == ["suppressed_cooldown"]
    worse = [event(PLATFORM, "monitoring_hit", "2024-06-20", severity="serious")]
    reopened = run(worse, policy, as_of=later, book=book)
    assert reopened.opened == (case_id_for(PLATFORM, later),)
    other_rule = [event(PLATFORM, "case_lead", "2024-06-20")]
    assert run(other_rule, policy, as_of=later, book=book).opened
    after_cooldown = pd.Timestamp("2024-09-10")  # 92 days after closing
    late = [event(PLATFORM, "monitoring_hit", "2024-09-01", severity="general")]
    assert run(late, policy, as_of=after_cooldown, book=book).opened


def test_case_book_is_read_point_in_time(policy):
    first = run([event(PLATFORM, "case_lead", "2024-05-20")], policy)
    book = close_cases(merge_case_book(None, first), first.opened, "2024-08-01")
    # at 2024-07-01 the case was still open: a new record updates it
    result = run([event(PLATFORM, "penalty", "2024-06-20")], policy,
                 as_of=pd.Timestamp("2024-07-01"), book=book)
    assert result.updated == first.opened
    assert result.cases.iloc[0]["status"] == "open"


# --- tolerance period (包容期) ---------------------------------------------------------------


def test_first_minor_lapse_of_young_firm_gets_advice_not_correction_notice(policy):
    result = run([event(YOUNG, "monitoring_hit", "2024-05-20", severity="minor")], policy)
    case = result.cases.iloc[0]
    assert bool(case["tolerated"]) and case["action"] == "advice"
    assert case["evidence"][0]["action"] == "correction_notice"


def with_action(policy: DigitalPolicy, rule_name: str, action: str) -> DigitalPolicy:
    """The policy with one trigger rule's action changed (a district's own choice)."""
    rules = [
        rule.model_copy(update={"action": action}) if rule.name == rule_name else rule
        for rule in policy.triggers
    ]
    return policy.model_copy(update={"triggers": rules})


@pytest.fixture(scope="module")
def visiting(policy) -> DigitalPolicy:
    """A district that visits firms put on the abnormal-operation list."""
    return with_action(policy, "abnormal_list_entry", "inspection")


def test_abnormal_list_entry_in_tolerance_gets_talk_and_escalates_if_not_corrected(visiting):
    policy = visiting
    entry = event(YOUNG, "abnormal_list_in", "2024-05-20", event_id="AB1")
    first = run([entry], policy)
    case = first.cases.iloc[0]
    assert bool(case["tolerated"]) and case["action"] == "talk"
    assert case["pending_corrections"] == ["AB1"]
    assert case["correct_by"] == pd.Timestamp("2024-06-19")
    book = merge_case_book(None, first)
    late = pd.Timestamp("2024-06-25")
    escalated = run([entry], policy, as_of=late, book=book)
    assert escalated.updated == first.opened
    case = escalated.cases.iloc[0]
    assert not bool(case["tolerated"]) and case["action"] == "inspection"
    assert case["evidence"][-1]["kind"] == "tolerance_lapsed"
    corrected = [entry, event(YOUNG, "abnormal_list_out", "2024-06-05")]
    kept = run(corrected, policy, as_of=late, book=book).cases.iloc[0]
    assert bool(kept["tolerated"]) and kept["action"] == "talk"
    assert kept["evidence"][-1]["kind"] == "tolerance_corrected"


def test_tolerance_needs_first_minor_and_young_firm(policy, visiting):
    earlier = event(YOUNG, "penalty", "2024-01-10")
    not_first = run([earlier, event(YOUNG, "monitoring_hit", "2024-05-20", severity="minor")],
                    policy)
    assert not_first.cases.iloc[0]["action"] == "correction_notice"
    not_minor = run([event(YOUNG, "monitoring_hit", "2024-05-20", severity="general")], policy)
    assert not_minor.cases.iloc[0]["action"] == "inspection"
    old_firm = run([event(PLATFORM, "monitoring_hit", "2024-05-20", severity="minor")], policy)
    assert not bool(old_firm.cases.iloc[0]["tolerated"])
    overdue = run([event(YOUNG, "abnormal_list_in", "2024-04-25", occurred="2024-04-20")],
                  visiting.model_copy(update={"lookback_days": 60}))
    assert overdue.cases.iloc[0]["action"] == "inspection"  # 37 days uncorrected at as_of


def test_repeat_lapse_ends_tolerance(policy):
    first = run([event(YOUNG, "monitoring_hit", "2024-05-20", severity="minor")], policy)
    book = merge_case_book(None, first)
    rows = [
        event(YOUNG, "monitoring_hit", "2024-05-20", severity="minor"),
        event(YOUNG, "monitoring_hit", "2024-06-05", severity="minor"),
    ]
    second = run(rows, policy, as_of=pd.Timestamp("2024-06-10"), book=book).cases.iloc[0]
    assert not bool(second["tolerated"]) and second["action"] == "correction_notice"


# --- 无事不扰 and input errors ---------------------------------------------------------------


def test_undisturbed_flags_mark_tagged_firms_without_open_case(policy):
    first = run([event(PLATFORM, "case_lead", "2024-05-20")], policy)
    book = merge_case_book(None, first)
    tags = tag_enterprises(enterprises(), None, policy, AS_OF)
    flags = undisturbed_flags(tags, book, AS_OF)
    assert flags.name == "digital_undisturbed"
    assert flags.to_dict() == {PLATFORM: False, YOUNG: True}
    closed = close_cases(book, first.opened, "2024-07-01")
    assert undisturbed_flags(tags, closed, "2024-07-02").to_dict() == {PLATFORM: True, YOUNG: True}
    assert not undisturbed_flags(tags, closed, "2024-06-15")[PLATFORM]  # still open then
    assert undisturbed_flags(tags, None, AS_OF).all()


def test_closing_cases_leaves_the_given_book_untouched(policy):
    book = merge_case_book(None, run([event(PLATFORM, "case_lead", "2024-05-20")], policy))
    closed = close_cases(book, book["case_id"], "2024-06-20")
    assert list(book["status"]) == ["open"] and list(closed["status"]) == ["closed"]
    assert closed["closed_on"].iloc[0] == pd.Timestamp("2024-06-20")


def test_bad_inputs_get_bilingual_errors(policy):
    snap = snapshot([event(PLATFORM, "case_lead", "2024-05-20")])
    tags = tag_enterprises(snap["enterprises"], None, policy, AS_OF)
    with pytest.raises(TriggerInputError, match="case book lacks columns"):
        evaluate_triggers(snap, AS_OF, tags=tags, classes=None,
                          open_cases=pd.DataFrame({"uscc": []}), policy=policy)
    bad_status = merge_case_book(None, run([event(PLATFORM, "case_lead", "2024-05-10")], policy))
    bad_status["status"] = "pending"
    with pytest.raises(TriggerInputError, match="case status must be open or closed"):
        evaluate_triggers(snap, AS_OF, tags=tags, classes=None, open_cases=bad_status,
                          policy=policy)
    with pytest.raises(TriggerInputError, match="分类结果须有"):
        evaluate_triggers(snap, AS_OF, tags=tags, classes=pd.DataFrame({"uscc": [PLATFORM]}),
                          open_cases=None, policy=policy)
    with pytest.raises(TriggerInputError, match="snapshot lacks table enterprise_events"):
        evaluate_triggers({"enterprises": snap["enterprises"]}, AS_OF, tags=tags,
                          classes=None, open_cases=None, policy=policy)


# --- the default policy's corroboration and min_count ---------------------------------------


def test_default_minor_model_hit_waits_for_a_second_independent_signal(default):
    hit = event(PLATFORM, "monitoring_hit", "2024-05-20", severity="minor", event_id="M1")
    assert run([hit], default).cases.empty
    stale = event(PLATFORM, "complaint", "2024-02-01", event_id="C0")  # > 90 days before
    assert run([hit, stale], default).cases.empty
    complaint = event(PLATFORM, "complaint", "2024-04-10", event_id="C1")
    case = run([hit, complaint], default).cases.iloc[0]
    assert case["rules_fired"] == ["monitoring_minor"]
    item = case["evidence"][0]
    assert item["event_ids"] == ["M1"]  # the corroborating record is shown, not consumed
    assert item["observed"]["corroborating_records"] == ["C1"]
    assert item["threshold"]["corroboration_days"] == 90
    assert "佐证记录 C1" in item["zh"] and "corroborated by C1" in item["en"]
    second = event(PLATFORM, "monitoring_hit", "2024-04-01", severity="minor", event_id="M0")
    assert list(run([hit, second], default).cases["rules_fired"]) == [["monitoring_minor"]]


def test_default_policy_follows_a_penalty_up_only_when_the_problem_may_be_back(default):
    penalty = event(PLATFORM, "penalty", "2024-05-15", event_id="P1")
    assert run([penalty], default).cases.empty
    opinion = event(PLATFORM, "public_opinion", "2024-05-25", severity="minor", event_id="O1")
    case = run([penalty, opinion], default).cases.iloc[0]
    assert case["rules_fired"] == ["new_penalty"] and case["action"] == "talk"


def test_min_count_needs_that_many_new_records(policy):
    rules = [r.model_copy(update={"min_count": 2}) if r.name == "monitoring_minor" else r
             for r in policy.triggers]
    twice = policy.model_copy(update={"triggers": rules})
    one = [event(PLATFORM, "monitoring_hit", "2024-05-20", severity="minor")]
    assert run(one, twice).cases.empty
    two = [*one, event(PLATFORM, "monitoring_hit", "2024-05-25", severity="minor")]
    case = run(two, twice).cases.iloc[0]
    assert case["evidence"][0]["threshold"]["min_count"] == 2


def test_corroboration_needs_both_fields_with_a_bilingual_error(default):
    section = default.model_dump(mode="json")
    section["triggers"][1]["corroboration_days"] = None
    section["triggers"][1].pop("corroboration_days")
    with pytest.raises(TriggerPolicyError) as error:
        parse_digital_policy(section, source="district.yaml")
    text = str(error.value)
    assert "digital.triggers[1]" in text and "corroborated_by" in text
    assert "须同时给出" in text and "give both or neither" in text

"""Results recording, the public export (masked, no classes) and publication deadlines."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest
from test_campaign_synthetic import default_policy, inspectors, roster

from supervision.publication import (
    ResultsError,
    add_working_days,
    mask_certificate,
    mask_name,
    publication_deadlines,
    publishable_results,
    record_results,
    results_as_inspections,
    to_csv_text,
    to_json_text,
    working_days_between,
)
from supervision.visits import JointVisits, merge_joint_visits

CALENDAR = default_policy().publication


def _visits() -> tuple[pd.DataFrame, JointVisits]:
    firms = roster(10)
    a, b = firms.index[0], firms.index[1]
    tasks = pd.DataFrame([
        {"campaign_id": "M-01", "department": "market", "uscc": a,
         "check_items": "annual_report;license", "planned_date": dt.date(2025, 4, 1),
         "inspectors": "MAR000;MAR001", "class": "D", "stratum": "D",
         "inclusion_probability": 1.0},
        {"campaign_id": "T-01", "department": "tax", "uscc": a, "check_items": "invoice",
         "planned_date": dt.date(2025, 4, 3), "inspectors": "TAX000;TAX001", "class": "D",
         "stratum": "D", "inclusion_probability": 0.5},
        {"campaign_id": "M-01", "department": "market", "uscc": b,
         "check_items": "annual_report;license", "planned_date": dt.date(2025, 4, 1),
         "inspectors": "MAR002;MAR003", "class": "A", "stratum": "A",
         "inclusion_probability": 0.02},
    ])
    return firms, merge_joint_visits(tasks, 30)


def _outcomes(joint: JointVisits) -> pd.DataFrame:
    items = joint.items
    outcome = {"annual_report": "disclosure_failure", "license": "no_problem",
               "invoice": "order_to_correct"}
    return pd.DataFrame({
        "visit_id": items["visit_id"], "check_item": items["check_item"],
        "outcome": items["check_item"].map(outcome), "inspection_date": "2025-04-08",
    })


def _staff() -> pd.DataFrame:
    return pd.concat([inspectors(4, "market"), inspectors(2, "tax")], ignore_index=True)


def test_results_are_recorded_per_visit_and_item() -> None:
    _, joint = _visits()
    results = record_results(joint.items, _outcomes(joint).iloc[:4])
    assert len(results) == 5
    assert results["outcome"].isna().sum() == 1  # the fifth item is still pending
    assert set(results["department"]) == {"market", "tax"}


def test_bad_results_are_rejected_naming_row_column_and_rule() -> None:
    _, joint = _visits()
    outcomes = _outcomes(joint)
    outcomes.loc[1, "outcome"] = "fined"
    outcomes.loc[2, "check_item"] = "food_safety"
    outcomes = pd.concat([outcomes, outcomes.iloc[[0]]], ignore_index=True)
    with pytest.raises(ResultsError) as caught:
        record_results(joint.items, outcomes)
    message = str(caught.value)
    assert "row 2, outcome" in message and "outcome_allowed" in message
    assert "row 3, visit_id/check_item" in message and "item_in_visit" in message
    assert "row 6, check_item" in message and "unique_result" in message


def test_public_export_masks_personal_data_and_leaves_classes_out() -> None:
    firms, joint = _visits()
    results = record_results(joint.items, _outcomes(joint))
    public = publishable_results(results, firms, _staff())
    assert len(public) == 5
    internal = {"class", "stratum", "probability", "top_reasons", "inclusion_probability",
                "legal_rep_name", "certificate_no"}
    assert not internal & set(public.columns)
    texts = [to_csv_text(public), to_json_text(public)]
    staff = _staff()
    for text in texts:
        for name in firms["legal_rep_name"].iloc[:2]:
            assert name not in text
        for name, number in zip(staff["name"], staff["certificate_no"], strict=True):
            assert name not in text and number not in text
        assert "行政处罚" not in text  # model reasons are internal
    first = public.loc[public["uscc"] == firms.index[0]].iloc[0]
    assert first["legal_representative"] == mask_name(firms["legal_rep_name"].iloc[0])
    assert first["inspectors"] == "王***(4401********00);李***(4401********01)"
    records = json.loads(texts[1])
    assert {r["outcome_label"] for r in records} >= {"未按规定公示 / disclosure failure"}


def test_export_refuses_internal_columns() -> None:
    firms, joint = _visits()
    public = publishable_results(record_results(joint.items, _outcomes(joint)), firms, _staff())
    with pytest.raises(ResultsError, match="class"):
        to_csv_text(public.assign(**{"class": "D"}))


def test_masking_rules() -> None:
    assert mask_name("张三丰") == "张**"
    assert mask_name("欧阳娜娜") == "欧***"
    assert mask_name("李") == "*"
    assert mask_name(None) == ""
    assert mask_certificate("44010519000012") == "4401********12"
    assert mask_certificate("A123") == "A***"


def test_deadline_counts_working_days_over_weekends() -> None:
    plain = CALENDAR.model_copy(update={"holidays": [], "adjusted_working_days": []})
    friday = dt.date(2025, 3, 7)
    assert add_working_days(friday, 1, plain) == dt.date(2025, 3, 10)
    assert add_working_days(friday, 20, plain) == dt.date(2025, 4, 4)
    assert working_days_between(friday, dt.date(2025, 4, 4), plain) == 20


def test_deadline_skips_holidays_and_counts_adjusted_working_days() -> None:
    # Checked on Friday 26 Sep 2025: Sunday 28 Sep and Saturday 11 Oct are working days
    # (调休), 1–8 Oct are holidays.
    assert add_working_days(dt.date(2025, 9, 26), 1, CALENDAR) == dt.date(2025, 9, 28)
    assert add_working_days(dt.date(2025, 9, 26), 4, CALENDAR) == dt.date(2025, 10, 9)
    assert add_working_days(dt.date(2025, 9, 26), 6, CALENDAR) == dt.date(2025, 10, 11)
    assert add_working_days(dt.date(2025, 9, 26), 20, CALENDAR) == dt.date(2025, 10, 30)


def test_deadline_tracking_flags_due_overdue_and_published() -> None:
    _, joint = _visits()
    outcomes = _outcomes(joint)
    outcomes["published_date"] = pd.NA
    first_visit = joint.items["visit_id"].iloc[0]
    outcomes.loc[outcomes["visit_id"] == first_visit, "published_date"] = "2025-04-20"
    results = record_results(joint.items, outcomes)
    due = publication_deadlines(results, CALENDAR, today=dt.date(2025, 4, 15))
    assert set(due["deadline"]) == {dt.date(2025, 5, 8)}  # 8 Apr + 20: 27 Apr on, 1–5 May off
    status = dict(zip(due["visit_id"] + "/" + due["campaign_id"], due["status"], strict=True))
    assert status[f"{first_visit}/M-01"] == "published"
    assert "due" in status.values()
    late = publication_deadlines(results, CALENDAR, today=dt.date(2025, 5, 12))
    assert (late.loc[late["published_date"].isna(), "status"] == "overdue").all()


def test_results_become_inspection_rows_with_the_worst_outcome() -> None:
    _, joint = _visits()
    results = record_results(joint.items, _outcomes(joint))
    rows = results_as_inspections(results, known_date=dt.date(2025, 4, 9))
    assert len(rows) == 3  # two campaigns on the joint visit + one single visit
    market = rows.loc[rows["campaign_id"] == "M-01"]
    assert set(market["outcome"]) == {"disclosure_failure"}
    assert set(market["check_items"]) == {"annual_report;license"}
    assert (rows["source"] == "random_draw").all()
    assert rows["inspection_id"].is_unique

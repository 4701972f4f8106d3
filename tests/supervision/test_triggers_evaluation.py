"""Trigger-policy evaluation: the replay's figures on a hand-made district whose answer is known."""

from __future__ import annotations

import pandas as pd
import pytest

from features.uscc import check_character
from supervision.trigger_evaluation import EvaluationSettings, evaluate_trigger_policy
from supervision.trigger_policy import default_policy_path, load_trigger_policy


def uscc(n: int) -> str:
    first17 = f"91440105MA{n:07d}"
    return first17 + check_character(first17)


CAUGHT, FALSE_ALARM, SILENT, PLAIN = (uscc(i) for i in range(11, 15))
DATES = list(pd.date_range("2024-01-01", "2024-07-29", freq="14D"))


def string_tables() -> dict[str, pd.DataFrame]:
    """Contract tables as a district (or the simulator) exports them: text and ISO dates."""
    firms = [CAUGHT, FALSE_ALARM, SILENT, PLAIN]
    enterprises = pd.DataFrame(
        {
            "uscc": firms,
            "name": ["甲", "乙", "丙", "丁"],
            "industry_code": ["I6432", "I6450", "F5292", "C1311"],
            "entity_type": "limited_company",
            "ownership_type": "private",
            "registered_capital": "100",
            "employees": "",
            "established_date": "2015-01-01",
            "street": "江南中街道",
            "registered_address": "广州市海珠区",
            "legal_rep_id": ["a", "b", "c", "d"],
            "legal_rep_name": "某",
            "business_scope": "",
            "status": "active",
            "status_date": None,
        }
    )
    events = pd.DataFrame(
        {
            "event_id": ["E1", "E2", "E3"],
            "uscc": [CAUGHT, FALSE_ALARM, PLAIN],
            "event_type": ["monitoring_hit", "monitoring_hit", "case_lead"],
            "occurred_date": ["2024-03-04", "2024-04-10", "2024-03-01"],
            "known_date": ["2024-03-05", "2024-04-11", "2024-03-02"],
            "severity": ["serious", "minor", None],
        }
    )
    return {"enterprises": enterprises, "enterprise_events": events}


def truth() -> dict[str, pd.DataFrame]:
    return {
        "digital_problems": pd.DataFrame(
            {
                "uscc": [CAUGHT, SILENT],
                "problem_start": ["2024-03-01", "2024-02-01"],
                "problem_end": ["2024-05-15", None],
                "serious": [True, False],
            }
        )
    }


def lone_minor_hits_fire(policy):
    """The default rules, but a lone minor model hit opens a case (no corroboration)."""
    rules = [r.model_copy(update={"corroborated_by": None, "corroboration_days": None})
             if r.name == "monitoring_minor" else r for r in policy.triggers]
    return policy.model_copy(update={"triggers": rules})


@pytest.fixture(scope="module")
def evaluation():
    policy = lone_minor_hits_fire(load_trigger_policy(default_policy_path()))
    settings = EvaluationSettings(case_duration_days=30, catch_days=30, routine_ratio=0.1,
                                  floor_ratio=0.02)
    return evaluate_trigger_policy(string_tables(), truth(), policy, DATES, settings=settings)


def test_precision_lift_and_recall(evaluation):
    m = evaluation["metrics"]
    assert m["cases_opened"] == 2  # untagged PLAIN's case lead is not watched
    assert m["trigger_precision"] == pytest.approx(0.5)
    per_date = evaluation["per_date"]
    assert (per_date["tagged_firms"] == 3).all()
    # a random check of a tagged firm: CAUGHT sick 3/1–5/15, SILENT sick from 2/1
    expected = per_date["with_true_problem"].sum() / (3 * len(DATES))
    assert m["random_check_hit_rate"] == pytest.approx(expected)
    assert m["precision_lift"] == pytest.approx(0.5 / expected)
    assert m["true_problems"] == 2 and m["true_problems_caught"] == 1
    assert m["recall"] == pytest.approx(0.5)


def test_time_to_case_and_serious_catch(evaluation):
    problems = evaluation["problems"].set_index("uscc")
    # the hit became known 2024-03-05; the next fortnightly evaluation is 2024-03-11
    assert problems.loc[CAUGHT, "case_date"] == pd.Timestamp("2024-03-11")
    assert problems.loc[CAUGHT, "days_to_case"] == 10
    assert problems.loc[CAUGHT, "first_record"] == pd.Timestamp("2024-03-05")
    assert bool(problems.loc[CAUGHT, "reached_in_time"])
    assert pd.isna(problems.loc[SILENT, "first_record"])
    m = evaluation["metrics"]
    assert m["median_days_problem_start_to_case"] == 10
    assert m["serious_measurable"] == 1
    assert m["serious_reached_within_catch_days"] == pytest.approx(1.0)


def test_inspections_avoided_against_routine_sampling(evaluation):
    m = evaluation["metrics"]
    years = 14 * len(DATES) / 365.0
    assert m["routine_inspections"] == pytest.approx(0.1 * 3 * years)
    assert m["inspection_cases"] == 1  # the minor hit got a correction notice, not a visit
    assert m["inspections_avoided"] == pytest.approx(
        m["routine_inspections"] - m["trigger_regime_inspections"]
    )
    cases = evaluation["cases"]
    assert set(cases["status"]) == {"closed"}  # closed 30 days after the last update


def test_the_default_policy_leaves_a_lone_minor_hit_alone_and_counts_no_repeat_visit():
    settings = EvaluationSettings(case_duration_days=30, catch_days=30, routine_ratio=0.1,
                                  floor_ratio=0.02)
    result = evaluate_trigger_policy(string_tables(), truth(),
                                     load_trigger_policy(default_policy_path()), DATES,
                                     settings=settings)
    m = result["metrics"]
    assert m["cases_opened"] == 1 and m["trigger_precision"] == 1.0  # FALSE_ALARM undisturbed
    assert m["repeat_inspections_of_a_problem"] == 0
    assert m["inspections_avoided_without_repeats"] == pytest.approx(m["inspections_avoided"])

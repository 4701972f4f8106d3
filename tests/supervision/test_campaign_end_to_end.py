"""Two departments' campaigns from plan to publication, estimates and next year's history."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from test_campaign_synthetic import default_policy, inspectors, population_with_truth, spec

from supervision.assignment import assign_inspectors
from supervision.draw import (
    commit_campaign,
    draw_campaign,
    draw_history_rows,
    evidence_from_json,
    evidence_to_json,
    seed_sha256,
    verify_draw,
)
from supervision.estimates import outcome_units, problem_rate_estimates, training_labels
from supervision.publication import (
    publication_deadlines,
    publishable_results,
    record_results,
    results_as_inspections,
)
from supervision.visits import merge_joint_visits, ranked_inspection_lists, tasks_from_draw

COMMITTED = dt.datetime(2025, 3, 20, 9, tzinfo=dt.UTC)


def test_campaigns_run_end_to_end_and_feed_the_next_draw() -> None:
    policy = default_policy()
    firms, truth = population_with_truth(600, seed=2)
    staff = pd.concat([inspectors(10, "market"), inspectors(6, "tax")], ignore_index=True)
    campaigns = [
        spec(campaign_id="M-2025-01", department="market", check_items=["annual_report"]),
        spec(campaign_id="T-2025-01", department="tax", check_items=["invoice"],
             item_kind="general", ratio_set="yuexiu_2022",
             period_start=dt.date(2025, 4, 10)),
    ]
    evidences, teams = [], []
    for number, campaign in enumerate(campaigns):
        seed = f"seed-{number}-{campaign.campaign_id}"
        commitment = commit_campaign(campaign, firms, policy, seed_sha256(seed), COMMITTED)
        evidence = draw_campaign(commitment, campaign, firms, policy, seed,
                                 COMMITTED + dt.timedelta(hours=1))
        published = evidence_from_json(evidence_to_json(evidence))
        assert verify_draw(published, firms, policy, published_digest=commitment.digest()).match
        evidences.append(evidence)
        teams.append(assign_inspectors(evidence.drawn_frame(), staff, None, policy.assignment,
                                       campaign.department, seed, campaign.campaign_id))

    tasks = pd.concat([tasks_from_draw(e, t) for e, t in zip(evidences, teams, strict=True)],
                      ignore_index=True)
    joint = merge_joint_visits(tasks, policy.joint_visits.window_days)
    both = set(evidences[0].drawn_frame()["uscc"]) & set(evidences[1].drawn_frame()["uscc"])
    assert both and joint.visits_saved == len(both)
    ranked = ranked_inspection_lists(joint.visits, firms)
    assert len(ranked) == len(joint.visits)

    items = joint.items
    problem = truth.loc[items["uscc"]].to_numpy()
    outcomes = pd.DataFrame({
        "visit_id": items["visit_id"], "check_item": items["check_item"],
        "outcome": ["order_to_correct" if p else "no_problem" for p in problem],
        "inspection_date": "2025-05-06",
    })
    results = record_results(items, outcomes)
    public = publishable_results(results, firms, staff)
    assert len(public) == len(items) and "class" not in public.columns
    deadlines = publication_deadlines(results, policy.publication, dt.date(2025, 5, 7))
    assert set(deadlines["status"]) == {"due"}

    units = outcome_units(results, policy.publication.problem_outcomes)
    strata = pd.concat([pd.DataFrame([s.model_dump() for s in e.strata])
                        .assign(campaign_id=e.spec.campaign_id) for e in evidences])
    market = units.loc[units["campaign_id"] == "M-2025-01"]
    estimates = problem_rate_estimates(market, policy.confidence_level,
                                       strata=strata).set_index("domain")
    overall = estimates.loc["overall"]
    assert overall["ci_low"] <= truth.mean() <= overall["ci_high"]
    labels = training_labels(units)
    assert (labels["weight"] >= 1).all() and len(labels) == len(units)

    history = pd.concat([results_as_inspections(results, dt.date(2025, 5, 7)),
                         draw_history_rows(evidences)], ignore_index=True)
    follow_up = spec(campaign_id="M-2025-02", check_items=["annual_report", "license"],
                     period_start=dt.date(2025, 9, 1), period_end=dt.date(2025, 11, 30))
    later = commit_campaign(follow_up, firms, policy, seed_sha256("x"), COMMITTED, history)
    assert set(later.excluded) == set(evidences[0].drawn_frame()["uscc"])

"""Campaign specs and sampling plans: ratios, floors, caps, targeted rules, exclusions, budgets."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from pydantic import ValidationError
from test_campaign_synthetic import default_policy, policy_dict, roster, spec

from supervision.campaigns import (
    CampaignError,
    plan_campaign,
    round_half_up,
    spec_from_json,
    spec_to_json,
)
from supervision.sampling_policy import SamplingPolicy


def _strata(frame_strata: pd.DataFrame) -> dict[str, dict[str, object]]:
    return frame_strata.set_index("stratum").to_dict(orient="index")


def test_ratio_set_sizes_are_round_half_up_of_ratio_times_population() -> None:
    policy = default_policy()
    frame = plan_campaign(spec(ratio_set="yuexiu_2022"), roster(400), policy)
    counts = roster(400)["class"].value_counts()
    strata = _strata(frame.strata)
    for cls, ratio in policy.ratio_sets["yuexiu_2022"].items():
        assert strata[cls]["population"] == counts[cls]
        assert strata[cls]["sample"] == round_half_up(ratio, int(counts[cls]))
        assert strata[cls]["ratio"] == strata[cls]["sample"] / counts[cls]


def test_round_half_up_is_exact_in_decimal() -> None:
    assert round_half_up(0.05, 30) == 2  # 1.5 rounds up, although 0.05 * 30 < 1.5 in binary
    assert round_half_up(0.15, 10) == 2
    assert round_half_up(0.01, 49) == 0


def test_floor_lifts_low_ratios_and_no_nonempty_class_is_exempt() -> None:
    data = policy_dict()
    data["ratio_sets"]["exempt_a"] = {"A": 0.0, "B": 0.0, "C": 0.5, "D": 1.0}
    policy = SamplingPolicy.model_validate(data)
    small = roster(60, seed=3)
    strata = _strata(plan_campaign(spec(ratio_set="exempt_a"), small, policy).strata)
    for cls in ("A", "B"):
        assert strata[cls]["basis"] == "floor"
        assert strata[cls]["sample"] >= 1  # 1 % of a small class rounds to 0: min one applies


def test_general_items_are_capped_and_key_items_are_not() -> None:
    policy = default_policy()
    firms = roster(400)
    n_d = int((firms["class"] == "D").sum())
    general = _strata(plan_campaign(spec(item_kind="general"), firms, policy).strata)
    key = _strata(plan_campaign(spec(item_kind="key"), firms, policy).strata)
    assert key["D"]["sample"] == n_d
    assert general["D"]["basis"] == "general_items_cap"
    assert general["D"]["sample"] <= policy.general_items_max_ratio * n_d
    assert general["D"]["sample"] == int(policy.general_items_max_ratio * n_d)


def test_firms_drawn_this_year_for_the_same_items_are_excluded() -> None:
    firms = roster(200)
    codes = list(firms.index)
    history = pd.DataFrame({
        "uscc": codes[:4],
        "inspection_date": ["2025-02-10", "2024-12-30", "2025-03-01", "2025-03-05"],
        "source": ["random_draw", "random_draw", "random_draw", "complaint"],
        "check_items": ["annual_report;license", "annual_report", "food_safety", "annual_report"],
    })
    frame = plan_campaign(spec(), firms, default_policy(), history=history)
    assert frame.excluded == (codes[0],)  # same year, shares an item, drawn at random
    assert codes[0] not in set(frame.units["uscc"])
    assert set(codes[1:4]) <= set(frame.units["uscc"])
    relaxed = plan_campaign(spec(), firms, default_policy(no_redraw_same_year=False),
                            history=history)
    assert relaxed.excluded == ()


def test_targeted_rule_draws_every_matching_firm_with_probability_one() -> None:
    firms = roster(300)
    shells = list(firms.index[:5])
    firms.loc[shells, "registered_capital"] = 20000.0  # 2亿 registered, nobody employed
    firms.loc[shells, "employees"] = 0
    frame = plan_campaign(spec(), firms, default_policy())
    strata = _strata(frame.strata)
    assert strata["rule:large_capital_no_staff"] == {
        "population": 5, "configured_ratio": 1.0, "ratio": 1.0, "sample": 5,
        "basis": "targeted_rule:large_capital_no_staff"}
    stratum_of = frame.units.set_index("uscc")["stratum"]
    assert set(stratum_of[shells]) == {"rule:large_capital_no_staff"}
    off = plan_campaign(spec(targeted_rules=[]), firms, default_policy())
    assert "rule:large_capital_no_staff" not in set(off.strata["stratum"])


def test_crowded_address_rule_counts_entities_at_one_address() -> None:
    firms = roster(100)
    firms.loc[firms.index[:12], "registered_address"] = "广州市海珠区某大厦1201室"
    frame = plan_campaign(spec(), firms, default_policy())
    crowded = frame.units.loc[frame.units["stratum"] == "rule:crowded_address", "uscc"]
    assert sorted(crowded) == sorted(firms.index[:12])


def test_undisturbed_digital_firms_get_only_the_floor() -> None:
    firms = roster(400)
    d_firms = firms.index[firms["class"] == "D"]
    firms.loc[d_firms, "digital_undisturbed"] = True
    strata = _strata(plan_campaign(spec(), firms, default_policy()).strata)
    assert "D" not in strata
    assert strata["undisturbed"]["configured_ratio"] == default_policy().floor_ratio
    assert strata["undisturbed"]["sample"] == 1


def test_scope_filters_a_targeted_roster() -> None:
    firms = roster(300)
    scoped = spec(scope={"streets": ["赤岗街道"], "entity_types": ["limited_company"],
                         "industry_prefixes": ["I64"], "min_employees": 50})
    units = plan_campaign(scoped, firms, default_policy()).units
    chosen = firms.loc[units["uscc"]]
    assert len(chosen) > 0
    assert set(chosen["street"]) == {"赤岗街道"}
    assert set(chosen["entity_type"]) == {"limited_company"}
    assert chosen["industry_code"].str.startswith("I64").all()
    assert (chosen["employees"] >= 50).all()
    expected = firms.loc[(firms["street"] == "赤岗街道") & (firms["entity_type"] ==
                         "limited_company") & (firms["industry_code"] == "I6432")
                         & (firms["employees"] >= 50)]
    assert len(chosen) == len(expected)


def test_budget_is_split_by_class_weights_within_floors_and_caps() -> None:
    firms = roster(1000)
    policy = default_policy()
    frame = plan_campaign(spec(budget=120, item_kind="general"), firms, policy)
    strata = _strata(frame.strata)
    assert sum(s["sample"] for s in strata.values()) == 120
    ratios = [strata[c]["ratio"] for c in policy.classes]
    assert ratios == sorted(ratios)  # heavier weight → higher ratio
    assert all(r >= policy.floor_ratio for r in ratios)
    assert all(r <= policy.general_items_max_ratio for r in ratios)


def test_infeasible_budget_is_a_bilingual_error() -> None:
    with pytest.raises(CampaignError, match=r"不可行.*infeasible"):
        plan_campaign(spec(budget=2), roster(1000), default_policy())


def test_bad_class_in_roster_names_row_column_and_value() -> None:
    firms = roster(20)
    firms.iloc[3, firms.columns.get_loc("class")] = "E"
    with pytest.raises(CampaignError, match=rf"uscc={firms.index[3]}, column 'class', value 'E'"):
        plan_campaign(spec(), firms, default_policy())


def test_missing_scope_column_is_named() -> None:
    firms = roster(20).drop(columns="street")
    with pytest.raises(CampaignError, match="street"):
        plan_campaign(spec(scope={"streets": ["赤岗街道"]}), firms, default_policy())


def test_spec_round_trips_through_json_and_rejects_nonsense() -> None:
    original = spec(scope={"streets": ["赤岗街道"]}, budget=30)
    assert spec_from_json(spec_to_json(original)) == original
    with pytest.raises(ValidationError):
        spec(department="police")
    with pytest.raises(ValidationError):
        spec(period_end=dt.date(2025, 1, 1))
    with pytest.raises(ValidationError):
        spec(ratio_set="default", budget=10)


def test_policy_rejects_unknown_keys_and_incomplete_ratio_sets() -> None:
    data = policy_dict()
    data["flor_ratio"] = 0.05
    with pytest.raises(ValidationError, match="flor_ratio"):
        SamplingPolicy.model_validate(data)
    data = policy_dict()
    data["ratio_sets"]["broken"] = {"A": 0.1, "B": 0.2}
    with pytest.raises(ValidationError, match="broken"):
        SamplingPolicy.model_validate(data)
    data = policy_dict()
    data["floor_ratio"] = 0
    with pytest.raises(ValidationError):
        SamplingPolicy.model_validate(data)

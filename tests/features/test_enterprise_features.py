"""Point-in-time enterprise features on tiny hand-made snapshots with hand-computed values."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from features.catalogue import model_inputs
from features.contract import ENTERPRISE_EVENT_TYPES, TABLES
from features.enterprise_features import (
    AUDIT_COLUMNS,
    ENTERPRISE_FEATURES,
    HARD_RULE_FLAGS,
    build_enterprise_features,
    enterprise_feature_catalogue,
    existing_enterprises,
)
from features.uscc import check_character

AS_OF = pd.Timestamp("2023-07-15")
EXEMPT = frozenset(f"GZMJ-{i:03d}" for i in range(1, 13))
_DTYPES = {
    "date": "datetime64[ns]",
    "int": "Int64",
    "float": "float64",
    "bool": "boolean",
    "str": "string",
    "uscc": "string",
    "list": "string",
}


def code(i: int) -> str:
    first17 = f"91440105MA{i:07d}"
    return first17 + check_character(first17)


def table(name: str, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """A frame typed exactly like a snapshot table (see features/snapshot.py)."""
    columns = {}
    for column in TABLES[name].columns:
        values = pd.Series([row.get(column.name) for row in rows], dtype=object)
        if column.kind == "date":
            columns[column.name] = pd.to_datetime(values).astype("datetime64[ns]")
        else:
            columns[column.name] = values.astype(_DTYPES[column.kind])
    return pd.DataFrame(columns)


def snapshot(**rows: list[dict[str, Any]]) -> dict[str, pd.DataFrame]:
    return {name: table(name, rows.get(name, [])) for name in TABLES}


E1, E2, E3, E4, E5, E6 = (code(i) for i in range(1, 7))


def enterprise(uscc: str, **overrides: Any) -> dict[str, Any]:
    row = {
        "uscc": uscc,
        "name": f"企业{uscc[-4:]}",
        "industry_code": "I6432",
        "entity_type": "limited_company",
        "ownership_type": "private",
        "registered_capital": 500.0,
        "employees": 20,
        "established_date": "2015-03-01",
        "street": "瑞宝街",
        "registered_address": f"地址{uscc[-4:]}",
        "legal_rep_id": f"rep-{uscc[-4:]}",
        "legal_rep_name": "张三",
        "status": "active",
    }
    return row | overrides


_event_counter = iter(range(1_000_000))


def event(uscc: str, kind: str, occurred: str, known: str | None = None, **extra: Any) -> dict:
    return {
        "event_id": f"EV{next(_event_counter)}",
        "uscc": uscc,
        "event_type": kind,
        "occurred_date": occurred,
        "known_date": known or occurred,
        **extra,
    }


_inspection_counter = iter(range(1_000_000))


def inspection(uscc: str, day: str, known: str, outcome: str, **extra: Any) -> dict:
    source = extra.pop("source", "complaint")
    row = {
        "inspection_id": f"IN{next(_inspection_counter)}",
        "uscc": uscc,
        "inspection_date": day,
        "known_date": known,
        "department": "market",
        "check_items": "ITEM-1",
        "source": source,
        "outcome": outcome,
        "inspectors": "I1;I2",
        **extra,
    }
    if source == "random_draw":
        row.setdefault("inclusion_probability", 0.1)
        row.setdefault("campaign_id", "C1")
    return row


def scenario() -> dict[str, pd.DataFrame]:
    """Six enterprises; E1 carries a full history (days before 2023-07-15 in comments)."""
    enterprises = [
        enterprise(E1, registered_address="A路1号", legal_rep_id="R1"),
        enterprise(E2, legal_rep_id="R1", established_date="2018-05-01", ownership_type="state"),
        enterprise(E3, legal_rep_id="R1", status="revoked", status_date="2021-01-01"),
        enterprise(E4, established_date="2023-09-01"),
        enterprise(E5, registered_address="A路 1号", employees=0, registered_capital=20_000.0,
                   established_date="2023-03-01", entity_type="sole_proprietorship",
                   industry_code="f5292"),
        enterprise(E6, status="cancelled", status_date="2023-08-01", employees=None,
                   registered_capital=50.0),
    ]
    events = [
        event(E1, "penalty", "2023-05-01", "2023-05-20", amount=1000.0),  # 75 days
        event(E1, "penalty", "2022-09-01", "2022-09-10", amount=2000.0),  # 317 days
        event(E1, "penalty", "2021-01-10", "2021-01-20"),  # 916 days, no amount
        event(E1, "penalty", "2023-07-10", "2023-07-20", amount=9e6),  # known after as_of
        event(E1, "abnormal_list_in", "2022-08-01"),
        event(E1, "abnormal_list_out", "2022-12-01"),
        event(E1, "abnormal_list_in", "2023-02-01"),
        event(E1, "complaint", "2023-06-01"),  # 44 days
        event(E1, "complaint", "2023-01-01"),  # 195 days
        event(E1, "complaint", "2022-12-01"),  # 226 days
        event(E1, "public_opinion", "2023-07-01", severity="serious"),
        event(E1, "monitoring_hit", "2022-01-01", severity="minor"),  # 560 days
        event(E1, "registration_change", "2023-01-15", item_code="legal_rep"),  # 181 days
        event(E1, "registration_change", "2021-06-01", item_code="address"),  # 774 days
        event(E1, "registration_change", "2023-06-15", item_code="scope"),  # 30 days
        event(E1, "annual_report", "2023-05-10", report_year=2022),
        event(E1, "annual_report", "2022-07-05", report_year=2021),  # late
        event(E1, "tax_grade", "2022-04-20", grade="B"),
        event(E1, "tax_grade", "2023-04-20", grade="C"),
        event(E1, "case_lead", "2023-03-01"),
        event(E2, "serious_dishonesty_in", "2022-01-01"),
        event(E2, "penalty", "2023-01-01"),
        event(E2, "abnormal_list_in", "2022-06-01"),
        event(E2, "tax_grade", "2023-04-20", grade="M"),
        event(E3, "penalty", "2020-10-01"),  # 1017 days, enterprise revoked since 2021
    ]
    inspections = [
        inspection(E1, "2023-03-01", "2023-03-10", "order_to_correct", violation_code="WF-003",
                   source="random_draw"),
        inspection(E1, "2023-06-01", "2023-06-05", "order_to_correct",
                   violation_code="GZMJ-002"),  # exempt minor lapse
        inspection(E1, "2023-07-10", "2023-07-20", "case_opened"),  # known after as_of
        inspection(E2, "2022-10-01", "2022-10-02", "unreachable"),
    ]
    return snapshot(enterprises=enterprises, enterprise_events=events, inspections=inspections)


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    return build_enterprise_features(scenario(), AS_OF, exempt_codes=EXEMPT)


def test_one_row_per_enterprise_existing_on_as_of(features: pd.DataFrame) -> None:
    # E3 was revoked before as_of, E4 not yet established; E6 closes after as_of.
    assert list(features.index) == sorted([E1, E2, E5, E6])
    assert features.index.name == "uscc"
    assert list(existing_enterprises(scenario(), AS_OF)) == list(features.index)


def test_columns_follow_the_catalogue(features: pd.DataFrame) -> None:
    assert list(features.columns) == list(ENTERPRISE_FEATURES)
    for name in model_inputs(ENTERPRISE_FEATURES):
        assert pd.api.types.is_numeric_dtype(features[name]), name
        assert not pd.api.types.is_bool_dtype(features[name]), name
    for name in HARD_RULE_FLAGS:
        assert features[name].dtype == bool


def test_catalogue_is_bilingual_and_keeps_audit_columns_out_of_the_model() -> None:
    for name, info in ENTERPRISE_FEATURES.items():
        assert info.name == name
        assert info.zh and info.en and info.zh != info.en
        assert info.group in {"basic", "dynamic", "supervision", "related", "social"}
    inputs = set(model_inputs(ENTERPRISE_FEATURES))
    assert inputs.isdisjoint(AUDIT_COLUMNS)
    assert "ownership_type" not in inputs
    assert ENTERPRISE_FEATURES["penalties_365d"].direction == 1
    assert ENTERPRISE_FEATURES["exempt_lapses_365d"].group == "supervision"
    groups = {info.group for name, info in ENTERPRISE_FEATURES.items() if name in inputs}
    assert groups == {"basic", "dynamic", "supervision", "related", "social"}


def test_catalogue_follows_the_windows() -> None:
    catalogue = enterprise_feature_catalogue((30, 180))
    assert "penalties_30d" in catalogue and "penalties_365d" not in catalogue
    assert "legal_rep_other_penalties_180d" in catalogue
    frame = build_enterprise_features(scenario(), AS_OF, exempt_codes=EXEMPT,
                                      windows_days=(30, 180))
    assert list(frame.columns) == list(catalogue)
    with pytest.raises(ValueError, match="strictly increasing"):
        enterprise_feature_catalogue((365, 90))


def test_basic_attributes(features: pd.DataFrame) -> None:
    e1, e5, e6 = features.loc[E1], features.loc[E5], features.loc[E6]
    assert e1["tenure_years"] == pytest.approx((AS_OF - pd.Timestamp("2015-03-01")).days / 365.25)
    assert e1["registered_capital_log"] == pytest.approx(math.log1p(500))
    assert e1["employees"] == 20 and math.isnan(e6["employees"])
    assert e1["entity_type_code"] == 0 and e5["entity_type_code"] == 3
    assert e1["industry_section_code"] == 8  # I
    assert e5["industry_section_code"] == 5 and e5["industry_section"] == "F"  # lower-case input
    assert e5["zero_employees_large_capital"] == 1 and e1["zero_employees_large_capital"] == 0
    assert (e1["size_band"], e5["size_band"], e6["size_band"]) == ("small", "micro", "micro")
    assert bool(e5["newly_established"]) and not bool(e1["newly_established"])
    assert features.loc[E2, "ownership_type"] == "state"


def test_dynamic_changes_annual_reports_and_tax_grade(features: pd.DataFrame) -> None:
    e1, e2, e5 = features.loc[E1], features.loc[E2], features.loc[E5]
    assert [e1[f"registration_changes_{w}d"] for w in (90, 365, 1095)] == [1, 2, 3]
    assert [e1[f"legal_rep_changes_{w}d"] for w in (90, 365, 1095)] == [0, 1, 1]
    assert [e1[f"address_changes_{w}d"] for w in (90, 365, 1095)] == [0, 0, 1]
    assert e1["days_since_last_change"] == 30
    assert math.isnan(e2["days_since_last_change"])
    # E1 owes 2020-2022 (2022 due 30 Jun 2023, before as_of): 2020 missing, 2021 late.
    assert e1["annual_reports_missing_3y"] == 1
    assert e1["annual_reports_late_3y"] == 1
    assert e1["annual_report_missing_last_due"] == 0
    assert e1["annual_report_filed_last_year"] == 1
    assert e2["annual_reports_missing_3y"] == 3 and e2["annual_report_missing_last_due"] == 1
    assert e5["annual_reports_missing_3y"] == 0  # established 2023: owes nothing yet
    assert e1["tax_grade_rank"] == 2 and e1["tax_grade_m"] == 0
    assert math.isnan(e2["tax_grade_rank"]) and e2["tax_grade_m"] == 1
    assert math.isnan(e5["tax_grade_rank"]) and e5["tax_grade_m"] == 0


def test_annual_report_not_yet_due_before_30_june() -> None:
    snap = scenario()
    before_deadline = build_enterprise_features(snap, "2023-06-30", exempt_codes=EXEMPT)
    # On 30 June the 2022 report is not overdue: the latest due year is 2021 (filed late).
    e1 = before_deadline.loc[E1]
    assert e1["annual_report_missing_last_due"] == 0
    assert e1["annual_reports_missing_3y"] == 2  # 2019 and 2020
    assert e1["annual_report_filed_last_year"] == 1  # 2022 filed early, on 10 May


def test_supervision_records(features: pd.DataFrame) -> None:
    e1, e2 = features.loc[E1], features.loc[E2]
    assert [e1[f"penalties_{w}d"] for w in (90, 365, 1095)] == [1, 2, 3]
    assert e1["penalties_total"] == 3
    assert e1["penalty_fines_log"] == pytest.approx(math.log1p(3000))
    assert e1["days_since_last_penalty"] == 75
    assert e1["abnormal_listed_now"] == 1 and e1["abnormal_listings_total"] == 2
    assert bool(e1["on_abnormal_list"])
    assert e2["serious_dishonesty_listed_now"] == 1 and bool(e2["on_serious_dishonesty_list"])
    assert e1["serious_dishonesty_listed_now"] == 0
    assert e1["case_leads_90d"] == 0 and e1["case_leads_365d"] == 1


def test_exempt_lapses_are_kept_apart_from_problems(features: pd.DataFrame) -> None:
    e1, e2 = features.loc[E1], features.loc[E2]
    assert [e1[f"inspections_{w}d"] for w in (90, 365)] == [1, 2]
    assert [e1[f"inspection_problems_{w}d"] for w in (90, 365)] == [0, 1]
    assert [e1[f"exempt_lapses_{w}d"] for w in (90, 365)] == [1, 1]
    assert e1["last_inspection_problem"] == 0  # the latest one was an exempt lapse
    assert e1["days_since_last_problem"] == 136
    assert e1["days_since_last_inspection"] == 44
    assert e2["inspection_problems_365d"] == 1 and e2["last_inspection_problem"] == 1  # unreachable
    assert math.isnan(features.loc[E5, "last_inspection_problem"])
    assert math.isnan(features.loc[E5, "days_since_last_problem"])


def test_related_parties(features: pd.DataFrame) -> None:
    e1, e2, e5 = features.loc[E1], features.loc[E2], features.loc[E5]
    # R1 runs E1, E2 (existing) and E3 (revoked 2021, penalised 2020-10-01).
    assert e1["legal_rep_other_enterprises"] == 1 and e1["legal_rep_other_revoked"] == 1
    assert e1["legal_rep_other_penalties_1095d"] == 2  # E2 + E3
    assert e1["legal_rep_other_abnormal_listings_1095d"] == 1  # E2
    assert e1["legal_rep_other_serious_dishonesty_listings"] == 1
    assert e1["legal_rep_other_on_serious_dishonesty"] == 1
    assert e2["legal_rep_other_penalties_1095d"] == 4  # E1's three known penalties + E3
    assert e2["legal_rep_other_on_serious_dishonesty"] == 0  # only E2 itself is listed
    assert e2["legal_rep_other_abnormal_listings_1095d"] == 2
    # "A路1号" and "A路 1号" are one address once blanks are removed.
    assert e1["address_other_enterprises"] == 1 and e5["address_other_enterprises"] == 1
    assert e5["address_other_penalties_1095d"] == 3
    assert e5["address_other_abnormal_listings_1095d"] == 2
    assert e2["address_other_enterprises"] == 0 and e5["legal_rep_other_enterprises"] == 0
    # Problems found at related firms' inspections: E1's random check, E2's unreachable visit
    # (E1's exempt lapse and its case known after as_of do not count).
    assert e1["legal_rep_other_inspection_problems_1095d"] == 1  # E2
    assert e2["legal_rep_other_inspection_problems_1095d"] == 1  # E1
    assert e5["address_other_inspection_problems_1095d"] == 1  # E1
    assert e1["address_other_inspection_problems_1095d"] == 0  # E5 was never inspected


def test_social_evaluation(features: pd.DataFrame) -> None:
    e1 = features.loc[E1]
    assert [e1[f"complaints_{w}d"] for w in (90, 365, 1095)] == [1, 3, 3]
    assert e1["complaint_trend"] == pytest.approx(365 / 90 - 2 * 365 / 275)
    assert e1["public_opinion_serious_90d"] == 1 and e1["public_opinion_minor_90d"] == 0
    assert e1["monitoring_hits_minor_365d"] == 0 and e1["monitoring_hits_minor_1095d"] == 1
    assert features.loc[E2, "complaint_trend"] == 0
    assert e1["days_since_last_complaint"] == 44  # the latest of the three
    assert math.isnan(features.loc[E2, "days_since_last_complaint"])  # never complained about


def _future_records(uscc: str) -> dict[str, list[dict[str, Any]]]:
    """One record of every kind that the regulator learns of on or after as_of."""
    events = []
    for kind in ENTERPRISE_EVENT_TYPES:
        extra = {"severity": "serious", "grade": "D", "report_year": 2022, "amount": 5e5,
                 "item_code": "legal_rep"}
        events.append(event(uscc, kind, "2023-07-01", "2023-07-15", **extra))  # old, learnt late
        events.append(event(uscc, kind, "2023-07-15", "2023-07-16", **extra))
    return {
        "enterprises": [enterprise(code(99), established_date="2023-07-15", legal_rep_id="R1",
                                   registered_address="A路1号")],
        "enterprise_events": events,
        "inspections": [
            inspection(uscc, "2023-07-14", "2023-07-15", "case_opened", source="random_draw"),
            inspection(uscc, "2023-07-15", "2023-07-15", "unreachable"),
        ],
        "digital_tags": [{"uscc": uscc, "tag": "platform", "tagged_date": "2023-07-15",
                          "source": "manual"}],
    }


def _append(snap: dict[str, pd.DataFrame], extra: dict[str, list[dict]]) -> dict:
    out = dict(snap)
    for name, rows in extra.items():
        out[name] = pd.concat([snap[name], table(name, rows)], ignore_index=True)
    return out


@pytest.mark.parametrize("uscc", [E1, E2, E5])
def test_records_known_on_or_after_as_of_change_nothing(features: pd.DataFrame, uscc: str) -> None:
    later = _append(scenario(), _future_records(uscc))
    pd.testing.assert_frame_equal(
        build_enterprise_features(later, AS_OF, exempt_codes=EXEMPT), features
    )


@pytest.mark.parametrize(
    ("kind", "extra", "column"),
    [
        ("penalty", {}, "penalties_90d"),
        ("abnormal_list_in", {}, "abnormal_listings_total"),
        ("abnormal_list_out", {}, "abnormal_listed_now"),
        ("serious_dishonesty_in", {}, "serious_dishonesty_listings_total"),
        ("complaint", {}, "complaints_90d"),
        ("annual_report", {"report_year": 2020}, "annual_reports_missing_3y"),
        ("tax_grade", {"grade": "D"}, "tax_grade_rank"),
        ("registration_change", {"item_code": "address"}, "address_changes_90d"),
        ("public_opinion", {"severity": "general"}, "public_opinion_general_90d"),
        ("case_lead", {}, "case_leads_90d"),
        ("monitoring_hit", {"severity": "serious"}, "monitoring_hits_serious_90d"),
    ],
)
def test_record_known_the_day_before_as_of_counts(
    features: pd.DataFrame, kind: str, extra: dict, column: str
) -> None:
    snap = _append(scenario(), {"enterprise_events": [
        event(E1, kind, "2023-07-13", "2023-07-14", **extra)
    ]})
    after = build_enterprise_features(snap, AS_OF, exempt_codes=EXEMPT)
    assert after.loc[E1, column] != features.loc[E1, column]


def test_inspection_known_the_day_before_as_of_counts(features: pd.DataFrame) -> None:
    snap = _append(scenario(), {"inspections": [
        inspection(E5, "2023-07-13", "2023-07-14", "disclosure_failure")
    ]})
    after = build_enterprise_features(snap, AS_OF, exempt_codes=EXEMPT)
    assert after.loc[E5, "inspection_problems_90d"] == 1
    assert after.loc[E5, "days_since_last_problem"] == 2
    assert features.loc[E5, "inspection_problems_90d"] == 0


def test_serious_dishonesty_removal_takes_firm_off_the_list() -> None:
    snap = _append(scenario(), {"enterprise_events": [
        event(E2, "serious_dishonesty_out", "2023-07-01", "2023-07-14")
    ]})
    after = build_enterprise_features(snap, AS_OF, exempt_codes=EXEMPT)
    assert after.loc[E2, "serious_dishonesty_listed_now"] == 0
    assert after.loc[E1, "legal_rep_other_on_serious_dishonesty"] == 0


def test_row_order_of_the_inputs_does_not_matter(features: pd.DataFrame) -> None:
    rng = np.random.default_rng(7)
    shuffled = {
        name: frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)
        for name, frame in scenario().items()
    }
    pd.testing.assert_frame_equal(
        build_enterprise_features(shuffled, AS_OF, exempt_codes=EXEMPT), features
    )


def test_empty_district_tables_give_zero_counts_and_nan_days() -> None:
    snap = snapshot(enterprises=[enterprise(E1)])
    frame = build_enterprise_features(snap, AS_OF, exempt_codes=EXEMPT)
    row = frame.loc[E1]
    assert row["penalties_1095d"] == 0 and row["complaints_365d"] == 0
    assert math.isnan(row["days_since_last_penalty"])
    assert math.isnan(row["tax_grade_rank"])
    assert row["annual_reports_missing_3y"] == 3


def test_duplicate_codes_are_refused() -> None:
    snap = snapshot(enterprises=[enterprise(E1), enterprise(E1)])
    with pytest.raises(ValueError, match="duplicate"):
        build_enterprise_features(snap, AS_OF, exempt_codes=EXEMPT)

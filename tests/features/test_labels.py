"""Enterprise labels: window boundaries, exemptions, knowledge grace and inspection design."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest

from features.contract import TABLES
from features.labels import build_enterprise_labels, label_available_date, label_window
from features.uscc import check_character

AS_OF = pd.Timestamp("2023-01-01")  # window [2023-01-01, 2024-01-01), final on 2024-03-01
EXEMPT = frozenset(f"GZMJ-{i:03d}" for i in range(1, 13))
_DTYPES = {"date": "datetime64[ns]", "int": "Int64", "float": "float64", "bool": "boolean",
           "str": "string", "uscc": "string", "list": "string"}


def code(i: int) -> str:
    first17 = f"91440106MA{i:07d}"
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


def enterprise(uscc: str, **overrides: Any) -> dict[str, Any]:
    return {
        "uscc": uscc, "name": "企业", "industry_code": "F5292", "entity_type": "limited_company",
        "ownership_type": "private", "registered_capital": 100.0, "employees": 5,
        "established_date": "2016-01-01", "street": "南华西街", "registered_address": uscc,
        "legal_rep_id": uscc, "legal_rep_name": "李四", "status": "active",
    } | overrides


def event(uscc: str, kind: str, occurred: str, known: str | None = None, **extra: Any) -> dict:
    event_id = f"EV-{uscc[-3:]}-{kind}-{occurred}"
    return {"event_id": event_id, "uscc": uscc, "event_type": kind,
            "occurred_date": occurred, "known_date": known or occurred, **extra}


def inspection(uscc: str, day: str, outcome: str, known: str | None = None, **extra: Any) -> dict:
    row = {"inspection_id": f"IN-{uscc[-3:]}-{day}", "uscc": uscc, "inspection_date": day,
           "known_date": known or day, "department": "market", "check_items": "ITEM-1",
           "source": "complaint", "outcome": outcome, "inspectors": "I1;I2"} | extra
    if row["source"] == "random_draw":
        row.setdefault("campaign_id", "C-2023")
    return row


L = {i: code(i) for i in range(1, 13)}


def scenario() -> dict[str, pd.DataFrame]:
    enterprises = [enterprise(L[i]) for i in range(1, 11)] + [
        enterprise(L[11], established_date="2023-02-01"),
        enterprise(L[12], status="revoked", status_date="2022-06-01"),
    ]
    events = [
        event(L[1], "penalty", "2022-12-31"),  # the day before as_of
        event(L[2], "penalty", "2024-01-01"),  # on window_end
        event(L[3], "penalty", "2023-12-31", "2024-01-10"),  # last day, recorded in grace
        event(L[6], "penalty", "2023-06-01", "2024-03-01"),  # known on the available date
        event(L[7], "penalty", "2023-06-01", "2024-02-29"),  # known the day before it
        event(L[9], "abnormal_list_in", "2023-02-01"),
        event(L[9], "serious_dishonesty_in", "2023-01-15"),
        event(L[10], "complaint", "2023-03-01"),
        event(L[10], "monitoring_hit", "2023-03-02", severity="serious"),
    ]
    inspections = [
        inspection(L[4], "2023-05-01", "order_to_correct", violation_code="GZMJ-005",
                   source="random_draw", inclusion_probability=0.2),
        inspection(L[5], "2023-06-01", "unreachable"),
        inspection(L[8], "2023-03-01", "no_problem", source="random_draw",
                   inclusion_probability=0.1),
        inspection(L[8], "2023-09-01", "case_opened", violation_code="WF-001",
                   source="random_draw", inclusion_probability=0.5),
        inspection(L[10], "2022-12-20", "case_opened", violation_code="WF-002"),  # before window
    ]
    frames = {name: table(name, []) for name in TABLES}
    frames.update(enterprises=table("enterprises", enterprises),
                  enterprise_events=table("enterprise_events", events),
                  inspections=table("inspections", inspections))
    return frames


@pytest.fixture(scope="module")
def labels() -> pd.DataFrame:
    return build_enterprise_labels(scenario(), AS_OF, window_months=12, exempt_codes=EXEMPT)


def test_rows_are_the_enterprises_existing_on_as_of(labels: pd.DataFrame) -> None:
    assert list(labels.index) == sorted(L[i] for i in range(1, 11))
    assert labels.index.name == "uscc"


def test_window_boundaries(labels: pd.DataFrame) -> None:
    assert labels.loc[L[1], "label"] == 0  # penalty the day before as_of
    assert labels.loc[L[2], "label"] == 0  # penalty on window_end
    assert labels.loc[L[3], "label"] == 1  # penalty on the window's last day
    assert labels.loc[L[3], "label_date"] == pd.Timestamp("2023-12-31")
    assert (labels["window_start"] == AS_OF).all()
    assert (labels["window_end"] == pd.Timestamp("2024-01-01")).all()


def test_records_known_after_the_grace_period_are_excluded(labels: pd.DataFrame) -> None:
    assert labels.loc[L[6], "label"] == 0
    assert labels.loc[L[7], "label"] == 1
    assert (labels["label_available_date"] == pd.Timestamp("2024-03-01")).all()
    strict = build_enterprise_labels(scenario(), AS_OF, window_months=12, exempt_codes=EXEMPT,
                                     grace_days=0)
    assert strict.loc[L[3], "label"] == 0  # recorded 10 days after the window closed


def test_exempt_findings_do_not_label_but_unreachable_does(labels: pd.DataFrame) -> None:
    assert labels.loc[L[4], "label"] == 0
    assert bool(labels.loc[L[4], "inspected"])
    assert labels.loc[L[5], "label"] == 1
    assert labels.loc[L[5], "label_source"] == f"inspection:IN-{L[5][-3:]}-2023-06-01"
    not_exempt = build_enterprise_labels(scenario(), AS_OF, window_months=12,
                                         exempt_codes=frozenset())
    assert not_exempt.loc[L[4], "label"] == 1


def test_complaints_and_monitoring_hits_are_signals_not_labels(labels: pd.DataFrame) -> None:
    assert labels.loc[L[10], "label"] == 0
    assert not bool(labels.loc[L[10], "inspected"])  # its inspection was before the window
    assert pd.isna(labels.loc[L[10], "label_source"])


def test_earliest_labelling_record_is_the_source(labels: pd.DataFrame) -> None:
    row = labels.loc[L[9]]
    assert row["label"] == 1
    event_id = f"EV-{L[9][-3:]}-serious_dishonesty_in-2023-01-15"
    assert row["label_source"] == f"serious_dishonesty_in:{event_id}"
    assert row["label_date"] == pd.Timestamp("2023-01-15")


def test_inclusion_probability_of_the_first_random_draw_is_carried(labels: pd.DataFrame) -> None:
    exempt_draw = labels.loc[L[4]]
    assert bool(exempt_draw["random_inspected"])
    assert exempt_draw["inclusion_probability"] == pytest.approx(0.2)
    assert exempt_draw["ipw_weight"] == pytest.approx(5.0)
    assert not bool(exempt_draw["random_draw_problem"])
    two_draws = labels.loc[L[8]]
    assert two_draws["inclusion_probability"] == pytest.approx(0.1)
    assert two_draws["ipw_weight"] == pytest.approx(10.0)
    assert not bool(two_draws["random_draw_problem"])  # the first draw found nothing
    assert two_draws["label"] == 1  # the second draw opened a case
    complaint_only = labels.loc[L[5]]
    assert bool(complaint_only["inspected"]) and not bool(complaint_only["random_inspected"])
    assert math.isnan(complaint_only["inclusion_probability"])
    assert math.isnan(complaint_only["ipw_weight"])
    assert pd.isna(complaint_only["random_draw_problem"])


def test_available_date_and_window() -> None:
    assert label_window("2023-01-31", 1) == (pd.Timestamp("2023-01-31"),
                                             pd.Timestamp("2023-02-28"))
    assert label_available_date(AS_OF, 12, 60) == pd.Timestamp("2024-03-01")
    with pytest.raises(ValueError, match="positive"):
        label_window(AS_OF, 0)
    with pytest.raises(ValueError, match="negative"):
        label_available_date(AS_OF, 12, -1)


def test_labels_are_final_once_available(labels: pd.DataFrame) -> None:
    """Records recorded on or after the available date can never change a label."""
    snap = scenario()
    late = table("enterprise_events", [event(L[1], "penalty", "2023-05-01", "2024-03-01")])
    late_inspection = table("inspections", [
        inspection(L[2], "2023-05-01", "case_opened", known="2024-04-01")
    ])
    snap["enterprise_events"] = pd.concat([snap["enterprise_events"], late], ignore_index=True)
    snap["inspections"] = pd.concat([snap["inspections"], late_inspection], ignore_index=True)
    pd.testing.assert_frame_equal(
        build_enterprise_labels(snap, AS_OF, window_months=12, exempt_codes=EXEMPT), labels
    )


def test_label_events_and_excluded_causes_follow_the_policy() -> None:
    """A filing-lapse listing (YC-01) can be excluded by cause while other listings still
    label; with no labelling events only inspection findings do."""
    snap = scenario()
    extra = table("enterprise_events", [
        event(L[1], "abnormal_list_in", "2023-07-10", item_code="YC-01"),  # late annual report
        event(L[2], "abnormal_list_in", "2023-07-10", item_code="YC-04"),  # unreachable address
    ])
    snap["enterprise_events"] = pd.concat([snap["enterprise_events"], extra], ignore_index=True)
    original = build_enterprise_labels(snap, AS_OF, window_months=12, exempt_codes=EXEMPT)
    assert original.loc[L[1], "label"] == 1 and original.loc[L[2], "label"] == 1
    by_cause = build_enterprise_labels(
        snap, AS_OF, window_months=12, exempt_codes=EXEMPT,
        excluded_event_items={"abnormal_list_in": frozenset({"YC-01"})},
    )
    assert by_cause.loc[L[1], "label"] == 0
    assert by_cause.loc[L[2], "label"] == 1
    assert by_cause.loc[L[9], "label"] == 1  # its listing carries no excluded cause
    findings_only = build_enterprise_labels(snap, AS_OF, window_months=12, exempt_codes=EXEMPT,
                                            label_events=())
    assert findings_only.loc[[L[2], L[3], L[7], L[9]], "label"].tolist() == [0, 0, 0, 0]
    assert findings_only.loc[L[5], "label"] == 1  # the unreachable inspection itself
    assert findings_only.loc[L[8], "label"] == 1  # a random draw that opened a case


def test_unknown_label_event_types_are_refused() -> None:
    with pytest.raises(ValueError, match=r"not in the contract.*'fine'"):
        build_enterprise_labels(scenario(), AS_OF, window_months=12, exempt_codes=EXEMPT,
                                label_events=("fine",))


def test_the_policy_label_definition_is_validated_and_reaches_the_builder() -> None:
    """The packaged policy counts inspection findings only; a file without a `label` block
    keeps the original definition; a bad event type or exclusion names its field."""
    import copy

    from supervision.policy import PolicyError, load_policy, parse_policy

    packaged = load_policy()
    assert packaged.enterprise_label_kwargs()["label_events"] == ()
    data = packaged.model_dump(by_alias=True, exclude_none=True)
    original = copy.deepcopy(data)
    del original["enterprise"]["label"]
    kwargs = parse_policy(original).enterprise_label_kwargs()
    assert kwargs["label_events"] == ("penalty", "abnormal_list_in", "serious_dishonesty_in")
    assert kwargs["excluded_event_items"] == {}
    for label, path in (
        ({"events": ["penalty", "fine"]}, "enterprise.label.events[1]"),
        ({"events": ["penalty"], "excluded_items": {"abnormal_list_in": ["YC-01"]}},
         "enterprise.label.excluded_items.abnormal_list_in"),
    ):
        broken = copy.deepcopy(data)
        broken["enterprise"]["label"] = label
        with pytest.raises(PolicyError, match=path.replace(".", r"\.").replace("[", r"\[")):
            parse_policy(broken)

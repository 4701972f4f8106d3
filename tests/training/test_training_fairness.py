"""Fairness report: planted disparities are flagged, equal treatment is not, small groups
are reported but never flagged."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.fairness import (
    MISSING_GROUP,
    REPORT_COLUMNS,
    count_flags,
    fairness_report,
    format_fairness,
)

BAND = (0.8, 1.25)


def _firms(counts: dict[str, dict[str, int]], attribute: str = "ownership_type") -> pd.DataFrame:
    """Exact class mixes per group: {'private': {'A': 60, 'D': 40}, ...}."""
    rows = [(group, cls) for group, mix in counts.items() for cls, k in mix.items()
            for _ in range(k)]
    return pd.DataFrame(rows, columns=[attribute, "class"])


def test_planted_disparity_in_top_class_is_flagged() -> None:
    frame = _firms({
        "private": {"A": 90, "B": 60, "C": 40, "D": 10},  # D 5 %, C+D 25 %
        "state": {"A": 45, "B": 30, "C": 20, "D": 5},     # same mix
        "foreign": {"A": 30, "B": 30, "C": 20, "D": 20},  # D 20 %: four times the rate
    })
    report = fairness_report(frame, group_columns=("ownership_type",), band=BAND)
    assert list(report.columns) == list(REPORT_COLUMNS)
    by_group = report.set_index("group")
    assert by_group.loc["private", "is_reference"]  # largest group by default
    assert by_group.loc["foreign", "high_class_rate"] == pytest.approx(0.20)
    assert by_group.loc["foreign", "ratio_high_class"] == pytest.approx(4.0)
    assert by_group.loc["foreign", "ratio_elevated_class"] == pytest.approx(0.40 / 0.25)
    assert by_group.loc["foreign", "flag"]
    assert by_group.loc["foreign", "flagged_metrics"] == "high_class_rate,elevated_class_rate"
    assert not by_group.loc["state", "flag"]
    assert not by_group.loc["private", "flag"]
    assert count_flags(report) == 1


def test_equal_treatment_raises_no_flag() -> None:
    mix = {"A": 50, "B": 30, "C": 15, "D": 5}
    frame = _firms({"private": mix, "state": mix, "foreign": {k: 2 * v for k, v in mix.items()}})
    report = fairness_report(frame, group_columns=("ownership_type",), band=BAND)
    assert count_flags(report) == 0
    assert np.allclose(report["ratio_high_class"], 1.0)


def test_small_group_is_reported_but_not_flagged() -> None:
    frame = _firms({
        "private": {"A": 95, "D": 5},
        "collective": {"A": 10, "D": 10},  # D 50 %, ratio 10, but only 20 firms
    })
    report = fairness_report(frame, group_columns=("ownership_type",), band=BAND, min_n=30)
    small = report.set_index("group").loc["collective"]
    assert small["small_group"] and small["ratio_high_class"] == pytest.approx(10.0)
    assert not small["flag"]
    flagged = fairness_report(frame, group_columns=("ownership_type",), band=BAND, min_n=20)
    assert flagged.set_index("group").loc["collective", "flag"]


def test_repeated_rows_of_few_units_are_not_enough_to_flag() -> None:
    """100 site-months of 5 sites are 5 observations, not 100 (project fairness gate)."""
    frame = _firms({
        "private": {"A": 400, "D": 100},
        "foreign": {"A": 40, "D": 60},  # D 60 % against 20 %: ratio 3
    })
    frame["site"] = [f"p{i % 50}" for i in range(500)] + [f"f{i % 5}" for i in range(100)]
    by_rows = fairness_report(frame, group_columns=("ownership_type",), band=BAND, min_n=30)
    assert by_rows.set_index("group").loc["foreign", "flag"]
    by_units = fairness_report(frame, group_columns=("ownership_type",), band=BAND, min_n=30,
                               unit_column="site")
    foreign = by_units.set_index("group").loc["foreign"]
    assert foreign["n_units"] == 5 and foreign["small_group"]
    assert foreign["ratio_high_class"] == pytest.approx(3.0)
    assert not foreign["flag"]
    assert count_flags(fairness_report(frame, group_columns=("ownership_type",), band=BAND,
                                       min_n=5, unit_column="site")) == 1


def test_reference_group_can_be_named_and_must_exist() -> None:
    frame = _firms({"private": {"A": 80, "D": 20}, "state": {"A": 45, "D": 5}})
    report = fairness_report(frame, group_columns=("ownership_type",), band=BAND,
                             reference_groups={"ownership_type": "state"})
    by_group = report.set_index("group")
    assert by_group.loc["state", "is_reference"]
    assert by_group.loc["private", "ratio_high_class"] == pytest.approx(0.2 / 0.1)
    with pytest.raises(ValueError, match="'foreign' does not occur in column 'ownership_type'"):
        fairness_report(frame, group_columns=("ownership_type",),
                        reference_groups={"ownership_type": "foreign"})


def test_inspection_burden_and_hit_rate_among_inspected() -> None:
    n = 200
    frame = pd.DataFrame({
        "size_band": ["micro"] * 100 + ["large"] * 100,
        "class": ["B"] * n,
        # micro firms inspected twice as often, with the same hit rate
        "inspected": [1] * 40 + [0] * 60 + [1] * 20 + [0] * 80,
        "hit": [1.0] * 10 + [0.0] * 30 + [np.nan] * 60 + [1.0] * 5 + [0.0] * 15 + [np.nan] * 80,
    })
    report = fairness_report(frame, group_columns=("size_band",), inspected_column="inspected",
                             hit_column="hit", reference_groups={"size_band": "large"},
                             min_n=20, band=BAND)
    micro = report.set_index("group").loc["micro"]
    assert micro["inspection_rate"] == pytest.approx(0.4)
    assert micro["ratio_inspection"] == pytest.approx(2.0)
    assert micro["hit_rate"] == pytest.approx(0.25)
    assert micro["ratio_hit"] == pytest.approx(1.0)
    assert micro["n_inspected"] == 40 and micro["n_with_result"] == 40
    assert micro["flagged_metrics"] == "inspection_rate"


def test_expected_burden_from_sampling_ratios() -> None:
    frame = _firms({"private": {"A": 50, "D": 50}, "state": {"A": 100}})
    ratios = {"A": 0.05, "B": 0.15, "C": 0.30, "D": 0.50}
    report = fairness_report(frame, group_columns=("ownership_type",), sampling_ratios=ratios,
                             reference_groups={"ownership_type": "state"}, band=BAND)
    private = report.set_index("group").loc["private"]
    assert private["inspection_rate"] == pytest.approx(0.275)
    assert private["ratio_inspection"] == pytest.approx(5.5)
    with pytest.raises(ValueError, match=r"no ratio for class\(es\) \['D'\]"):
        fairness_report(frame, group_columns=("ownership_type",),
                        sampling_ratios={"A": 0.05})


def test_zero_reference_rate_gives_infinite_ratio_and_flags() -> None:
    frame = _firms({"private": {"A": 100}, "foreign": {"A": 40, "D": 10}, "state": {"B": 50}})
    report = fairness_report(frame, group_columns=("ownership_type",), band=BAND)
    by_group = report.set_index("group")
    assert np.isinf(report.loc[report["group"] == "foreign", "ratio_high_class"]).all()
    assert by_group.loc["foreign", "flag"]
    assert by_group.loc["state", "ratio_high_class"] == 1.0  # 0 vs 0: no disparity


def test_missing_group_values_form_their_own_group() -> None:
    frame = pd.DataFrame({"street": ["s1"] * 40 + [None] * 35, "class": ["A"] * 75})
    report = fairness_report(frame, group_columns=("street",), band=BAND)
    assert set(report["group"]) == {"s1", MISSING_GROUP}
    assert report["n"].sum() == 75


def test_bad_input_names_column_and_row() -> None:
    frame = pd.DataFrame({"street": ["s1", "s2"], "class": ["A", "B"], "inspected": [1, "yes"]})
    with pytest.raises(ValueError, match="column 'inspected', row 1"):
        fairness_report(frame, group_columns=("street",), inspected_column="inspected")
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['size_band'\]"):
        fairness_report(frame, group_columns=("street", "size_band"))
    with pytest.raises(ValueError, match="band must contain 1"):
        fairness_report(frame, group_columns=("street",), band=(1.1, 1.5))


def test_several_attributes_and_pandas_string_dtype() -> None:
    frame = _firms({"private": {"A": 60, "D": 40}, "state": {"A": 90, "D": 10}})
    frame["street"] = pd.array(["east", "west"] * 100, dtype="string")
    frame["class"] = frame["class"].astype("string")
    report = fairness_report(frame, group_columns=("ownership_type", "street"), band=BAND)
    assert list(report["attribute"].unique()) == ["ownership_type", "street"]
    assert report.loc[report["attribute"] == "street", "flag"].sum() == 0


def test_format_fairness_is_bilingual_and_names_flags() -> None:
    frame = _firms({"private": {"A": 190, "D": 10}, "foreign": {"A": 40, "D": 10}})
    text = format_fairness(fairness_report(frame, group_columns=("ownership_type",), band=BAND))
    for word in ("属性", "attribute", "D类占比", "D rate", "参照组 / reference",
                 "超出区间 / outside band: 最高类 / top class", "区间 / band: 0.8–1.25", "4.00×"):
        assert word in text

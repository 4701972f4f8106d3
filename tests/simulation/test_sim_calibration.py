"""The default district lands inside the published figures of docs/domain.md."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from simulation.calibration import TARGETS, calibration_report, format_calibration
from simulation.district import SimulatedDistrict
from simulation.io import read_tables, read_truth, write_district

KEY_FIGURES = [
    *(f"class_share_{c}" for c in "ABCD"),
    *(f"random_problem_rate_{c}" for c in "ABCD"),
    "random_problem_rate_overall",
    "digital_share",
    "penalised_share",
]


def test_key_figures_within_targets(calibration_district: SimulatedDistrict) -> None:
    report = calibration_report(calibration_district.tables, calibration_district.truth)
    assert set(KEY_FIGURES) <= set(report["figure"])
    assert list(report["figure"]) == list(TARGETS)
    off = report[~report["ok"]]
    assert off.empty, format_calibration(off)


def test_class_rates_are_ordered(calibration_district: SimulatedDistrict) -> None:
    report = calibration_report(calibration_district.tables, calibration_district.truth)
    rates = report.set_index("figure")["measured"]
    assert rates["random_problem_rate_A"] < rates["random_problem_rate_B"] < rates[
        "random_problem_rate_C"] < rates["random_problem_rate_D"]


def test_report_from_files_equals_report_in_memory(small_district: SimulatedDistrict,
                                                   tmp_path: Path) -> None:
    write_district(small_district, tmp_path, fmt="csv")
    from_files = calibration_report(read_tables(tmp_path), read_truth(tmp_path))
    in_memory = calibration_report(small_district.tables, small_district.truth)
    pd.testing.assert_frame_equal(from_files, in_memory)
    text = format_calibration(in_memory)
    assert "真实类别占比 A / true class share A" in text
    assert text.count("\n") == len(in_memory) + 3

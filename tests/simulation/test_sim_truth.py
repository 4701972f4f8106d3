"""Ground truth stays apart from the source tables and means what it says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.contract import TABLES
from simulation.district import SimulatedDistrict
from simulation.io import read_tables, read_truth, write_district

TRUTH_COLUMNS = {"risk", "violating", "true_class", "true_risk", "defective", "problem_start"}


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_truth_is_written_only_under_truth(small_district: SimulatedDistrict, tmp_path: Path,
                                           fmt: str) -> None:
    write_district(small_district, tmp_path, fmt=fmt)  # type: ignore[arg-type]
    top_level = {p.name for p in tmp_path.iterdir()}
    assert top_level == {f"{name}.{fmt}" for name in TABLES} | {"truth"}
    tables = read_tables(tmp_path)
    for name, frame in tables.items():
        assert not TRUTH_COLUMNS & set(frame.columns), name
        assert list(frame.columns) == TABLES[name].column_names
        assert len(frame) == len(small_district.tables[name])
    truth = read_truth(tmp_path)
    assert set(truth) == set(small_district.truth)
    for name, frame in small_district.truth.items():
        pd.testing.assert_frame_equal(truth[name], frame, check_dtype=False, obj=name)


def test_read_truth_names_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="truth"):
        read_truth(tmp_path)


def test_monthly_truth_matches_register(small_district: SimulatedDistrict) -> None:
    monthly = small_district.truth["enterprise_monthly"]
    assert monthly["risk"].between(0, 1).all()
    assert not monthly.duplicated(["uscc", "month"]).any()
    assert set(monthly["uscc"]) <= set(small_district.tables["enterprises"]["uscc"])
    months = monthly["month"].drop_duplicates().sort_values()
    assert len(months) == 12 * small_district.config.years
    assert (months.dt.day == 1).all()
    classes = small_district.truth["enterprise_class"]
    active = small_district.tables["enterprises"].query("status == 'active'")
    assert set(classes["uscc"]) == set(active["uscc"])


def test_ownership_carries_no_risk(calibration_district: SimulatedDistrict) -> None:
    """Ownership is independent of true risk, so any disparity a model shows is its own."""
    classes = calibration_district.truth["enterprise_class"]
    ownership = classes["uscc"].map(
        calibration_district.tables["enterprises"].set_index("uscc")["ownership_type"])
    overall = classes["true_risk"].mean()
    for group, risks in classes["true_risk"].groupby(ownership):
        standard_error = risks.std() / np.sqrt(len(risks))
        assert abs(risks.mean() - overall) < 4 * standard_error + 1e-9, group


def test_digital_problems_raise_signals_soon(calibration_district: SimulatedDistrict) -> None:
    """Monitoring hits cluster right after a digital firm's problem starts."""
    problems = calibration_district.truth["digital_problems"]
    events = calibration_district.tables["enterprise_events"]
    hits = events[events["event_type"] == "monitoring_hit"]
    starts = problems[problems["problem_start"] < pd.Timestamp("2026-06-01")]
    pairs = starts.merge(hits[["uscc", "occurred_date"]], on="uscc", how="left")
    delay = pd.to_datetime(pairs["occurred_date"]) - pairs["problem_start"]
    soon = (delay >= pd.Timedelta(0)) & (delay <= pd.Timedelta(days=60))
    detected = soon.groupby([pairs["uscc"], pairs["problem_start"]]).any()
    assert len(detected) == len(starts.drop_duplicates(["uscc", "problem_start"]))
    assert detected.mean() > 0.4
    digital = set(calibration_district.truth["enterprise_class"].query("digital")["uscc"])
    assert hits["uscc"].isin(digital | set(problems["uscc"])).mean() > 0.95


def test_history_predicts_but_does_not_reveal_risk(
        calibration_district: SimulatedDistrict) -> None:
    """A crude points score on records known before a cut date finds about twice the
    violations of random picks at 10 % capacity, yet clearly less than ranking by true risk:
    the records are informative, and no observable is the truth."""
    tables, truth = calibration_district.tables, calibration_district.truth
    cut = "2025-10-01"
    known = tables["enterprise_events"].query("known_date < @cut")
    kind = known["event_type"]
    firms = truth["enterprise_class"]["uscc"]
    score = pd.Series(0.0, index=firms)
    for event_type, weight in (("penalty", 2.0), ("abnormal_list_in", 2.0), ("complaint", 1.0),
                               ("registration_change", 0.5)):
        score = score.add(weight * known[kind == event_type].groupby("uscc").size(),
                          fill_value=0.0)
    bad_grade = known[(kind == "tax_grade") & known["grade"].isin(["C", "D"])]
    score = score.add(3.0 * bad_grade.groupby("uscc").size().clip(upper=1), fill_value=0.0)
    monthly = truth["enterprise_monthly"]
    future = monthly[monthly["month"] >= pd.Timestamp(cut)].groupby("uscc")["violating"].mean()
    current = monthly[monthly["month"] == pd.Timestamp(cut)].set_index("uscc")["risk"]
    frame = pd.DataFrame({"score": score, "future": future, "risk": current}).dropna()
    capacity = len(frame) // 10
    jitter = np.random.default_rng(0).random(len(frame)) * 1e-6  # break ties at random
    by_score = frame["future"].to_numpy()[np.argsort(-(frame["score"].to_numpy() + jitter))]
    by_risk = frame["future"].to_numpy()[np.argsort(-frame["risk"].to_numpy())]
    random_rate = frame["future"].mean()
    rule_rate, oracle_rate = by_score[:capacity].mean(), by_risk[:capacity].mean()
    assert rule_rate > 1.8 * random_rate
    assert rule_rate < 0.95 * oracle_rate

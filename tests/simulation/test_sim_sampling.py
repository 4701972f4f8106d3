"""Historical random draws record their true inclusion probabilities (HT estimates work)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from simulation.district import SimulatedDistrict

SECTION_OF_CAMPAIGN = {
    "market": None, "tax": None, "environment": ("C", "H"), "safety": ("C", "E", "G", "F"),
    "fire": ("H", "F", "O", "R", "L"), "housing": ("E", "K"),
}


def _frame(enterprises: pd.DataFrame, department: str, day: str) -> pd.Series:
    """Firms a department's campaign drew from on `day`, from the public register alone."""
    alive = (enterprises["established_date"] <= day) & (
        enterprises["status_date"].fillna("9999-12-31") > day)
    sections = SECTION_OF_CAMPAIGN[department]
    if sections is not None:
        alive &= enterprises["industry_code"].str.slice(0, 1).isin(sections)
    if department == "tax":
        alive &= enterprises["entity_type"] != "individual_business"
    return alive


def test_random_draw_rows_carry_the_design_probability(
        calibration_district: SimulatedDistrict) -> None:
    drawn = calibration_district.tables["inspections"].query("source == 'random_draw'")
    cells = calibration_district.truth["campaigns"]
    ratios = cells.groupby("campaign")["inclusion_probability"].agg(["min", "max"])
    per_campaign = drawn.groupby("campaign_id")["inclusion_probability"].agg(["min", "max"])
    joined = per_campaign.join(ratios, rsuffix="_design")
    assert (joined["min_design"] <= joined["min"]).all()
    assert (joined["max"] <= joined["max_design"]).all()
    counts = drawn.groupby("campaign_id").size()
    assert counts.to_dict() == cells.groupby("campaign")["drawn"].sum().loc[counts.index].to_dict()
    assert not drawn.duplicated(["campaign_id", "uscc"]).any()


def test_horvitz_thompson_recovers_frame_sizes(calibration_district: SimulatedDistrict) -> None:
    tables, truth = calibration_district.tables, calibration_district.truth
    drawn = tables["inspections"].query("source == 'random_draw'")
    cells = truth["campaigns"]
    for campaign, group in cells.groupby("campaign"):
        department = str(group["department"].iloc[0])
        day = pd.Timestamp(group["draw_date"].iloc[0]).date().isoformat()
        frame_size = int(_frame(tables["enterprises"], department, day).sum())
        assert frame_size == int(group["population"].sum()), campaign
        rows = drawn[drawn["campaign_id"] == campaign]
        estimate = float((1.0 / rows["inclusion_probability"]).sum())
        # Randomised rounding moves each cell's draw by less than one firm.
        tolerance = float((1.0 / group["inclusion_probability"]).sum())
        assert abs(estimate - frame_size) <= tolerance, (campaign, estimate, frame_size)


def test_horvitz_thompson_is_unbiased_for_violations(
        calibration_district: SimulatedDistrict) -> None:
    """Across all uniform campaigns, the weighted count of violating firms drawn matches
    the true count in the frames within sampling error."""
    tables, truth = calibration_district.tables, calibration_district.truth
    monthly = truth["enterprise_monthly"].set_index(["month", "uscc"])["violating"]
    drawn = tables["inspections"].query("source == 'random_draw'")
    errors, variances = [], []
    for campaign, group in truth["campaigns"].groupby("campaign"):
        if (group["stratum"] != "all").any():
            continue
        department = str(group["department"].iloc[0])
        month = pd.Timestamp(group["draw_date"].iloc[0])
        frame = tables["enterprises"].loc[
            _frame(tables["enterprises"], department, month.date().isoformat()), "uscc"]
        state = monthly.loc[month].reindex(frame).fillna(False).astype(bool)
        rows = drawn[drawn["campaign_id"] == campaign]
        ratio = float(group["inclusion_probability"].iloc[0])
        sampled = state.reindex(rows["uscc"]).to_numpy(dtype=float)
        errors.append(sampled.sum() / ratio - state.sum())
        p = state.mean()
        variances.append(len(frame) * p * (1 - p) * (1 - ratio) / ratio)
    z = sum(errors) / np.sqrt(sum(variances))
    assert len(errors) >= 10
    assert abs(z) < 4.0, z

"""Metrics: hand-computed tiny cases, agreement with sklearn, and the IPW guarantees."""

from __future__ import annotations

import json
import math
import re
import unicodedata

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score

from training.metrics import (
    CAPACITY_COLUMNS,
    backtest_records,
    brier,
    capacity_key,
    capacity_metrics,
    evaluate_scores,
    expected_calibration_error,
    format_backtest_table,
    inspected_count,
    inspection_order,
    reliability_table,
    roc_auc,
    summary_metrics,
    uniform_random_expectation,
    weighted_rates,
)

# --------------------------------------------------------------------------- calibration


def test_ece_uniform_bins_hand_computed() -> None:
    y = [0, 1, 0, 1]
    p = [0.1, 0.2, 0.8, 0.9]
    # bin [0, .5): mean p .15, observed .5 → gap .35; bin [.5, 1]: mean .85, observed .5 → .35
    assert expected_calibration_error(y, p, bins=2, strategy="uniform") == pytest.approx(0.35)


def test_ece_weighted_hand_computed() -> None:
    y = [0, 1, 0, 1]
    p = [0.1, 0.2, 0.8, 0.9]
    w = [3.0, 1.0, 1.0, 1.0]
    # bin 0: weight 4, mean p (.3+.2)/4 = .125, observed 1/4 → gap .125
    # bin 1: weight 2, mean p .85, observed .5 → gap .35;  ECE = (4·.125 + 2·.35)/6 = .2
    ece = expected_calibration_error(y, p, bins=2, strategy="uniform", sample_weight=w)
    assert ece == pytest.approx(0.2)


def test_quantile_bins_give_one_row_per_bin_when_n_equals_bins() -> None:
    rng = np.random.default_rng(3)
    p = rng.uniform(size=10)
    y = (rng.uniform(size=10) < 0.5).astype(int)
    table = reliability_table(y, p, bins=10)
    assert list(table["count"]) == [1] * 10
    assert expected_calibration_error(y, p, bins=10) == pytest.approx(np.mean(np.abs(y - p)))


def test_reliability_table_columns_and_totals() -> None:
    y = np.array([0, 0, 1, 1, 1, 0])
    p = np.array([0.05, 0.15, 0.55, 0.65, 0.95, 0.92])
    table = reliability_table(y, p, bins=3, strategy="uniform")
    assert list(table.columns) == ["bin", "p_mean", "observed_rate", "count", "weight"]
    assert table["count"].sum() == 6
    top = table.iloc[-1]
    assert top["p_mean"] == pytest.approx(0.935)
    assert top["observed_rate"] == pytest.approx(0.5)


def test_perfectly_calibrated_constant_prediction_has_zero_ece() -> None:
    y = [1, 0, 0, 0] * 5
    assert expected_calibration_error(y, [0.25] * 20, bins=5) == pytest.approx(0.0)


def test_calibration_rejects_bad_input_with_position() -> None:
    with pytest.raises(ValueError, match="position 1"):
        expected_calibration_error([0, 1], [0.2, 1.3])
    with pytest.raises(ValueError, match="unlabelled"):
        expected_calibration_error([0, np.nan], [0.2, 0.3])
    with pytest.raises(ValueError, match="0/1"):
        expected_calibration_error([0, 2], [0.2, 0.3])
    with pytest.raises(ValueError, match="length"):
        expected_calibration_error([0, 1, 1], [0.2, 0.3])


# --------------------------------------------------------------------------- AUC and Brier


def test_auc_and_brier_match_sklearn_with_weights() -> None:
    rng = np.random.default_rng(0)
    y = (rng.uniform(size=50) < 0.4).astype(int)
    p = np.clip(0.4 * y + rng.uniform(0, 0.6, size=50), 0, 1)
    w = rng.uniform(0.5, 5, size=50)
    assert roc_auc(y, p, w) == pytest.approx(roc_auc_score(y, p, sample_weight=w))
    assert roc_auc(y, p) == pytest.approx(roc_auc_score(y, p))
    assert brier(y, p, w) == pytest.approx(brier_score_loss(y, p, sample_weight=w))


def test_degenerate_cases_return_nan_not_errors() -> None:
    assert math.isnan(roc_auc([1, 1, 1], [0.1, 0.5, 0.9]))
    assert math.isnan(roc_auc([], []))
    assert math.isnan(roc_auc([0, 1], [0.1, 0.9], [1.0, 0.0]))  # positive has no weight
    assert math.isnan(brier([], []))
    assert brier([1, 1], [0.9, 0.8]) == pytest.approx((0.01 + 0.04) / 2)


# --------------------------------------------------------------------------- capacity


def test_inspected_count_rounds_half_up_and_never_zero() -> None:
    assert inspected_count(30, 0.10) == 3  # 0.1·30 is 3.0000000000000004 in floats
    assert inspected_count(10, 0.05) == 1  # 0.5 rounds up
    assert inspected_count(10, 0.04) == 1  # at least one visit
    assert inspected_count(0, 0.1) == 0
    with pytest.raises(ValueError, match="capacity"):
        inspected_count(10, 0.0)


def test_inspection_order_breaks_ties_deterministically() -> None:
    scores = [0.5, 0.9, 0.5, 0.5]
    assert list(inspection_order(scores)) == [1, 0, 2, 3]  # stable: file order
    assert list(inspection_order(scores, tie_breaker=["c", "z", "a", "b"])) == [1, 2, 3, 0]


def test_capacity_metrics_hand_computed() -> None:
    # 10 firms, ranked by score (already descending); labels NaN = never inspected.
    scores = np.linspace(1.0, 0.1, 10)
    y = np.array([1, np.nan, 0, 1, np.nan, 0, 1, np.nan, 0, 0])
    ipw = np.array([2.0, np.nan, 4.0, np.nan, np.nan, 4.0, 2.0, np.nan, np.nan, 4.0])
    truth = np.array([1, 1, 0, 1, 0, 0, 1, 0, 0, 0])
    table = capacity_metrics(scores, y, capacities=(0.2, 0.4), sample_weight=ipw,
                             true_violation=truth)
    assert list(table.columns) == list(CAPACITY_COLUMNS)
    at20, at40 = table.iloc[0], table.iloc[1]
    # top 2: rows 0, 1 → one labelled (positive), one unlabelled
    assert at20["n_inspected"] == 2
    assert at20["hit_rate"] == pytest.approx(1.0)
    assert at20["recall"] == pytest.approx(1 / 3)
    assert at20["true_per_inspection"] == pytest.approx(1.0)
    assert at20["pct_of_oracle"] == pytest.approx(1.0)
    # top 4: rows 0-3 → labelled 1, 0, 1 → 2/3; random-draw rows 0 (w2, y1), 2 (w4, y0)
    assert at40["hit_rate"] == pytest.approx(2 / 3)
    assert at40["hit_rate_weighted"] == pytest.approx(2 / 6)
    # weighted positives in population: rows 0 (2) and 6 (2) → found 2 of 4
    assert at40["recall_weighted"] == pytest.approx(0.5)
    assert at40["true_found"] == 3
    assert at40["true_recall"] == pytest.approx(3 / 4)
    assert at40["pct_of_oracle"] == pytest.approx(3 / 4)  # oracle finds min(4, 4) = 4


def test_capacity_metrics_without_optional_inputs_gives_nan_columns() -> None:
    table = capacity_metrics([0.9, 0.1], [1, 0], capacities=(0.5,))
    assert table.loc[0, "hit_rate"] == 1.0
    assert np.isnan(table["hit_rate_weighted"].to_numpy()[0])
    assert np.isnan(table["true_per_inspection"].to_numpy()[0])


def test_weight_on_unlabelled_row_is_rejected() -> None:
    with pytest.raises(ValueError, match="position 1 has a weight"):
        capacity_metrics([0.9, 0.5], [1, np.nan], sample_weight=[2.0, 3.0])


def test_uniform_random_expectation_is_analytic() -> None:
    y = np.array([1, 0, np.nan, 1, 0, 0, np.nan, 0, 1, 0])
    ipw = np.array([2, 2, np.nan, np.nan, 2, np.nan, np.nan, 2, 2, np.nan], dtype=float)
    truth = np.array([1, 0, 1, 1, 0, 0, 0, 0, 1, 0])
    expected = uniform_random_expectation(y, 0.3, sample_weight=ipw, true_violation=truth)
    assert expected["n_inspected"] == 3
    assert expected["hit_rate"] == pytest.approx(3 / 8)
    assert expected["hit_rate_weighted"] == pytest.approx(4 / 10)
    assert expected["recall"] == pytest.approx(0.3)
    assert expected["true_per_inspection"] == pytest.approx(0.4)
    assert expected["pct_of_oracle"] == pytest.approx(0.3 * 4 / 3)
    # Matches the average over many uniform draws of 3 of 10 firms.
    rng = np.random.default_rng(0)
    drawn = np.argsort(rng.uniform(size=(20_000, 10)), axis=1)[:, :3]
    assert truth[drawn].sum(axis=1).mean() / 3 == pytest.approx(0.4, abs=0.01)
    assert (y[drawn] == 1).sum(axis=1).mean() == pytest.approx(expected["hits"], abs=0.02)
    assert (~np.isnan(y[drawn])).sum(axis=1).mean() == pytest.approx(
        expected["n_labelled_inspected"], abs=0.02)


# --------------------------------------------------------------------------- IPW


def test_weighted_rates_hand_computed() -> None:
    y = np.array([1, 0, 1, np.nan, 0])
    w = np.array([2.0, 3.0, np.nan, np.nan, 5.0])
    table = weighted_rates(y, w)
    row = table.iloc[0]
    assert row["n"] == 5 and row["n_labelled"] == 4 and row["n_random"] == 3
    assert row["positive_rate"] == pytest.approx(2 / 4)
    assert row["est_positives"] == pytest.approx(2.0)
    assert row["est_population"] == pytest.approx(10.0)
    assert row["positive_rate_weighted"] == pytest.approx(0.2)
    assert row["positive_rate_ht"] == pytest.approx(2 / 5)
    assert row["effective_n"] == pytest.approx(100 / 38)


def test_ipw_removes_the_bias_of_targeted_sampling() -> None:
    """Past targeting over-samples risky firms; 1/π weighting recovers the true rate."""
    rng = np.random.default_rng(7)
    n = 40_000
    risky = rng.uniform(size=n) < 0.2
    violates = rng.uniform(size=n) < np.where(risky, 0.5, 0.05)
    true_rate = violates.mean()
    pi = np.where(risky, 0.5, 0.05)  # class-dependent sampling ratios
    drawn = rng.uniform(size=n) < pi
    y = np.where(drawn, violates.astype(float), np.nan)
    w = np.where(drawn, 1 / pi, np.nan)
    table = weighted_rates(y, w, groups=np.where(risky, "C", "A"))
    overall = weighted_rates(y, w).iloc[0]
    assert overall["positive_rate"] > true_rate + 0.1  # naive rate is badly biased
    assert overall["positive_rate_weighted"] == pytest.approx(true_rate, abs=0.015)
    assert overall["positive_rate_ht"] == pytest.approx(true_rate, abs=0.015)
    by_group = table.set_index("group")
    assert by_group.loc["C", "positive_rate_weighted"] == pytest.approx(0.5, abs=0.03)


# --------------------------------------------------------------------------- summary and table


def _fold(seed: int = 0, n: int = 400) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.01, 0.6, size=n)
    truth = (rng.uniform(size=n) < p).astype(int)
    inspected = rng.uniform(size=n) < 0.4
    y = np.where(inspected, truth, np.nan).astype(float)
    random_draw = inspected & (rng.uniform(size=n) < 0.5)
    ipw = np.where(random_draw, 5.0, np.nan)
    return {"p": p, "y": y, "ipw": ipw, "truth": truth}


def test_evaluate_scores_summary_is_consistent_and_json_ready() -> None:
    data = _fold()
    summary = evaluate_scores("lgbm", data["p"], data["p"], data["y"], data["ipw"],
                              data["truth"], capacities=(0.05, 0.10))
    labelled = ~np.isnan(data["y"])
    assert summary["n_labelled"] == labelled.sum()
    assert summary["auc"] == pytest.approx(roc_auc_score(data["y"][labelled], data["p"][labelled]))
    assert 0.5 < summary["auc_true"] < 1
    assert [c["capacity"] for c in summary["capacity"]] == [0.05, 0.10]
    at10 = summary["capacity"][1]
    # a useful model finds more true violations per visit than uniform random sampling
    assert at10["true_per_inspection"] > at10["random_true_per_inspection"]
    flat = summary_metrics(summary)
    assert flat[capacity_key("true_per_inspection", 0.10)] == at10["true_per_inspection"]
    assert capacity_key("hit_rate_weighted", 0.1) == "hit_rate_weighted_at_10pct"


def test_backtest_records_are_strict_json_with_null_for_missing() -> None:
    data = _fold(4)
    rows = [dict(evaluate_scores("rules", data["p"], None, data["y"], None), fold="2023-12-31")]
    records = backtest_records(rows, capacity=0.05)
    assert records[0]["model"] == "rules" and records[0]["fold"] == "2023-12-31"
    assert records[0]["capacity"] == 0.05
    assert records[0]["ece"] is None and records[0]["true_per_inspection"] is None
    assert records[0]["hit_rate"] == pytest.approx(rows[0]["capacity"][0]["hit_rate"])
    assert json.loads(json.dumps(records, allow_nan=False)) == records


def test_evaluate_scores_without_probabilities_or_random_labels() -> None:
    data = _fold(1)
    summary = evaluate_scores("scorecard", data["p"] * 100, None, data["y"], None)
    assert math.isnan(summary["brier"]) and math.isnan(summary["ece_weighted"])
    assert math.isnan(summary["auc_weighted"])
    assert summary["auc"] > 0.5


def test_format_backtest_table_is_bilingual_aligned_and_marks_missing() -> None:
    data = _fold(2)
    rows = [
        dict(evaluate_scores("lightgbm", data["p"], data["p"], data["y"], data["ipw"],
                             data["truth"]), fold="2023-06-30"),
        dict(evaluate_scores("rules", data["p"] * 100, None, data["y"], data["ipw"]),
             fold="2023-06-30"),
    ]
    text = format_backtest_table(rows, capacity=0.10)
    lines = text.splitlines()
    for header in ("模型", "model", "命中率@10%", "hit@10%", "真实违法/次@10%",
                   "true viol. per insp.@10%", "占神谕比例", "% of oracle", "ECE", "Brier"):
        assert header in text
    assert lines[3].startswith("lightgbm") and lines[4].startswith("rules")
    assert "—" in lines[4]  # the rule model has no probabilities → no Brier/ECE
    with pytest.raises(ValueError, match=r"no capacity metrics at 0\.3"):
        format_backtest_table(rows, capacity=0.3)


def _display_cells(line: str) -> list[str]:
    """One entry per terminal column; a wide CJK character fills two."""
    cells: list[str] = []
    for char in line:
        cells += [char, ""] if unicodedata.east_asian_width(char) in "WF" else [char]
    return cells


def test_format_backtest_table_aligns_columns_with_chinese_headers() -> None:
    data = _fold(3)
    rows = [evaluate_scores(name, data["p"], data["p"], data["y"], data["ipw"])
            for name in ("a", "longer_model_name")]
    lines = format_backtest_table(rows).splitlines()
    rule = lines[2]
    spans = [(m.start(), m.end()) for m in re.finditer(r"-+", rule)]
    assert len(spans) >= 12
    for line in (lines[0], lines[1], lines[3], lines[4]):
        cells = _display_cells(line.ljust(len(rule)))
        for (_, end), (next_start, _) in zip(spans, [*spans[1:], (len(rule) + 2, 0)],
                                                strict=True):
            gap = "".join(cells[end:next_start])
            assert gap.strip() == "", f"text spills out of its column in {line!r}"
    body = _display_cells(lines[4])
    assert "".join(body[spans[0][0]:spans[0][1]]).strip() == "longer_model_name"
    assert "".join(_display_cells(lines[0])[spans[0][0]:spans[0][1]]).strip() == "模型"

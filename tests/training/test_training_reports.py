"""Model card and figures: what an auditor reads and what the run record shows."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from features.catalogue import FeatureInfo
from training.metrics import reliability_table
from training.model_card import GOVERNANCE_NOTE, markdown_table, render_model_card
from training.plots import (
    calibration_plot,
    feature_labels,
    shap_summary_plot,
    waterfall_plot,
)

CATALOGUE = {
    "penalties_3y": FeatureInfo("penalties_3y", "supervision", "近三年行政处罚次数",
                                "administrative penalties, last 3 years", direction=1),
    "complaints_1y": FeatureInfo("complaints_1y", "social", "近一年投诉举报次数",
                                 "complaints, last year", direction=1),
    "age_years": FeatureInfo("age_years", "basic", "成立年限", "years since registration"),
    "ownership_type": FeatureInfo("ownership_type", "basic", "所有制类型", "ownership type",
                                  model_input=False),
}


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


# --------------------------------------------------------------------------- model card


def test_model_card_has_bilingual_sections_governance_and_content() -> None:
    metrics = pd.DataFrame({"model": ["lightgbm", "rules"], "auc": [0.7812345, np.nan],
                            "note": ["ok", "a | b"]})
    fairness = pd.DataFrame({"attribute": ["ownership_type"], "group": ["foreign"],
                             "ratio_high_class": [1.1], "flag": [False]})
    card = render_model_card(
        model_name="enterprise_risk", version="7",
        intended_use_zh="为双随机抽查分配检查力量。",
        intended_use_en="Allocates random-inspection effort across enterprises.",
        data_window={"train_start": "2021-01-01", "as_of": "2024-01-01"},
        features=CATALOGUE, metrics_table=metrics, fairness_table=fairness,
        limits=[("标签来自过往检查", "labels come from past inspections"),
                "模拟数据 / simulated data"],
        policy_version="2024.1",
    )
    for heading in ("# 模型卡 / Model card: enterprise_risk v7", "## 用途 / Intended use",
                    "## 数据 / Data", "## 指标 / Metrics", "## 公平性 / Fairness",
                    "## 局限 / Limits"):
        assert heading in card
    assert GOVERNANCE_NOTE in card and "不评价、不惩戒、不公开、不免抽" in card
    assert "`2024.1`" in card and "| as_of | 2024-01-01 |" in card
    assert "| lightgbm | 0.7812 | ok |" in card
    assert "| rules | — | a \\| b |" in card  # NaN shown as a dash, pipes escaped
    assert "近三年行政处罚次数 / administrative penalties, last 3 years" in card
    assert "监管信息 / supervision records" in card
    assert "↑ 只增风险 / can only raise risk" in card
    # audit-only attributes are listed apart from the model inputs
    inputs, audit = card.split("### 仅用于审计的属性")
    assert "`ownership_type`" not in inputs.split("### 特征 / Features")[1]
    assert "`ownership_type`" in audit.split("## 指标")[0]
    assert "- 标签来自过往检查 / labels come from past inspections" in card


def test_model_card_without_fairness_table_says_so() -> None:
    card = render_model_card(
        model_name="m", version="1", intended_use_zh="用途", intended_use_en="use",
        data_window={}, features=list(CATALOGUE.values())[:1],
        metrics_table=pd.DataFrame(), fairness_table=None, limits=[], policy_version="p")
    assert "未提供 / not provided" in card
    assert "无数据 / no rows" in card
    assert "仅用于审计" not in card


def test_markdown_table_shape() -> None:
    table = markdown_table(pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}))
    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1 | x |", "| 2 | y |"]


# --------------------------------------------------------------------------- figures


def test_calibration_plot_draws_each_model_and_saves_without_warnings() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(size=300)
    y = (rng.uniform(size=300) < p).astype(int)
    tables = {"lightgbm": reliability_table(y, p, 10),
              "logistic": reliability_table(y, np.clip(p * 0.5, 0, 1), 10)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        figure = calibration_plot(tables)
        png = _png(figure)
    assert png.startswith(b"\x89PNG")
    ax = figure.axes[0]
    legend = ax.get_legend()
    assert legend is not None
    assert [t.get_text() for t in legend.get_texts()] == ["perfect", "lightgbm", "logistic"]
    np.testing.assert_allclose(np.asarray(ax.lines[1].get_xdata()),
                               tables["lightgbm"]["p_mean"])
    with pytest.raises(ValueError, match="lacks"):
        calibration_plot(pd.DataFrame({"p_mean": [0.1]}))


def test_shap_summary_orders_features_by_mean_absolute_contribution() -> None:
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"penalties_3y": rng.poisson(1, 200).astype(float),
                      "complaints_1y": rng.poisson(1, 200).astype(float),
                      "age_years": rng.uniform(0, 30, 200)})
    X.loc[:5, "age_years"] = np.nan
    contributions = pd.DataFrame({"penalties_3y": 0.8 * X["penalties_3y"] - 0.8,
                                  "complaints_1y": 0.1 * X["complaints_1y"],
                                  "age_years": rng.normal(0, 0.4, 200)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        figure = shap_summary_plot(contributions, X, feature_labels(CATALOGUE), max_features=2)
        _png(figure)
    labels = [t.get_text() for t in figure.axes[0].get_yticklabels()]
    # top of the chart (last tick) is the most important feature; only 2 shown
    assert labels == ["years since registration", "administrative penalties, last 3 years"]
    with pytest.raises(ValueError, match="shape"):
        shap_summary_plot(np.zeros((3, 2)), X)
    with pytest.raises(ValueError, match="not in X"):
        shap_summary_plot(pd.DataFrame({"unknown": np.zeros(200)}), X)


def test_waterfall_bars_add_up_to_the_model_output() -> None:
    contributions = pd.Series({"penalties_3y": 1.2, "complaints_1y": 0.3, "age_years": -0.5,
                               "capital": 0.05, "staff": -0.02})
    values = pd.Series({"penalties_3y": 4, "complaints_1y": 1, "age_years": 12.5,
                        "capital": 100.0, "staff": np.nan})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        figure = waterfall_plot(contributions, values, feature_labels(CATALOGUE),
                                base_value=-2.0, max_features=3)
        _png(figure)
    ax = figure.axes[0]
    widths = [p.get_width() for p in ax.patches if isinstance(p, Rectangle)]
    assert len(widths) == 4
    assert sum(widths) == pytest.approx(contributions.sum())
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0] == "2 other features"  # bottom: the merged small contributions
    assert labels[-1] == "administrative penalties, last 3 years = 4"  # top: the largest
    assert np.asarray(ax.lines[-1].get_xdata())[0] == pytest.approx(-2.0 + contributions.sum())
    with pytest.raises(ValueError, match="no feature value"):
        waterfall_plot(contributions, values.drop("staff"))


def test_plots_accept_treeshap_output_with_its_bias_column() -> None:
    """models.explain.shap_contributions adds a constant 'bias' column: the summary ignores
    it and the waterfall starts from it."""
    X = pd.DataFrame({"penalties_3y": [0.0, 2.0, 5.0], "age_years": [1.0, 10.0, 20.0]})
    contributions = pd.DataFrame({"penalties_3y": [-0.4, 0.2, 1.0], "age_years": [0.1, 0.0, -0.1],
                                  "bias": [-2.5, -2.5, -2.5]})
    summary = shap_summary_plot(contributions, X)
    assert len(summary.axes[0].get_yticklabels()) == 2
    figure = waterfall_plot(contributions.iloc[2], X.iloc[2])
    assert np.asarray(figure.axes[0].lines[0].get_xdata())[0] == pytest.approx(-2.5)
    assert np.asarray(figure.axes[0].lines[-1].get_xdata())[0] == pytest.approx(-1.6)

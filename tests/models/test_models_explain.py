"""SHAP contributions (exact, additive, equal to the shap package) and bilingual reasons."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest
from models_synthetic import CATALOGUE, MODEL_INPUTS

from models.baselines import LogisticBaseline
from models.calibration import CalibratedRiskModel
from models.explain import (
    BIAS_COLUMN,
    REASON_COLUMNS,
    check_catalogue_labels,
    global_importance,
    reason_code,
    shap_contributions,
    top_reasons,
)
from models.lgbm import RiskClassifier

Data = tuple[pd.DataFrame, pd.Series, np.ndarray]


@pytest.fixture(scope="module")
def sample(later_data: Data) -> pd.DataFrame:
    return later_data[0].iloc[:400]


def test_contributions_add_up_to_the_raw_score(
    fitted_classifier: RiskClassifier, sample: pd.DataFrame
) -> None:
    contributions = shap_contributions(fitted_classifier, sample)
    assert list(contributions.columns) == [*MODEL_INPUTS, BIAS_COLUMN]
    assert contributions.index.equals(sample.index)
    np.testing.assert_allclose(
        contributions.sum(axis=1).to_numpy(),
        fitted_classifier.decision_function(sample),
        rtol=0,
        atol=1e-6,
    )


def test_contributions_equal_the_shap_package(
    fitted_classifier: RiskClassifier, sample: pd.DataFrame
) -> None:
    contributions = shap_contributions(fitted_classifier, sample)
    with warnings.catch_warnings():  # shap's own deprecation and output-format notices
        warnings.simplefilter("ignore")
        import shap

        explainer = shap.TreeExplainer(fitted_classifier.booster_)
        values = explainer.shap_values(sample[MODEL_INPUTS].to_numpy())
    if isinstance(values, list):  # older shap: one array per class for binary LightGBM
        values = values[-1]
    values = np.asarray(values)
    assert values.shape == (len(sample), len(MODEL_INPUTS))
    np.testing.assert_allclose(contributions[MODEL_INPUTS].to_numpy(), values, rtol=0, atol=1e-6)
    expected = np.ravel(explainer.expected_value)[-1]
    np.testing.assert_allclose(contributions[BIAS_COLUMN].to_numpy(), expected, atol=1e-6)


def test_calibrated_model_is_explained_through_its_base(
    calibrated_model: CalibratedRiskModel,
    fitted_classifier: RiskClassifier,
    sample: pd.DataFrame,
) -> None:
    reordered = sample[list(reversed(sample.columns))]
    pd.testing.assert_frame_equal(
        shap_contributions(calibrated_model, reordered),
        shap_contributions(fitted_classifier, sample),
    )


def test_models_without_trees_are_refused(train_data: Data) -> None:
    X, y, _ = train_data
    with pytest.raises(TypeError, match="LightGBM"):
        shap_contributions(LogisticBaseline(CATALOGUE).fit(X, y), X)


def _reference_reasons(row: pd.Series, k: int) -> list[tuple[str, bool]]:
    """Per-row reference: positive contributions largest first, else negative ones."""
    features = row.drop(BIAS_COLUMN)
    positive = features[features > 0].sort_values(ascending=False, kind="stable")
    if len(positive):
        return [(name, True) for name in positive.index[:k]]
    negative = features[features < 0].sort_values(ascending=True, kind="stable")
    return [(name, False) for name in negative.index[:k]]


def test_top_reasons_match_a_row_by_row_reference(
    fitted_classifier: RiskClassifier, sample: pd.DataFrame
) -> None:
    contributions = shap_contributions(fitted_classifier, sample)
    reasons = top_reasons(contributions, sample, CATALOGUE, k=3)
    assert list(reasons.columns) == REASON_COLUMNS
    assert (reasons["contribution"] != 0).all()
    for entity in sample.index[:120]:
        got = reasons[reasons["entity"] == entity]
        expected = _reference_reasons(contributions.loc[entity], k=3)
        assert list(zip(got["feature"], got["raises_risk"], strict=True)) == expected
        assert got["rank"].tolist() == list(range(1, len(expected) + 1))
        np.testing.assert_array_equal(
            got["value"].to_numpy(), sample.loc[entity, got["feature"].tolist()].to_numpy()
        )


def _crafted(contribs: dict[str, list[float]], values: dict[str, list[float]]) -> tuple:
    index = pd.Index([f"e{i}" for i in range(len(next(iter(contribs.values()))))])
    contributions = pd.DataFrame(contribs, index=index).assign(bias=-2.0)
    return contributions, pd.DataFrame(values, index=index)


def test_reason_texts_codes_and_risk_lowering_fallback() -> None:
    catalogue = {k: CATALOGUE[k] for k in ("penalties_365d", "tax_score", "firm_age_years")}
    contributions, X = _crafted(
        {
            "penalties_365d": [0.8, -0.1, 0.0],
            "tax_score": [0.3, -0.5, 0.0],
            "firm_age_years": [-0.2, 0.0, 0.0],
        },
        {
            "penalties_365d": [2.0, 0.0, 0.0],
            "tax_score": [np.nan, 95.5, 80.0],
            "firm_age_years": [1.25, 12.0, 3.0],
        },
    )
    reasons = top_reasons(contributions, X, catalogue, k=3)
    first = reasons[reasons["entity"] == "e0"]
    assert first["feature"].tolist() == ["penalties_365d", "tax_score"]  # positives only
    assert first["text_zh"].tolist() == [
        "近365天行政处罚次数为2次，风险上升",
        "纳税信用评分缺失，风险上升",
    ]
    assert first["text_en"].tolist() == [
        "penalties in the last 365 days: 2 times, raised the risk",
        "tax credit score: missing, raised the risk",
    ]
    assert first["reason_code"].tolist() == ["ENT-SUP-PENALTIES_365D", "ENT-DYN-TAX_SCORE"]
    second = reasons[reasons["entity"] == "e1"]  # nothing raised the risk
    assert second["feature"].tolist() == ["tax_score", "penalties_365d"]
    assert not second["raises_risk"].any()
    assert second["text_zh"].iloc[0] == "纳税信用评分为95.5分，风险下降"
    assert second["text_en"].iloc[0] == "tax credit score: 95.5, lowered the risk"
    assert "e2" not in set(reasons["entity"])  # all-zero contributions: no reasons


def test_k_larger_than_the_feature_count_and_bad_inputs() -> None:
    catalogue = {k: CATALOGUE[k] for k in ("penalties_365d", "tax_score")}
    contributions, X = _crafted(
        {"penalties_365d": [0.5], "tax_score": [0.1]},
        {"penalties_365d": [1.0], "tax_score": [60.0]},
    )
    assert top_reasons(contributions, X, catalogue, k=10)["rank"].tolist() == [1, 2]
    with pytest.raises(ValueError, match="index"):
        top_reasons(contributions, X.set_axis(["other"]), catalogue)
    with pytest.raises(ValueError, match="tax_score"):
        top_reasons(contributions, X, {"penalties_365d": CATALOGUE["penalties_365d"]})
    with pytest.raises(ValueError, match="k must be"):
        top_reasons(contributions, X, catalogue, k=0)


def test_catalogue_labels_must_be_bilingual() -> None:
    check_catalogue_labels(CATALOGUE)
    broken = {
        "a": dataclasses.replace(CATALOGUE["penalties_365d"], name="a", zh=""),
        "b": dataclasses.replace(CATALOGUE["tax_score"], name="b", en="纳税"),
        "c": dataclasses.replace(CATALOGUE["tax_score"], name="not_c"),
    }
    with pytest.raises(ValueError) as error:
        check_catalogue_labels(broken)
    message = str(error.value)
    assert "a: Chinese label" in message
    assert "b: English label" in message
    assert "c: catalogue key differs" in message


def test_reason_codes_are_stable_identifiers() -> None:
    assert reason_code(CATALOGUE["complaints_90d"]) == "ENT-SOC-COMPLAINTS_90D"
    project = dataclasses.replace(
        CATALOGUE["log_capital"], name="excavation-depth m", group="project"
    )
    assert reason_code(project) == "PRJ-PRO-EXCAVATION_DEPTH_M"


def test_global_importance_is_mean_absolute_contribution() -> None:
    contributions, _ = _crafted(
        {"penalties_365d": [0.5, -0.5], "tax_score": [-2.0, 0.0]},
        {"penalties_365d": [0.0, 0.0], "tax_score": [0.0, 0.0]},
    )
    importance = global_importance(contributions)
    assert importance.to_dict() == {"tax_score": 1.0, "penalties_365d": 0.5}

"""RiskModelBundle: round trip through joblib gives the same scores and fingerprint."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from models.calibration import CalibratedRiskModel
from models.classes import cutoffs_from_shares
from models.serialization import RiskModelBundle, model_fingerprint

Data = tuple[pd.DataFrame, pd.Series, np.ndarray]


def _bundle(model: CalibratedRiskModel, X: pd.DataFrame) -> RiskModelBundle:
    shares = {"A": 0.5, "B": 0.3, "C": 0.15, "D": 0.05}
    return RiskModelBundle(
        model=model,
        feature_names=tuple(model.feature_names_),
        catalogue_name="test-catalogue",
        cutoffs=tuple(cutoffs_from_shares(model.predict_proba(X)[:, 1], shares)),
        policy_version="2024.1",
        policy_hash="0" * 64,
        training_window=(date(2022, 1, 1), date(2022, 12, 31)),
        calibration_window=(date(2023, 1, 1), date(2023, 6, 30)),
    )


def test_save_load_round_trip_scores_identically(
    calibrated_model: CalibratedRiskModel, later_data: Data, tmp_path: Path
) -> None:
    X = later_data[0]
    bundle = _bundle(calibrated_model, X)
    loaded = RiskModelBundle.load(bundle.save(tmp_path / "bundle.joblib"))
    pd.testing.assert_frame_equal(loaded.predict(X), bundle.predict(X))
    assert loaded.fingerprint() == bundle.fingerprint()
    assert loaded.version_mismatches() == {}
    scored = bundle.predict(X)
    assert list(scored.columns) == ["raw_score", "probability", "score_class"]
    assert scored["score_class"].value_counts(normalize=True)["A"] == pytest.approx(0.5, abs=0.01)


def test_mlflow_params_are_flat_strings(
    calibrated_model: CalibratedRiskModel, later_data: Data
) -> None:
    params = _bundle(calibrated_model, later_data[0]).mlflow_params()
    assert all(isinstance(v, str) for v in params.values())
    assert params["training_window"] == "2022-01-01/2022-12-31"
    assert params["policy_version"] == "2024.1"
    assert len(params["model_fingerprint"]) == 64
    assert "lib_lightgbm" in params


def test_inconsistent_bundles_are_rejected(
    calibrated_model: CalibratedRiskModel, later_data: Data, tmp_path: Path
) -> None:
    bundle = _bundle(calibrated_model, later_data[0])
    with pytest.raises(ValueError, match="feature_names"):
        RiskModelBundle(
            **{**bundle.__dict__, "feature_names": tuple(reversed(bundle.feature_names))}
        )
    with pytest.raises(ValueError, match="cut-offs"):
        RiskModelBundle(**{**bundle.__dict__, "cutoffs": (0.1, 0.2)})
    with pytest.raises(ValueError, match="training_window"):
        RiskModelBundle(
            **{**bundle.__dict__, "training_window": (date(2023, 1, 1), date(2022, 1, 1))}
        )
    not_a_bundle = tmp_path / "other.joblib"
    joblib.dump({"model": None}, not_a_bundle)
    with pytest.raises(TypeError, match="RiskModelBundle"):
        RiskModelBundle.load(not_a_bundle)


def test_fingerprint_changes_with_the_calibration(
    calibrated_model: CalibratedRiskModel, later_data: Data
) -> None:
    X, y, _ = later_data
    platt = CalibratedRiskModel(calibrated_model.base, method="sigmoid").fit(X, y)
    refit = CalibratedRiskModel(calibrated_model.base).fit(X, y)
    assert model_fingerprint(platt) != model_fingerprint(calibrated_model)
    assert model_fingerprint(refit) == model_fingerprint(calibrated_model)

"""Session fixtures: synthetic training and later-slice data, fitted models."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from models_synthetic import CATALOGUE, make_frame

from models.calibration import CalibratedRiskModel
from models.lgbm import RiskClassifier


@pytest.fixture(scope="session")
def train_data() -> tuple[pd.DataFrame, pd.Series, np.ndarray]:
    return make_frame(4000, seed=1)


@pytest.fixture(scope="session")
def later_data() -> tuple[pd.DataFrame, pd.Series, np.ndarray]:
    """A later slice: the calibration / validation data."""
    return make_frame(3000, seed=2)


@pytest.fixture(scope="session")
def fitted_classifier(train_data: tuple[pd.DataFrame, pd.Series, np.ndarray]) -> RiskClassifier:
    X, y, _ = train_data
    return RiskClassifier(CATALOGUE, n_estimators=120, n_jobs=1).fit(X, y)


@pytest.fixture(scope="session")
def calibrated_model(
    fitted_classifier: RiskClassifier, later_data: tuple[pd.DataFrame, pd.Series, np.ndarray]
) -> CalibratedRiskModel:
    X, y, _ = later_data
    return CalibratedRiskModel(fitted_classifier).fit(X, y)

"""A small simulated district with a registered champion, built once per test session.

Shared by the store, audit and nightly tests (imported by module name: tests/serving has no
__init__.py). `champion_home` copies the built home for each caller, so a test that moves
an alias or writes snapshots never disturbs another; model artifacts stay in the original
(the registry refers to them by absolute path).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import inspect

from serving.settings import Settings, load_settings

PG_URL_ENV = "RISKMATRIX_TEST_PG_URL"
AS_OF = pd.Timestamp("2026-10-01")
ENTERPRISES = 1_500
CHUNK = 400  # several chunks on the small district


@lru_cache(maxsize=1)
def _built_home() -> Path:
    """Simulate, ingest, train a 30-tree model, register v1 (with a drift reference) as
    champion and v2 (same trees, no reference) as a spare version."""
    from mlflow.tracking import MlflowClient

    from features.catalogue import model_inputs
    from features.ingest import ingest_directory
    from features.labels import build_enterprise_labels
    from features.snapshot import load_snapshot
    from models.calibration import CalibratedRiskModel
    from models.lgbm import RiskClassifier
    from simulation.district import DistrictConfig, simulate_district
    from simulation.io import write_district
    from supervision.policy import load_policy
    from training.enterprise import EnterpriseData
    from training.monitoring import REFERENCE_ARTIFACT, reference_json, training_reference
    from training.registry import configure_mlflow, log_training_run, set_alias

    root = Path(tempfile.mkdtemp(prefix="riskmatrix-serving-"))
    source = root / "source"
    district = simulate_district(DistrictConfig(enterprises=ENTERPRISES, years=3, seed=23))
    write_district(district, source, fmt="parquet")
    home = root / "home"
    report = ingest_directory(source, home / "snapshots")
    policy = load_policy()
    data = EnterpriseData(load_snapshot(report.snapshot_dir), policy)
    catalogue = policy.feature_catalogue()
    inputs = model_inputs(catalogue)
    train_at, calibrate_at = pd.Timestamp("2025-01-01"), pd.Timestamp("2025-07-01")
    kwargs = policy.enterprise_label_kwargs()
    X_train = data.features(train_at)
    y_train = build_enterprise_labels(data.snapshot, train_at, **kwargs)["label"].reindex(
        X_train.index).fillna(0).astype(int)
    X_cal = data.features(calibrate_at)
    y_cal = build_enterprise_labels(data.snapshot, calibrate_at, **kwargs)["label"].reindex(
        X_cal.index).fillna(0).astype(int)
    base = RiskClassifier(catalogue, inputs, n_estimators=30, min_child_samples=20)
    model = CalibratedRiskModel(base.fit(X_train, y_train)).fit(X_cal, y_cal)

    configure_mlflow(home)
    versions = []
    for with_reference in (True, False):
        registered = log_training_run(
            experiment="enterprise-credit-risk", model=model, params={"n_estimators": 30},
            data_window={"train": str(train_at.date()), "calibration": str(calibrate_at.date())},
            tables={}, figures={}, policy_version=policy.version,
            policy_hash=policy.content_hash, model_card_md="# test\n",
            input_example=X_train[inputs].head(3).astype("float64"),
            registered_name="enterprise-credit-risk")
        if with_reference:
            reference = training_reference(X_train[inputs], inputs,
                                           model.predict_proba(X_train)[:, 1], bins=10)
            MlflowClient().log_text(registered.run_id, reference_json(reference),
                                    REFERENCE_ARTIFACT)
        versions.append(registered.version)
    set_alias("enterprise-credit-risk", "champion", versions[0])
    return home


def champion_home(destination: Path) -> Path:
    """A private copy of the built home (snapshots + MLflow store) at `destination`."""
    shutil.copytree(_built_home(), destination)
    return destination


def settings_for(home: Path, database_url: str) -> Settings:
    saved = {k: os.environ.pop(k, None) for k in ("RISKMATRIX_DB_URL", "RISKMATRIX_MLFLOW_URI",
                                                  "RISKMATRIX_POLICY")}
    try:
        settings = load_settings(home)
    finally:
        for key, value in saved.items():
            if value is not None:
                os.environ[key] = value
    return replace(settings, database_url=database_url)


def backends() -> list[object]:
    """sqlite always; PostgreSQL when RISKMATRIX_TEST_PG_URL is set, else skipped."""
    return [
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.skipif(
            not os.environ.get(PG_URL_ENV),
            reason=f"{PG_URL_ENV} not set (run .ci/postgres.sh to start a local server)")),
    ]


def empty_database(backend: str, directory: Path, name: str = "results") -> Iterator[str]:
    """A URL of an empty results database: a fresh SQLite file, or the test PostgreSQL
    database with every riskmatrix table dropped before and after."""
    if backend == "sqlite":
        yield f"sqlite:///{directory / f'{name}.db'}"
        return
    from serving.store import create_store_engine, metadata

    url = os.environ[PG_URL_ENV]
    engine = create_store_engine(url)

    def wipe() -> None:
        metadata.drop_all(engine)
        assert not inspect(engine).get_table_names()

    wipe()
    try:
        yield url
    finally:
        wipe()
        engine.dispose()

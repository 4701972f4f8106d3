"""MLflow registry: log, register, alias, load back, gate promotion — on a temporary SQLite
store, and once against a real `mlflow server` reached only through its URI."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from mlflow.tracking import MlflowClient
from sklearn.linear_model import LogisticRegression

from training.registry import (
    URI_ENV,
    PromotionRules,
    RegisteredVersion,
    configure_mlflow,
    gate_checks,
    get_version_by_alias,
    load_model,
    log_training_run,
    numeric_metrics,
    promote_if_better,
    set_alias,
)

SERVER_BOOT_SECONDS = 180


class TinyRiskClassifier:
    """Stands in for models.RiskClassifier: same sklearn conventions, not an sklearn class."""

    def __init__(self, c: float = 1.0) -> None:
        self.c = c

    def fit(self, X: pd.DataFrame, y: pd.Series) -> TinyRiskClassifier:
        self.model_ = LogisticRegression(C=self.c).fit(X, y)
        return self

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.model_.decision_function(X))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.model_.predict_proba(X))


def _data(seed: int = 0, n: int = 120) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"penalties_3y": rng.poisson(1.0, n).astype(float),
                      "complaints_1y": rng.poisson(0.5, n).astype(float),
                      "age_years": rng.uniform(0, 30, n)})
    y = pd.Series((X["penalties_3y"] + rng.normal(0, 1, n) > 1.2).astype(int))
    return X, y


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """Start `mlflow server` as soon as the module starts, so its slow boot overlaps the
    other tests; only the server test waits for it. Killed (its process group) at the end."""
    root = tmp_path_factory.mktemp("mlflow_server")
    port = _free_port()
    log = (root / "server.log").open("wb")
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true",
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{root / 'backend.db'}",
         "--artifacts-destination", str(root / "artifacts"), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )
    try:
        yield {"url": f"http://127.0.0.1:{port}", "process": process, "root": root}
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=15)
        log.close()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
         ) -> Iterator[Path]:
    """One embedded store for the module: MLflow's first DB migration costs seconds.

    Also boots the tracking server early when the server test is selected.
    """
    if any(item.get_closest_marker("slow") and getattr(item, "module", None) is request.module
           for item in request.session.items):
        request.getfixturevalue("server")
    patch = pytest.MonkeyPatch()
    patch.delenv(URI_ENV, raising=False)
    path = tmp_path_factory.mktemp("riskmatrix_home")
    configure_mlflow(path)
    yield path
    patch.undo()


@pytest.fixture(autouse=True)
def _embedded_store(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(URI_ENV, raising=False)
    configure_mlflow(home)


def _log(name: str, model: TinyRiskClassifier, X: pd.DataFrame, **overrides: object
         ) -> RegisteredVersion:
    figure = Figure()
    figure.add_subplot().plot([0, 1], [0, 1])
    arguments: dict[str, object] = dict(
        experiment="enterprise-credit-risk",
        model=model,
        params={"c": model.c, "lightgbm": {"num_leaves": 15}},
        data_window={"train_start": "2021-01-01", "train_end": "2023-06-30",
                     "as_of": "2023-07-01"},
        tables={"backtest": pd.DataFrame({"model": ["tiny"], "auc": [0.71]})},
        figures={"calibration": figure},
        policy_version="2024.1",
        policy_hash="sha256:abc123",
        model_card_md="# 模型卡 / Model card\n",
        input_example=X.head(5),
        registered_name=name,
        metrics={"auc": 0.71, "ece_weighted": float("nan"),
                 "capacity": {"hit_rate_at_10pct": np.float64(0.4)}},
    )
    arguments.update(overrides)
    return log_training_run(**arguments)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- configuration


def test_uri_precedence_parameter_then_env_then_embedded_default(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert configure_mlflow(tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow/mlflow.db"
    assert (tmp_path / "mlflow" / "artifacts").is_dir()
    monkeypatch.setenv(URI_ENV, "http://127.0.0.1:5999")
    assert configure_mlflow(tmp_path) == "http://127.0.0.1:5999"
    assert configure_mlflow(tmp_path, "sqlite:////elsewhere/x.db") == "sqlite:////elsewhere/x.db"


def test_numeric_metrics_flattens_and_drops_non_numbers() -> None:
    flat = numeric_metrics({"auc": 0.7, "n": 3, "ok": True, "name": "x", "nan": float("nan"),
                            "capacity": [{"hit@10%": np.float32(0.5)}]})
    assert flat == {"auc": 0.7, "n": 3.0, "capacity.0.hit_10_": 0.5}


# --------------------------------------------------------------------------- run + registry


def test_log_register_alias_and_load_back_predicting_identically(home: Path) -> None:
    X, y = _data()
    model = TinyRiskClassifier(c=0.5).fit(X, y)
    registered = _log("enterprise_risk", model, X)
    assert registered.version == "1" and registered.model_uri == "models:/enterprise_risk/1"

    client = MlflowClient()
    run = client.get_run(registered.run_id)
    assert run.data.params["c"] == "0.5" and run.data.params["lightgbm.num_leaves"] == "15"
    assert run.data.metrics == {"auc": 0.71, "capacity.hit_rate_at_10pct": 0.4}
    assert run.data.tags["policy_version"] == "2024.1"
    assert run.data.tags["policy_hash"] == "sha256:abc123"
    assert run.data.tags["data_window.as_of"] == "2023-07-01"
    artifacts = {a.path for a in client.list_artifacts(registered.run_id)}
    assert {"model_card.md", "tables", "figures", "data_window.json"} <= artifacts
    tables = {a.path for a in client.list_artifacts(registered.run_id, "tables")}
    assert tables == {"tables/backtest.csv", "tables/backtest.json"}
    assert [a.path for a in client.list_artifacts(registered.run_id, "figures")] == [
        "figures/calibration.png"]
    version = client.get_model_version("enterprise_risk", "1")
    assert version.tags["policy_version"] == "2024.1"
    # everything stays inside the riskmatrix home
    assert any((home / "mlflow" / "artifacts").rglob("model.pkl"))

    set_alias("enterprise_risk", "champion", registered.version)
    assert get_version_by_alias("enterprise_risk", "champion") == "1"
    assert get_version_by_alias("enterprise_risk", "no_such_alias") is None
    assert get_version_by_alias("no_such_model", "champion") is None
    for reference in ("champion", 1, "1"):
        loaded = load_model("enterprise_risk", reference)
        np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
        np.testing.assert_array_equal(loaded.decision_function(X), model.decision_function(X))
    with pytest.raises(LookupError, match="has no alias 'staging'"):
        load_model("enterprise_risk", "staging")


def test_pyfunc_signature_serves_probabilities(home: Path) -> None:
    import mlflow.pyfunc

    X, y = _data(1)
    model = TinyRiskClassifier().fit(X, y)
    registered = _log("enterprise_risk_pyfunc", model, X)
    pyfunc = mlflow.pyfunc.load_model(registered.model_uri)
    assert pyfunc.metadata.get_input_schema().input_names() == list(X.columns)
    np.testing.assert_allclose(np.asarray(pyfunc.predict(X)), model.predict_proba(X))


# --------------------------------------------------------------------------- promotion gate

RULES = PromotionRules.from_mapping({
    "primary_metric": "true_per_inspection_at_10pct",
    "min_improvement": 0.005,
    "max_ece": 0.02,
    "ece_metric": "ece_weighted",
    "fairness_gate": "no_flags",
})


def _metrics(primary: float, ece: float = 0.01, flags: int = 0) -> dict[str, float]:
    return {"true_per_inspection_at_10pct": primary, "ece_weighted": ece,
            "fairness_flags": flags}


def test_promotion_gate_over_successive_challengers(home: Path) -> None:
    X, y = _data(2)
    name = "enterprise_risk_gate"
    versions = [_log(name, TinyRiskClassifier(c=c).fit(X, y), X) for c in (1.0, 0.5, 0.2, 0.1)]
    client = MlflowClient()

    first = promote_if_better(name, versions[0].version, challenger_metrics=_metrics(0.30),
                              champion_metrics=None, rules=RULES)
    assert first.promoted and first.champion_before is None
    assert get_version_by_alias(name, "champion") == "1"
    assert "尚无冠军模型" in first.reasons and "no champion yet" in first.reasons

    with pytest.raises(ValueError, match="no champion_metrics"):
        promote_if_better(name, versions[1].version, challenger_metrics=_metrics(0.5),
                          champion_metrics=None, rules=RULES)

    worse = promote_if_better(name, versions[1].version, challenger_metrics=_metrics(0.28),
                              champion_metrics=_metrics(0.30), rules=RULES)
    assert not worse.promoted and worse.champion_after == "1"
    assert get_version_by_alias(name, "challenger") == "2"
    assert get_version_by_alias(name, "champion") == "1"
    assert "not better than the champion" in worse.reasons and "主指标未超过冠军" in worse.reasons

    miscalibrated = promote_if_better(name, versions[2].version,
                                      challenger_metrics=_metrics(0.35, ece=0.05),
                                      champion_metrics=_metrics(0.30), rules=RULES)
    assert not miscalibrated.promoted
    failed = [c for c in miscalibrated.checks if not c.passed]
    assert [c.check for c in failed] == ["calibration"]
    assert "exceeds the limit 0.02" in failed[0].en and "校准不合格" in failed[0].zh
    assert get_version_by_alias(name, "champion") == "1"

    better = promote_if_better(name, versions[3].version,
                               challenger_metrics=_metrics(0.36, ece=0.015),
                               champion_metrics=_metrics(0.30), rules=RULES)
    assert better.promoted and better.champion_before == "1" and better.champion_after == "4"
    assert get_version_by_alias(name, "champion") == "4"
    assert get_version_by_alias(name, "challenger") == "4"

    # the decision and its reasons are recorded on the challenger's run
    run = client.get_run(versions[2].run_id)
    assert run.data.tags["promotion.decision"] == "kept_as_challenger"
    assert "miscalibrated" in run.data.tags["promotion.reasons"]
    saved = client.download_artifacts(versions[3].run_id, "promotion/decision.json",
                                      str(home / "download"))
    record = json.loads(Path(saved).read_text(encoding="utf-8"))
    assert record["promoted"] is True and record["challenger_version"] == "4"
    assert client.get_model_version(name, "4").tags["promotion.decision"] == "promoted"


def test_gate_fairness_modes_and_direction() -> None:
    champion = _metrics(0.30, flags=2)
    strict = gate_checks(_metrics(0.40, flags=1), champion, RULES)
    assert [c.passed for c in strict] == [True, True, False]
    lenient_rules = PromotionRules.from_mapping({
        "primary_metric": "true_per_inspection_at_10pct", "min_improvement": 0.0,
        "max_ece": 0.02, "ece_metric": "ece_weighted",
        "fairness_gate": "not_worse_than_champion"})
    assert all(c.passed for c in gate_checks(_metrics(0.40, flags=2), champion, lenient_rules))
    assert not gate_checks(_metrics(0.40, flags=3), champion, lenient_rules)[2].passed
    # an improvement smaller than min_improvement is not enough
    assert not gate_checks(_metrics(0.303), _metrics(0.30), RULES)[0].passed
    # a metric where lower is better (e.g. Brier)
    brier_rules = PromotionRules.from_mapping({
        "primary_metric": "brier", "min_improvement": 0.0, "max_ece": 0.02,
        "ece_metric": "ece_weighted", "fairness_gate": "no_flags", "higher_is_better": False})
    assert gate_checks({"brier": 0.10, "ece_weighted": 0.01, "fairness_flags": 0},
                       {"brier": 0.12}, brier_rules)[0].passed
    # NaN calibration cannot pass
    nan_ece = gate_checks(_metrics(0.4, ece=float("nan")), None, RULES)[1]
    assert not nan_ece.passed and "cannot be assessed" in nan_ece.en


def test_rules_from_policy_mapping_report_bad_keys() -> None:
    base = {"primary_metric": "auc", "min_improvement": 0.0, "max_ece": 0.02,
            "ece_metric": "ece_weighted", "fairness_gate": "no_flags"}
    with pytest.raises(ValueError, match=r"unknown promotion key\(s\) \['max_eec'\]"):
        PromotionRules.from_mapping({**base, "max_eec": 0.1}, source="policy.yaml")
    with pytest.raises(ValueError, match=r"lack \['max_ece'\]"):
        PromotionRules.from_mapping({k: v for k, v in base.items() if k != "max_ece"})
    with pytest.raises(ValueError, match="fairness_gate must be"):
        PromotionRules.from_mapping({**base, "fairness_gate": "sometimes"})
    with pytest.raises(ValueError, match="challenger metrics lack 'true_per_inspection_at_10pct'"):
        gate_checks({"ece_weighted": 0.01, "fairness_flags": 0}, None, RULES)


# --------------------------------------------------------------------------- tracking server


def _wait_for_health(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + SERVER_BOOT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"mlflow server exited early:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"mlflow server not healthy after {SERVER_BOOT_SECONDS}s:\n"
                f"{log.read_text(errors='replace')[-3000:]}")


@pytest.mark.slow
def test_tracking_server_reached_through_its_uri_alone(
        server: dict[str, object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = str(server["url"])
    root = Path(str(server["root"]))
    process = server["process"]
    assert isinstance(process, subprocess.Popen)
    _wait_for_health(url, process, root / "server.log")
    monkeypatch.setenv(URI_ENV, url)
    assert configure_mlflow(tmp_path / "client_home") == url

    X, y = _data(3)
    model = TinyRiskClassifier().fit(X, y)
    registered = _log("enterprise_risk_remote", model, X)
    set_alias(registered.name, "champion", registered.version)
    loaded = load_model(registered.name, "champion")
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    # artifacts went through the server to its artifact store, nothing into the client home
    assert any((root / "artifacts").rglob("model_card.md"))
    assert not (tmp_path / "client_home" / "mlflow").exists()

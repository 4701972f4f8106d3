"""MLflow tracking and model registry: log a training run, register it, gate its promotion.

Where things live: by default an embedded store inside the riskmatrix home —
``sqlite:///<home>/mlflow/mlflow.db`` with artifacts under ``<home>/mlflow/artifacts`` — so
nothing is written outside the home and no server is needed on a district's one machine. A
tracking server is used by giving its URI (parameter, or env ``RISKMATRIX_MLFLOW_URI``).

Models are logged with the scikit-learn flavour, serialised with cloudpickle (our estimators
follow sklearn conventions but are not all skops-safe types; the registry is written only
by our own training job), with an explicit pip requirement list so MLflow never tries to
infer an environment, and telemetry off: the machine has no internet.

Aliases carry the deployment state: ``challenger`` = the latest candidate, ``champion`` =
what scoring uses. ``promote_if_better`` moves ``champion`` only through the policy gate.
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

# Set before MLflow is imported: no telemetry calls and no git-discovery warnings offline.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

URI_ENV = "RISKMATRIX_MLFLOW_URI"
MODEL_ARTIFACT_NAME = "model"
_RUNTIME_DISTRIBUTIONS = ("scikit-learn", "numpy", "pandas", "lightgbm", "scipy", "cloudpickle")
_MAX_PARAM_LENGTH = 6000
_MAX_TAG_LENGTH = 8000

_state: dict[str, Path | str | None] = {"uri": None, "artifact_root": None}


class _DropPickleAdvice(logging.Filter):
    """MLflow warns on every cloudpickle save/load; the choice is deliberate (module doc)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pickle or cloudpickle format" not in record.getMessage()


def _quiet_mlflow() -> None:
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("mlflow.sklearn").addFilter(_DropPickleAdvice())
    logging.getLogger("alembic").setLevel(logging.WARNING)


# --------------------------------------------------------------------------- configuration


def configure_mlflow(home: Path, tracking_uri: str | None = None) -> str:
    """Point MLflow at the tracking/registry store and return its URI.

    Precedence: ``tracking_uri`` argument, then env ``RISKMATRIX_MLFLOW_URI``, then the
    embedded SQLite store in ``<home>/mlflow``. For any non-HTTP store the artifacts of new
    experiments go to ``<home>/mlflow/artifacts``; a tracking server decides its own.
    """
    _quiet_mlflow()
    base = Path(home).expanduser().resolve() / "mlflow"
    uri = tracking_uri or os.environ.get(URI_ENV) or ""
    if not uri:
        base.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{base / 'mlflow.db'}"
    artifact_root: Path | None = None
    if not uri.startswith(("http://", "https://", "databricks")):
        artifact_root = base / "artifacts"
        artifact_root.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    _state.update(uri=uri, artifact_root=artifact_root)
    return uri


def _client() -> MlflowClient:
    if _state["uri"] is None:
        raise RuntimeError("MLflow is not configured: call configure_mlflow(home) first")
    return MlflowClient(tracking_uri=str(_state["uri"]), registry_uri=str(_state["uri"]))


def _experiment_id(experiment: str) -> str:
    client = _client()
    found = client.get_experiment_by_name(experiment)
    if found is not None:
        return str(found.experiment_id)
    root = _state["artifact_root"]
    location = (Path(root) / experiment).as_uri() if root is not None else None
    try:
        return str(client.create_experiment(experiment, artifact_location=location))
    except MlflowException:  # created concurrently by another process
        again = client.get_experiment_by_name(experiment)
        if again is None:
            raise
        return str(again.experiment_id)


# --------------------------------------------------------------------------- logging a run


@dataclass(frozen=True)
class RegisteredVersion:
    """One registered model version and the run that produced it."""

    name: str
    version: str
    run_id: str

    @property
    def model_uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Nested mappings/sequences → ('a.b.0.c', leaf) pairs."""
    if isinstance(value, Mapping):
        for key, inner in value.items():
            yield from _flatten(inner, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list | tuple):
        for i, inner in enumerate(value):
            yield from _flatten(inner, f"{prefix}.{i}" if prefix else str(i))
    else:
        yield prefix, value


def _safe_key(key: str) -> str:
    """MLflow keys allow letters, digits, _ - . / space and colon; map the rest to '_'."""
    return "".join(ch if ch.isascii() and (ch.isalnum() or ch in "_-./ :") else "_"
                   for ch in key)


def numeric_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Finite numeric leaves of a nested metrics mapping, keyed by their MLflow-safe path."""
    flat: dict[str, float] = {}
    for key, value in _flatten(metrics):
        if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.number):
            continue
        number = float(value)
        if math.isfinite(number):
            flat[_safe_key(key)] = number
    return flat


def _param_values(params: Mapping[str, Any]) -> dict[str, str]:
    return {_safe_key(k): str(v)[:_MAX_PARAM_LENGTH] for k, v in _flatten(params)}


def _git_commit() -> str | None:
    """The source commit when the code runs from a git checkout with history, else None."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
            capture_output=True, text=True, timeout=5, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = result.stdout.strip()
    return commit if result.returncode == 0 and commit else None


def runtime_requirements() -> list[str]:
    """Pinned requirements of the installed runtime, so MLflow need not infer (network)."""
    pins = []
    for dist in _RUNTIME_DISTRIBUTIONS:
        try:
            pins.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    return pins


def _predict_fn(model: Any) -> str:
    return "predict_proba" if hasattr(model, "predict_proba") else "predict"


def _register(client: MlflowClient, name: str, source: str, run_id: str, model_id: str | None,
              tags: Mapping[str, str]) -> str:
    """Create the registered model if needed and a new version of it.

    Done through the client rather than ``registered_model_name=`` because MLflow's fluent
    path prints progress lines to stderr on every registration.
    """
    try:
        client.create_registered_model(name)
    except MlflowException as error:
        if error.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
    created = client.create_model_version(name=name, source=source, run_id=run_id,
                                          tags=dict(tags), model_id=model_id)
    return str(created.version)


def log_training_run(
    *,
    experiment: str,
    model: Any,
    params: Mapping[str, Any],
    data_window: Mapping[str, Any],
    tables: Mapping[str, pd.DataFrame],
    figures: Mapping[str, Figure],
    policy_version: str,
    policy_hash: str,
    model_card_md: str,
    input_example: pd.DataFrame,
    registered_name: str,
    metrics: Mapping[str, Any] | None = None,
    run_name: str | None = None,
    pip_requirements: Sequence[str] | None = None,
) -> RegisteredVersion:
    """Log one trained model with its evidence and register it as a new version.

    Logged: ``params`` (flattened), finite numeric ``metrics`` (nested mappings flattened
    to dotted keys), each table as ``tables/<name>.csv`` and ``.json``, each figure as
    ``figures/<name>.png``, the card as ``model_card.md``, ``data_window.json``; tags
    ``policy_version``, ``policy_hash``, ``data_window.*`` and ``git_commit`` when known.
    The model's pyfunc predicts ``predict_proba`` (else ``predict``) with a signature
    inferred from ``input_example``.
    """
    client = _client()
    experiment_id = _experiment_id(experiment)
    tags = {"policy_version": policy_version, "policy_hash": policy_hash}
    tags.update({f"data_window.{k}": str(v) for k, v in _flatten(data_window)})
    commit = _git_commit()
    if commit:
        tags["git_commit"] = commit
    predict_fn = _predict_fn(model)
    signature = infer_signature(input_example, getattr(model, predict_fn)(input_example))
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        run_id = run.info.run_id
        mlflow.set_tags({_safe_key(k): v[:_MAX_TAG_LENGTH] for k, v in tags.items()})
        if params:
            mlflow.log_params(_param_values(params))
        if metrics:
            mlflow.log_metrics(numeric_metrics(metrics))
        for name, table in tables.items():
            mlflow.log_text(table.to_csv(index=False), f"tables/{name}.csv")
            mlflow.log_text(table.to_json(orient="records", force_ascii=False),
                            f"tables/{name}.json")
        for name, figure in figures.items():
            mlflow.log_figure(figure, f"figures/{name}.png")
        mlflow.log_text(model_card_md, "model_card.md")
        mlflow.log_text(json.dumps(dict(data_window), ensure_ascii=False, default=str,
                                   indent=2), "data_window.json")
        info = mlflow.sklearn.log_model(
            model,
            name=MODEL_ARTIFACT_NAME,
            signature=signature,
            input_example=input_example,
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
            pip_requirements=list(pip_requirements or runtime_requirements()),
            pyfunc_predict_fn=predict_fn,
        )
    version = _register(client, registered_name, info.model_uri, run_id, info.model_id,
                        {k: tags[k] for k in ("policy_version", "policy_hash")})
    return RegisteredVersion(name=registered_name, version=version, run_id=run_id)


# --------------------------------------------------------------------------- aliases


def set_alias(name: str, alias: str, version: str | int) -> None:
    """Point ``alias`` of registered model ``name`` at ``version`` (moves it if set)."""
    _client().set_registered_model_alias(name, alias, str(version))


def get_version_by_alias(name: str, alias: str) -> str | None:
    """The version ``alias`` points at, or None when the alias (or the model) is unknown."""
    try:
        return str(_client().get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def version_metrics(name: str, version: str | int) -> dict[str, float]:
    """The metrics logged with the run that produced a registered version (gate input)."""
    client = _client()
    run_id = client.get_model_version(name, str(version)).run_id
    return dict(client.get_run(str(run_id)).data.metrics)


def load_model(name: str, alias_or_version: str | int) -> Any:
    """The native model object of a version number or an alias ('champion', 3, '3')."""
    _client()  # fail early with a clear message when MLflow is not configured
    ref = str(alias_or_version)
    if not ref.isdigit() and get_version_by_alias(name, ref) is None:
        raise LookupError(f"模型 {name} 没有别名 {ref} / registered model {name!r} has no "
                          f"alias {ref!r}")
    uri = f"models:/{name}/{ref}" if ref.isdigit() else f"models:/{name}@{ref}"
    return mlflow.sklearn.load_model(uri)


# --------------------------------------------------------------------------- promotion gate

FairnessGate = Literal["no_flags", "not_worse_than_champion"]


@dataclass(frozen=True)
class PromotionRules:
    """Promotion policy (from the policy file).

    ``primary_metric`` must improve on the champion's by more than 0 and by at least
    ``min_improvement`` (absolute; direction by ``higher_is_better``). ``ece_metric`` (e.g.
    'ece_weighted') must be finite and ≤ ``max_ece``. Fairness reads the flag count
    ``fairness_metric``: ``no_flags`` requires zero flags; ``not_worse_than_champion``
    requires no more flags than the champion (and zero when there is no champion yet), so
    a disparity present in the data itself does not block every model forever while a
    model that adds one is still refused.
    """

    primary_metric: str
    min_improvement: float
    max_ece: float
    ece_metric: str
    fairness_gate: FairnessGate
    fairness_metric: str = "fairness_flags"
    higher_is_better: bool = True
    champion_alias: str = "champion"
    challenger_alias: str = "challenger"

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str = "policy") -> PromotionRules:
        """Build from a policy-file section, with errors that name the offending key."""
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{source}: unknown promotion key(s) {unknown}; known: "
                             f"{sorted(known)}")
        required = ("primary_metric", "min_improvement", "max_ece", "ece_metric",
                    "fairness_gate")
        missing = [k for k in required if k not in data]
        if missing:
            raise ValueError(f"{source}: promotion rules lack {missing}")
        if data["fairness_gate"] not in ("no_flags", "not_worse_than_champion"):
            raise ValueError(f"{source}: fairness_gate must be 'no_flags' or "
                             f"'not_worse_than_champion', got {data['fairness_gate']!r}")
        for key in ("min_improvement", "max_ece"):
            if not isinstance(data[key], int | float) or data[key] < 0:
                raise ValueError(f"{source}: {key} must be a number >= 0, got {data[key]!r}")
        return cls(**data)


@dataclass(frozen=True)
class GateCheck:
    """One check of the gate, with its reason in Chinese and English."""

    check: str
    passed: bool
    zh: str
    en: str

    @property
    def text(self) -> str:
        return f"{'✓' if self.passed else '✗'} {self.zh} / {self.en}"


@dataclass(frozen=True)
class PromotionDecision:
    """What the gate decided for a challenger, and why."""

    name: str
    challenger_version: str
    promoted: bool
    champion_before: str | None
    champion_after: str | None
    checks: tuple[GateCheck, ...] = field(default_factory=tuple)

    @property
    def reasons(self) -> str:
        verdict = ("晋升为冠军 / promoted to champion" if self.promoted
                   else "保留为挑战者 / kept as challenger")
        lines = [f"{self.name} v{self.challenger_version}: {verdict}"]
        lines += [c.text for c in self.checks]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["reasons"] = self.reasons
        return data


def _metric(metrics: Mapping[str, Any], key: str, who: str) -> float:
    if key not in metrics:
        raise ValueError(f"{who} metrics lack {key!r} required by the promotion rules; "
                         f"available: {sorted(metrics)}")
    value = metrics[key]
    return float("nan") if value is None else float(value)


def _calibration_check(challenger: Mapping[str, Any], rules: PromotionRules) -> GateCheck:
    ece = _metric(challenger, rules.ece_metric, "challenger")
    key, limit = rules.ece_metric, rules.max_ece
    if not math.isfinite(ece):
        return GateCheck("calibration", False, f"无法评估校准（{key} 缺失）",
                         f"calibration cannot be assessed ({key} is not available)")
    if ece > limit:
        return GateCheck("calibration", False, f"校准不合格：{key} = {ece:.4f} 超过上限 {limit:g}",
                         f"miscalibrated: {key} = {ece:.4f} exceeds the limit {limit:g}")
    return GateCheck("calibration", True, f"校准合格：{key} = {ece:.4f} ≤ {limit:g}",
                     f"calibrated: {key} = {ece:.4f} ≤ {limit:g}")


def _fairness_check(challenger: Mapping[str, Any], champion: Mapping[str, Any] | None,
                    rules: PromotionRules) -> GateCheck:
    flags = _metric(challenger, rules.fairness_metric, "challenger")
    if not math.isfinite(flags):
        return GateCheck("fairness", False, "无法评估公平性（标记数缺失）",
                         f"fairness cannot be assessed ({rules.fairness_metric} missing)")
    allowed = 0.0
    if rules.fairness_gate == "not_worse_than_champion" and champion is not None:
        allowed = _metric(champion, rules.fairness_metric, "champion")
        allowed = allowed if math.isfinite(allowed) else 0.0
    if flags > allowed:
        return GateCheck("fairness", False,
                         f"公平性不合格：{flags:g} 项差异标记，允许 {allowed:g} 项",
                         f"fairness: {flags:g} flagged disparities, {allowed:g} allowed")
    return GateCheck("fairness", True, f"公平性合格：{flags:g} 项差异标记（允许 {allowed:g}）",
                     f"fair: {flags:g} flagged disparities ({allowed:g} allowed)")


def _primary_check(challenger: Mapping[str, Any], champion: Mapping[str, Any] | None,
                   rules: PromotionRules) -> GateCheck:
    key = rules.primary_metric
    value = _metric(challenger, key, "challenger")
    if not math.isfinite(value):
        return GateCheck("primary_metric", False, f"主指标 {key} 不可用",
                         f"primary metric {key} is not available")
    if champion is None:
        return GateCheck("primary_metric", True, f"尚无冠军模型；{key} = {value:.4f}",
                         f"no champion yet; {key} = {value:.4f}")
    incumbent = _metric(champion, key, "champion")
    gain = (value - incumbent) if rules.higher_is_better else (incumbent - value)
    if not math.isfinite(incumbent) or (gain > 0 and gain >= rules.min_improvement):
        return GateCheck("primary_metric", True,
                         f"主指标提升：{key} {value:.4f} 对比冠军 {incumbent:.4f}",
                         f"better: {key} {value:.4f} vs champion {incumbent:.4f}")
    return GateCheck("primary_metric", False,
                     f"主指标未超过冠军（需提升 ≥ {rules.min_improvement:g}）："
                     f"{key} {value:.4f} 对比 {incumbent:.4f}",
                     f"not better than the champion by ≥ {rules.min_improvement:g}: "
                     f"{key} {value:.4f} vs {incumbent:.4f}")


def gate_checks(challenger_metrics: Mapping[str, Any],
                champion_metrics: Mapping[str, Any] | None,
                rules: PromotionRules) -> tuple[GateCheck, ...]:
    """The three checks of the gate (pure): primary metric, calibration, fairness."""
    return (
        _primary_check(challenger_metrics, champion_metrics, rules),
        _calibration_check(challenger_metrics, rules),
        _fairness_check(challenger_metrics, champion_metrics, rules),
    )


def _record_decision(client: MlflowClient, run_id: str, decision: PromotionDecision) -> None:
    verdict = "promoted" if decision.promoted else "kept_as_challenger"
    client.set_tag(run_id, "promotion.decision", verdict)
    client.set_tag(run_id, "promotion.reasons", decision.reasons[:_MAX_TAG_LENGTH])
    client.log_text(run_id, json.dumps(decision.to_dict(), ensure_ascii=False, indent=2),
                    "promotion/decision.json")
    client.set_model_version_tag(decision.name, decision.challenger_version,
                                 "promotion.decision", verdict)


def promote_if_better(
    name: str,
    challenger_version: str | int,
    *,
    challenger_metrics: Mapping[str, Any],
    champion_metrics: Mapping[str, Any] | None,
    rules: PromotionRules,
) -> PromotionDecision:
    """Alias the challenger, move ``champion`` to it only if every gate check passes.

    Metrics are flat name → value maps from the latest fold (``summary_metrics`` plus the
    fairness flag count). The gate applies to the first model too: with no champion the
    primary-metric check passes, but calibration and fairness must still hold. Passing
    ``champion_metrics=None`` while a champion exists is an error (nothing to compare).
    The decision and its bilingual reasons are tagged on the challenger's run and saved
    as ``promotion/decision.json``.
    """
    client = _client()
    version = str(challenger_version)
    challenger = client.get_model_version(name, version)
    client.set_registered_model_alias(name, rules.challenger_alias, version)
    champion_before = get_version_by_alias(name, rules.champion_alias)
    if champion_before == version:
        checks: tuple[GateCheck, ...] = (GateCheck(
            "already_champion", False, "该版本已是冠军", "this version is already the champion"),)
    else:
        if champion_before is not None and champion_metrics is None:
            raise ValueError(f"{name}: version {champion_before} is champion but no "
                             "champion_metrics were given to compare against")
        checks = gate_checks(challenger_metrics, champion_metrics, rules)
    promoted = all(c.passed for c in checks)
    if promoted:
        client.set_registered_model_alias(name, rules.champion_alias, version)
    decision = PromotionDecision(
        name=name, challenger_version=version, promoted=promoted,
        champion_before=champion_before,
        champion_after=version if promoted else champion_before, checks=checks,
    )
    _record_decision(client, str(challenger.run_id), decision)
    return decision

"""The nightly batch: ingest, features, scores, classes, reasons, publication, monitoring.

`run_nightly(settings, as_of)` scores every enterprise of the current snapshot with the
champion model and publishes the run to the results store. What it guarantees:

* **Atomic.** Rows are written while the run is `in_progress`; readers only see complete
  runs, and the status flips in the same transaction as the monitoring rows and the audit
  anchor. Until then the previous complete run is what everyone reads.
* **Idempotent.** A run is identified by its key: sha256 of (as-of date, snapshot input hash,
  model name and version, policy hash, reasons per entity). Re-running a complete key
  reports "already complete" and writes nothing.
* **Resumable.** Enterprises are sorted by credit code and cut into fixed chunks (the chunk
  size is stored with the run). Each chunk — scores, reasons, audit records and a chunk
  marker — commits in one transaction; a re-run skips committed chunks, so the result equals
  an uninterrupted run.
* **Bounded memory.** Features are built once (vectorised), then scoring, TreeSHAP, reasons
  and writes go chunk by chunk. Monitoring runs right after the chunks and projects, then the
  feature frame is dropped before the trigger stage, which reads only the tagged firms'
  registry rows and records and only their reason texts (at 1M firms the whole-district
  versions of those were the night's peak).
* **Explains only what changed.** TreeSHAP costs 100+ times a prediction. Path-dependent
  TreeSHAP depends on an input only through the side of every split it falls on, so two
  inputs with the same *explanation key* — each feature binned on the model's own split
  thresholds, NaN and LightGBM's zero band kept apart — have bit-identical contributions
  (and raw scores). An entity whose key, model version and policy hash match the reasons
  source run gets its top-k contributions from there; the reason texts are re-rendered from
  today's values (days-since counters move daily without crossing a split). A raw-input
  hash would miss almost every entity after one day, because day counters change nightly.

Projects and triggers: after the enterprise chunks, the project stage places every project
under construction on the risk matrix with the registered project champion (skipped, and
said so, when there is none) and the trigger stage runs the digital-economy triggers on the
case book with this run's classes; each commits its rows, audit records and a stage record
in one transaction inside the run's lifetime, so the guarantees above hold for them too.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from functools import cache, partial
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import yaml
from sqlalchemy import Connection, Engine, select, update
from tqdm import tqdm

from features.catalogue import FeatureInfo, model_inputs
from features.enterprise_features import build_enterprise_features
from features.ingest import IngestReport, discover_sources, ingest_directory, input_hash
from features.snapshot import (
    SnapshotError,
    current_snapshot,
    load_snapshot,
    snapshot_manifest,
)
from models.classes import assign_classes
from models.explain import BIAS_COLUMN, booster_of, shap_contributions, top_reasons
from models.inputs import feature_matrix
from models.scoring import ClassRules, feature_hashes, row_digests
from serving.audit import (
    DECISION,
    PROJECT_GRADE,
    RUN_PUBLISHED,
    TRIGGER_CASE,
    AuditEntry,
    append_entries,
    decision_payload,
    decision_record,
    lock_chain,
)
from serving.scoring import ServingError, class_rules
from serving.settings import Settings
from serving.store import (
    RUN_COMPLETE,
    RUN_IN_PROGRESS,
    RUN_SUPERSEDED,
    RunRecord,
    as_date,
    chunk_totals,
    complete_run_on,
    completed_chunks,
    enterprise_score,
    enterprise_scores,
    get_run,
    insert_rows,
    json_ready,
    latest_complete_run,
    latest_reusable_run,
    monitoring,
    monitoring_payloads,
    open_store,
    project_grades,
    reasons,
    record_policy,
    run_by_key,
    run_chunks,
    runs,
    stored_policy,
    trigger_cases,
    utc_now,
)
from supervision.policy import Policy, load_policy, parse_policy
from training.enterprise import REGISTERED_NAME, audit_fairness, fairness_frame
from training.monitoring import (
    REFERENCE_ARTIFACT,
    DriftThresholds,
    class_changes,
    frame_records,
    population_profile,
    population_stability,
    transition_matrix,
)

DEFAULT_CHUNK_SIZE = 50_000
DEFAULT_TOP_K = 3
# LightGBM reads any |x| <= kZeroThreshold as exactly 0 when it predicts (meta.h:
# `const double kZeroThreshold = 1e-35f`, a float constant widened to double).
LIGHTGBM_ZERO_THRESHOLD = float(np.float32(1e-35))

ChunkHook = Callable[[int], None]
StageHook = Callable[[str], None]
PROJECT_STAGE = "projects"
TRIGGER_STAGE = "triggers"
STAGE_KIND_PREFIX = "stage."


# --------------------------------------------------------------------------- explanation keys


_THRESHOLD_CACHE: weakref.WeakKeyDictionary[lgb.Booster, tuple[int, Any]] = (
    weakref.WeakKeyDictionary())


def _split_thresholds(booster: lgb.Booster) -> dict[int, np.ndarray] | None:
    """Sorted distinct thresholds per feature index; None when a split is categorical.

    Cached per booster (keyed weakly, checked against its tree count): `dump_model` walks the
    whole model into Python objects and every chunk asks. The arrays are read-only, shared.
    """
    trees = booster.num_trees()
    cached = _THRESHOLD_CACHE.get(booster)
    if cached is not None and cached[0] == trees:
        thresholds: dict[int, np.ndarray] | None = cached[1]
        return thresholds
    thresholds = _thresholds_of(booster)
    _THRESHOLD_CACHE[booster] = (trees, thresholds)
    return thresholds


def _thresholds_of(booster: lgb.Booster) -> dict[int, np.ndarray] | None:
    found: dict[int, set[float]] = {}
    stack = [tree["tree_structure"] for tree in booster.dump_model()["tree_info"]]
    while stack:
        node = stack.pop()
        if "split_feature" not in node:
            continue
        if node.get("decision_type") != "<=":
            return None
        found.setdefault(int(node["split_feature"]), set()).add(float(node["threshold"]))
        stack.extend((node["left_child"], node["right_child"]))
    thresholds = {f: np.array(sorted(t), dtype=np.float64) for f, t in found.items()}
    for cuts in thresholds.values():
        cuts.setflags(write=False)
    return thresholds


def split_codes(booster: lgb.Booster, matrix: np.ndarray) -> np.ndarray | None:
    """Each value replaced by its split bin: (position of its effective value among the
    feature's thresholds) × 4 + (2 if NaN, 1 if in LightGBM's zero band, else 0). LightGBM
    predicts on the effective value (|x| <= 1e-35f read as 0; NaN read as 0 by splits without
    NaN handling), so equal codes ⇒ the same side of every split of every tree ⇒ identical
    raw score and TreeSHAP contributions. None when the model has categorical splits (then
    the raw input hash is the key)."""
    thresholds = _split_thresholds(booster)
    if thresholds is None:
        return None
    widest = max((len(cuts) for cuts in thresholds.values()), default=0) * 4 + 2
    dtype = np.uint16 if widest <= np.iinfo(np.uint16).max else np.int32  # fixed per model
    missing = np.isnan(matrix)
    effective = np.where(missing, 0.0, matrix)
    in_zero_band = np.abs(effective) <= LIGHTGBM_ZERO_THRESHOLD
    effective[in_zero_band] = 0.0
    codes = np.where(missing, 2, in_zero_band).astype(dtype)
    unsplit = np.setdiff1d(np.arange(matrix.shape[1]), list(thresholds))
    codes[:, unsplit] = 0  # a feature no tree splits on cannot change a score
    columns = np.asfortranarray(effective)  # one contiguous column per feature
    for column, cuts in thresholds.items():
        position = np.searchsorted(cuts, columns[:, column], side="left")
        codes[:, column] = codes[:, column] + (position * 4).astype(dtype)
    return codes


def explanation_keys(model: Any, X: pd.DataFrame, names: Sequence[str],
                     input_hashes: pd.Series) -> pd.Series:
    """Per-entity key under which TreeSHAP reasons may be reused (see module doc)."""
    return _keys_of(model, feature_matrix(X, list(names)), input_hashes)


def _keys_of(model: Any, matrix: np.ndarray, input_hashes: pd.Series) -> pd.Series:
    codes = split_codes(booster_of(model), matrix)
    if codes is None:
        return input_hashes.rename("explain_key")
    return pd.Series(row_digests(codes), index=input_hashes.index, name="explain_key")


# --------------------------------------------------------------------------- scoring a chunk


@dataclass(frozen=True)
class ReusableReasons:
    """A source run's explanation keys and top-k (feature, contribution) by entity."""

    keys: pd.Series  # explain_key by uscc
    reasons: pd.DataFrame  # uscc, rank, feature, contribution


@dataclass(frozen=True)
class ChunkScores:
    """One chunk's scores (one row per entity) and reasons (long), with stage seconds."""

    scores: pd.DataFrame
    reasons: pd.DataFrame
    seconds: dict[str, float]

    @property
    def explained(self) -> int:
        return int(self.scores["explained"].sum())


def _chunk_contributions(model: Any, X: pd.DataFrame, names: Sequence[str], reuse: np.ndarray,
                         reusable: ReusableReasons | None) -> pd.DataFrame:
    """TreeSHAP for the rows not reused; a reused row is zero except its stored top-k, which
    `top_reasons` picks exactly again (they are the largest by construction) and renders with
    today's values. One frame for the chunk, so reasons come out in chunk order."""
    if not reuse.any() or reusable is None:
        return shap_contributions(model, X)
    matrix = np.zeros((len(X), len(names) + 1), dtype=np.float64)
    fresh = np.flatnonzero(~reuse)
    if len(fresh):
        matrix[fresh] = shap_contributions(model, X.iloc[fresh]).to_numpy()
    source = reusable.reasons
    rows = X.index.get_indexer(pd.Index(source["uscc"]))
    columns = pd.Index(list(names)).get_indexer(pd.Index(source["feature"].astype(str)))
    keep = (rows >= 0) & (columns >= 0)
    keep[keep] = reuse[rows[keep]]
    matrix[rows[keep], columns[keep]] = source["contribution"].to_numpy(np.float64)[keep]
    return pd.DataFrame(matrix, index=X.index, columns=[*names, BIAS_COLUMN])


@cache
def _side_thread() -> ThreadPoolExecutor:
    """One worker thread per process for the scoring work that overlaps TreeSHAP."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="riskmatrix-scoring")


def score_chunk(
    model: Any,
    X: pd.DataFrame,
    catalogue: Mapping[str, FeatureInfo],
    rules: ClassRules,
    *,
    previous: pd.Series | None,
    k: int,
    reusable: ReusableReasons | None = None,
) -> ChunkScores:
    """Score, classify and explain one chunk, reusing reasons where the key matches.

    With `reusable=None` this computes exactly what `models.scoring.score_population` does
    (a test holds them together), plus the explanation key and an `explained` flag.
    """
    started = time.perf_counter()
    names = list(model.feature_names_)
    matrix = feature_matrix(X, names)
    # The model inputs as one float block: every step below reads it without a conversion.
    inputs = pd.DataFrame(matrix, index=X.index, columns=names, copy=False)
    raw = np.asarray(model.decision_function(inputs), dtype=np.float64)
    probability = pd.Series(model.proba_from_raw(raw), index=X.index, name="probability")
    flags = X[[r.flag_column for r in rules.hard_rules]].astype(bool) if rules.hard_rules else None

    def classify() -> pd.DataFrame:
        return assign_classes(probability, list(rules.cutoffs), margin=rules.margin,
                              previous=previous, hard_rules=list(rules.hard_rules),
                              flags=flags, labels=rules.labels)

    def identify() -> tuple[pd.Series, pd.Series]:
        hashes = feature_hashes(inputs, names)
        return hashes, _keys_of(model, matrix, hashes)

    # Classes and hashes do not need TreeSHAP's output: they run on a side thread while
    # LightGBM (which releases the GIL) computes the contributions. Reuse needs the keys
    # first, so with a reusable run only the classes overlap.
    _split_thresholds(booster_of(model))  # read here, so the side thread never calls LightGBM
    if reusable is not None and len(reusable.keys):
        hashes, keys = identify()
        reuse = (keys == reusable.keys.reindex(X.index)).to_numpy(dtype=bool)
        side = _side_thread().submit(lambda: (classify(), hashes, keys))
    else:
        reuse = np.zeros(len(X), dtype=bool)
        side = _side_thread().submit(lambda: (classify(), *identify()))
    scored = time.perf_counter()
    contributions = _chunk_contributions(model, inputs, names, reuse, reusable)
    long = top_reasons(contributions, inputs, catalogue, k)
    classes, hashes, keys = side.result()
    explained = time.perf_counter()

    scores = pd.DataFrame({
        "raw_score": raw,
        "probability": probability,
        "score_class": classes["score_class"],
        "class": classes["class"],
        "overrides": classes["overrides"].map(",".join),
        "class_reason_zh": classes["reason_zh"],
        "class_reason_en": classes["reason_en"],
        "input_hash": hashes,
        "explain_key": keys,
        "explained": ~reuse,
    }, index=X.index)
    # "score": prediction (and reuse keys); "explain": TreeSHAP, reasons and the overlapped
    # classes and hashes. Their sum is the chunk's wall time.
    return ChunkScores(scores, long, {"score": scored - started, "explain": explained - scored})


# --------------------------------------------------------------------------- run identity


@dataclass(frozen=True)
class RunIdentity:
    """Everything a run's results depend on; its hash is the run key."""

    as_of: pd.Timestamp
    input_hash: str
    model_name: str
    model_version: str
    policy_version: str
    policy_hash: str
    top_k: int
    project_model_version: str | None = None

    @property
    def key(self) -> str:
        content: dict[str, Any] = {
            "as_of": self.as_of.strftime("%Y-%m-%d"), "input_hash": self.input_hash,
            "model_name": self.model_name, "model_version": self.model_version,
            "policy_hash": self.policy_hash, "top_k": self.top_k}
        if self.project_model_version is not None:  # keys of runs without one stay as they were
            content["project_model_version"] = self.project_model_version
        text = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def population_hash(index: pd.Index) -> str:
    return hashlib.sha256("\n".join(map(str, index)).encode("utf-8")).hexdigest()


def policy_content(policy: Policy) -> str:
    """The policy as YAML that `parse_policy` reads back to the same `content_hash` (kept
    with each run so a replay works after the file has changed)."""
    content = policy.model_dump(mode="python", by_alias=True, exclude_none=True)
    return str(yaml.safe_dump(content, allow_unicode=True, sort_keys=True))


def drift_thresholds(policy: Policy) -> DriftThresholds:
    """The PSI bands of the policy's `monitoring` section (policy, never code)."""
    section = policy.monitoring
    if section is None:
        raise ServingError(
            f"策略文件 {policy.source} 缺少 monitoring 段 (psi_flag, psi_alert, bins), 无法监测"
            f"漂移 / the policy file {policy.source} has no `monitoring:` section (psi_flag, "
            "psi_alert, bins); the nightly run needs its drift bands")
    return DriftThresholds(flag=float(section.psi_flag), alert=float(section.psi_alert),
                           bins=int(section.bins))


# --------------------------------------------------------------------------- summary


@dataclass
class NightlySummary:
    """What a nightly run did; `format()` is the bilingual end-of-run report."""

    run_id: int
    run_key: str
    as_of: str
    status: str  # "complete" | "already_complete"
    resumed_chunks: int
    n_entities: int
    snapshot_id: str
    model_name: str
    model_version: str
    policy_version: str
    class_counts: dict[str, int]
    class_changes: dict[str, int]
    explained: int
    reused: int
    drift: dict[str, Any]
    stage_seconds: dict[str, float]
    audit_head: tuple[int, str]
    ingest: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    stages: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "status"}
        data["audit_head"] = list(self.audit_head)
        return dict(json_ready(data))

    def format(self) -> str:
        state = ("已完成 (之前已发布, 未重复写入) / already complete (published before, nothing "
                 "written)" if self.status == "already_complete" else "已发布 / published")
        lines = [
            f"夜间评分 / nightly run {self.run_id} as of {self.as_of}: {state}",
            f"  快照 / snapshot {self.snapshot_id}; 模型 / model {self.model_name} "
            f"v{self.model_version}; 政策 / policy {self.policy_version}",
            f"  企业数 / enterprises: {self.n_entities:,}"
            + (f" (续跑跳过 {self.resumed_chunks} 个已提交分块 / resumed: {self.resumed_chunks} "
               "committed chunks skipped)" if self.resumed_chunks else ""),
            "  各类数量 / per class: " + ", ".join(f"{c} {n:,}" for c, n in
                                                self.class_counts.items()),
            "  类别变化 / class changes vs previous run: " + ", ".join(
                f"{k} {v:,}" for k, v in self.class_changes.items()),
            f"  解释 / explanations: 重新计算 recomputed {self.explained:,}, 复用 reused "
            f"{self.reused:,}",
        ]
        if self.ingest:
            lines.append(f"  导入 / ingest: {self.ingest.get('status')}, 拒收行 / rejected rows "
                         f"{self.ingest.get('rejected', 0):,}")
        if self.drift:
            lines.append(f"  漂移 / drift (参照 reference: {self.drift.get('reference')}): "
                         f"关注 flagged {self.drift.get('flagged', 0)}, 警报 alerts "
                         f"{self.drift.get('alerts', 0)}, 分数 score PSI "
                         f"{_psi_text(self.drift.get('score_psi'))}")
        lines += _stage_lines(self.stages)
        lines.append("  各阶段用时 / seconds per stage: " + ", ".join(
            f"{k} {v:.1f}" for k, v in self.stage_seconds.items()))
        lines.append(f"  审计链头 / audit head: seq {self.audit_head[0]} {self.audit_head[1]}")
        lines += [f"  注 / note: {note}" for note in self.notes]
        return "\n".join(lines)


def _stage_lines(stages: Mapping[str, Any]) -> list[str]:
    """One line per optional stage: what it published, or why it was skipped."""
    lines = []
    projects = stages.get(PROJECT_STAGE)
    if projects is not None:
        if projects.get("status") == "published":
            levels = ", ".join(f"{k} {v:,}" for k, v in projects.get("by_level", {}).items())
            lines.append(f"  工程 / projects: {projects.get('projects', 0):,} 个定级 graded "
                         f"({projects.get('model_name')} v{projects.get('model_version')}; "
                         f"{levels}), 到期 due {projects.get('due', 0):,}")
        else:
            lines.append(f"  工程 / projects: 跳过 skipped — {projects.get('note')}")
    triggers = stages.get(TRIGGER_STAGE)
    if triggers is not None:
        if triggers.get("status") == "published":
            lines.append(f"  触发式监管 / triggers: 新立 opened {triggers.get('opened', 0):,}, "
                         f"更新 updated {triggers.get('updated', 0):,}, 在办 open "
                         f"{triggers.get('open_cases', 0):,}, 无事不扰 undisturbed "
                         f"{triggers.get('undisturbed', 0):,} / {triggers.get('tagged', 0):,}")
        else:
            lines.append(f"  触发式监管 / triggers: 跳过 skipped — {triggers.get('note')}")
    return lines


def _psi_text(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.3f}"


def _summary_from_record(record: RunRecord, status: str) -> NightlySummary:
    data = dict(record.summary or {})
    head = data.get("audit_head") or [record.audit_head_seq or 0, record.audit_head_hash or ""]
    return NightlySummary(
        run_id=record.id, run_key=record.run_key, as_of=record.as_of.isoformat(), status=status,
        resumed_chunks=int(data.get("resumed_chunks", 0)), n_entities=record.n_entities,
        snapshot_id=record.snapshot_id, model_name=record.model_name,
        model_version=record.model_version, policy_version=record.policy_version,
        class_counts=dict(data.get("class_counts", {})),
        class_changes=dict(data.get("class_changes", {})),
        explained=int(data.get("explained", 0)), reused=int(data.get("reused", 0)),
        drift=dict(data.get("drift", {})),
        stage_seconds={k: float(v) for k, v in (record.stage_seconds or {}).items()},
        audit_head=(int(head[0]), str(head[1])), ingest=data.get("ingest"),
        notes=list(data.get("notes", [])), stages=dict(data.get("stages", {})),
    )


class StageTimer:
    """Wall-clock seconds per named stage (accumulating)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - started


# --------------------------------------------------------------------------- ingest


def source_input_hash(source: Path) -> str:
    """The input hash `ingest_directory` would give `source` (same files, same hashing)."""
    sources, _ = discover_sources(Path(source))
    hashes = {}
    for item in sources.values():
        digest = hashlib.sha256()
        with item.path.open("rb") as handle:
            for block in iter(partial(handle.read, 1 << 20), b""):
                digest.update(block)
        hashes[item.path.name] = digest.hexdigest()
    return input_hash(hashes)


def _current_input_hash(snapshot_root: Path) -> str | None:
    try:
        return str(snapshot_manifest(current_snapshot(snapshot_root)).get("input_hash", ""))
    except SnapshotError:
        return None


def ingest_if_new(source: Path, snapshot_root: Path, progress: bool) -> dict[str, Any]:
    """Ingest `source` unless the current snapshot already holds exactly these files (a
    re-run after a crash must not re-ingest, nor create a second identical snapshot)."""
    digest = source_input_hash(source)
    if digest == _current_input_hash(snapshot_root):
        manifest = snapshot_manifest(current_snapshot(snapshot_root))
        return {"status": "unchanged", "snapshot_id": manifest.get("snapshot_id"),
                "rejected": int(manifest.get("rejects", {}).get("entries", 0)),
                "rules": manifest.get("rejects", {}).get("by_rule", {})}
    report: IngestReport = ingest_directory(Path(source), snapshot_root, progress=progress)
    return {"status": "ingested", "snapshot_id": report.snapshot_id,
            "rejected": report.total_rejected, "rules": report.rule_counts}


# --------------------------------------------------------------------------- the run


@dataclass
class _Job:
    """Everything the stages share."""

    settings: Settings
    engine: Engine
    identity: RunIdentity
    snapshot_dir: Path
    policy: Policy
    model: Any
    rules: ClassRules
    catalogue: dict[str, FeatureInfo]
    features: pd.DataFrame | None  # None once released (`release_features`)
    top_k: int
    project_version: str | None = None

    def enterprise_features(self) -> pd.DataFrame:
        if self.features is None:
            raise RuntimeError("the enterprise features were released before a stage that "
                               "needs them")
        return self.features

    def release_features(self) -> None:
        """Drop the feature frame, the run's largest object, once the chunks and monitoring
        are done: the trigger stage then has its memory (the 1M-firm night peaked there)."""
        self.features = None


def _champion_version(settings: Settings) -> str:
    from training.registry import configure_mlflow, get_version_by_alias

    configure_mlflow(settings.home, settings.mlflow_uri)
    version = get_version_by_alias(REGISTERED_NAME, "champion")
    if version is None:
        raise ServingError(
            f"模型 {REGISTERED_NAME} 还没有冠军版本, 请先训练 / no champion for "
            f"{REGISTERED_NAME}: train and promote a model first")
    return version


def _snapshot_dir(settings: Settings) -> Path:
    try:
        return current_snapshot(settings.snapshots)
    except SnapshotError as error:
        raise ServingError(f"还没有可用的快照, 请先导入数据 / no snapshot yet: ingest data "
                           f"first ({error})") from None


def _enterprise_features(snapshot_dir: Path, policy: Policy, as_of: pd.Timestamp
                         ) -> pd.DataFrame:
    snapshot = load_snapshot(snapshot_dir)
    features = build_enterprise_features(snapshot, as_of, **policy.enterprise_feature_kwargs())
    del snapshot
    features.index = features.index.astype(str)
    return features.sort_index(kind="stable")


def run_nightly(
    settings: Settings,
    as_of: pd.Timestamp | str,
    source: Path | None = None,
    progress: bool = True,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    top_k: int = DEFAULT_TOP_K,
    reuse_explanations: bool = True,
    on_chunk: ChunkHook | None = None,
    on_stage: StageHook | None = None,
) -> NightlySummary:
    """Score the current snapshot as of `as_of` with the champion and publish the run.

    `source`: a directory of source tables to ingest first (skipped when the current snapshot
    already holds exactly those files). `on_chunk(k)` is called inside chunk k's transaction
    just before it commits, `on_stage(name)` after the project or trigger stage committed
    (tests raise there to simulate a crash).
    """
    if chunk_size < 1:
        raise ServingError(f"分块大小必须为正 / chunk size must be positive, got {chunk_size}")
    as_of = pd.Timestamp(as_of).normalize()
    timer = StageTimer()
    engine = open_store(settings.database_url)
    try:
        return _run(settings, engine, as_of, source, progress, timer, chunk_size=chunk_size,
                    top_k=top_k, reuse_explanations=reuse_explanations, on_chunk=on_chunk,
                    on_stage=on_stage)
    finally:
        engine.dispose()


def _run(settings: Settings, engine: Engine, as_of: pd.Timestamp, source: Path | None,
         progress: bool, timer: StageTimer, *, chunk_size: int, top_k: int,
         reuse_explanations: bool, on_chunk: ChunkHook | None,
         on_stage: StageHook | None = None) -> NightlySummary:
    ingest = None
    if source is not None:
        with timer("ingest"):
            ingest = ingest_if_new(Path(source), settings.snapshots, progress)
    with timer("load"):
        snapshot_dir = _snapshot_dir(settings)
        manifest = snapshot_manifest(snapshot_dir)
        policy = load_policy(settings.policy_path)
        drift_thresholds(policy)  # a policy without drift bands fails before any work
        version = _champion_version(settings)
        project_version = _project_champion_version(settings)
        identity = RunIdentity(as_of, str(manifest.get("input_hash", "")), REGISTERED_NAME,
                               version, policy.version, policy.content_hash, top_k,
                               project_version)
    existing = run_by_key(engine, identity.key)
    if existing is not None and existing.status == RUN_COMPLETE:
        return _summary_from_record(existing, "already_complete")
    with timer("load"):
        from training.registry import load_model

        model = load_model(REGISTERED_NAME, version)
    with timer("features"):
        job = _Job(settings, engine, identity, snapshot_dir, policy, model,
                   class_rules(policy), policy.feature_catalogue(),
                   _enterprise_features(snapshot_dir, policy, as_of), top_k, project_version)
    if job.enterprise_features().empty:
        raise ServingError(f"{as_of.date()} 没有存续企业可评分 / no enterprise exists on "
                           f"{as_of.date()} to score")
    record = _start_or_resume(job, existing, chunk_size, reuse_explanations)
    resumed = _publish_chunks(job, record, progress, on_chunk)
    with timer("projects"):
        _project_stage(job, record)
    if on_stage is not None:
        on_stage(PROJECT_STAGE)
    # Monitoring reads only committed scores and the features, never the stages after it: it
    # runs before the triggers so the feature frame is gone when they load their tables.
    with timer("monitoring"):
        monitoring_rows, drift = _monitoring(job, record)
    job.release_features()
    with timer("triggers"):
        _trigger_stage(job, record)
    if on_stage is not None:
        on_stage(TRIGGER_STAGE)
    return _complete(job, record, timer, monitoring_rows, drift, ingest, resumed)


def _start_or_resume(job: _Job, existing: RunRecord | None, chunk_size: int,
                     reuse_explanations: bool) -> RunRecord:
    """The run row: the unfinished one of the same key, or a new one whose previous run
    (hysteresis) and reasons source are fixed now, so a resumed run decides the same way."""
    features = job.enterprise_features()
    population = population_hash(features.index)
    if existing is not None:
        if existing.population_hash != population:
            raise ServingError(
                f"运行 {existing.id} 的企业名单与本次不同, 无法续跑 / run {existing.id} was "
                "started on a different population; it cannot be resumed")
        return existing
    identity = job.identity
    as_of = identity.as_of.date()
    previous = latest_complete_run(job.engine, before=as_of)
    source = latest_reusable_run(job.engine, model_name=identity.model_name,
                                 model_version=identity.model_version,
                                 policy_hash=identity.policy_hash,
                                 top_k=job.top_k) if reuse_explanations else None
    n = len(features)
    with job.engine.begin() as connection:
        record_policy(connection, identity.policy_hash, identity.policy_version,
                      policy_content(job.policy))
        connection.execute(runs.insert().values(
            run_key=identity.key, as_of=as_of, snapshot_id=job.snapshot_dir.name,
            input_hash=identity.input_hash, model_name=identity.model_name,
            model_version=identity.model_version, policy_version=identity.policy_version,
            policy_hash=identity.policy_hash, top_k=job.top_k, chunk_size=chunk_size,
            n_chunks=math.ceil(n / chunk_size), n_entities=n, population_hash=population,
            previous_run_id=None if previous is None else previous.id,
            reasons_source_run_id=None if source is None else source.id,
            status=RUN_IN_PROGRESS, started_at=utc_now()))
    created = run_by_key(job.engine, identity.key)
    assert created is not None
    return created


def _in_chunk(connection: Connection, column: Any, low: str, high: str) -> Any:
    """`low <= column <= high` in byte order, as Python sorted the chunk (PostgreSQL would
    otherwise compare with the database's collation)."""
    if connection.dialect.name == "postgresql":
        column = column.collate("C")
    return column.between(low, high)


def _previous_classes(connection: Connection, run_id: int | None, low: str, high: str
                      ) -> pd.Series | None:
    if run_id is None:
        return None
    rows = connection.execute(
        select(enterprise_scores.c.uscc, enterprise_scores.c.risk_class)
        .where(enterprise_scores.c.run_id == run_id,
               _in_chunk(connection, enterprise_scores.c.uscc, low, high))).all()
    return pd.Series({str(r.uscc): str(r.risk_class) for r in rows}, dtype=object)


def _reusable(connection: Connection, run_id: int | None, low: str, high: str
              ) -> ReusableReasons | None:
    if run_id is None:
        return None
    keys = connection.execute(
        select(enterprise_scores.c.uscc, enterprise_scores.c.explain_key)
        .where(enterprise_scores.c.run_id == run_id,
               _in_chunk(connection, enterprise_scores.c.uscc, low, high))).all()
    rows = connection.execute(
        select(reasons.c.uscc, reasons.c.rank, reasons.c.feature, reasons.c.contribution)
        .where(reasons.c.run_id == run_id,
               _in_chunk(connection, reasons.c.uscc, low, high))).all()
    names = ["uscc", "rank", "feature", "contribution"]
    # Column by column: a frame built from 150,000 row objects took a second per chunk.
    columns = [list(values) for values in zip(*rows, strict=True)] or [[] for _ in names]
    frame = pd.DataFrame(dict(zip(names, columns, strict=True)))
    return ReusableReasons(pd.Series({str(r.uscc): str(r.explain_key) for r in keys},
                                     dtype=object), frame)


def _optional_float(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _chunk_rows(run: RunRecord, scored: ChunkScores) -> tuple[list[dict], list[dict],
                                                               list[AuditEntry]]:
    """Store rows and audit entries for one chunk (decision payloads hold top reasons)."""
    scores, long = scored.scores, scored.reasons
    as_of = run.as_of.isoformat()
    by_entity: dict[str, list[tuple[str, Any, float]]] = {}
    reason_rows = []
    for entity, rank, feature, value, contribution, raises, code, zh, en in zip(
            long["entity"].tolist(), long["rank"].tolist(), long["feature"].tolist(),
            long["value"].tolist(), long["contribution"].tolist(), long["raises_risk"].tolist(),
            long["reason_code"].tolist(), long["text_zh"].tolist(), long["text_en"].tolist(),
            strict=True):
        shown = _optional_float(value)
        reason_rows.append({"run_id": run.id, "uscc": entity, "rank": int(rank),
                            "feature": feature, "value": shown, "contribution": contribution,
                            "raises_risk": bool(raises), "reason_code": code, "text_zh": zh,
                            "text_en": en})
        by_entity.setdefault(entity, []).append((code, shown, contribution))
    score_rows, entries = [], []
    columns = ["raw_score", "probability", "score_class", "class", "overrides",
               "class_reason_zh", "class_reason_en", "input_hash", "explain_key", "explained"]
    for uscc, raw, probability, score_class, risk_class, overrides, zh, en, digest, key, \
            explained in zip(scores.index.tolist(), *(scores[c].tolist() for c in columns),
                             strict=True):
        score_rows.append({"run_id": run.id, "uscc": uscc, "raw_score": raw,
                           "probability": probability, "score_class": score_class,
                           "risk_class": risk_class, "overrides": overrides,
                           "class_reason_zh": zh, "class_reason_en": en, "input_hash": digest,
                           "explain_key": key, "explained": bool(explained)})
        payload = decision_payload(
            as_of=as_of, model_name=run.model_name, model_version=run.model_version,
            policy_version=run.policy_version, policy_hash=run.policy_hash,
            snapshot_id=run.snapshot_id, input_hash=digest, raw_score=raw,
            probability=probability, score_class=score_class, risk_class=risk_class,
            overrides=[o for o in overrides.split(",") if o], reasons=by_entity.get(uscc, []))
        entries.append(AuditEntry(DECISION, payload, uscc, as_of, run.id))
    return score_rows, reason_rows, entries


def _publish_chunks(job: _Job, run: RunRecord, progress: bool,
                    on_chunk: ChunkHook | None) -> int:
    """Score, explain and commit every chunk not yet committed; returns how many were
    already committed (a resumed run)."""
    with job.engine.connect() as connection:
        done = completed_chunks(connection, run.id)
    todo = [k for k in range(run.n_chunks) if k not in done]
    features = job.enterprise_features()
    for k in tqdm(todo, desc="score+explain", unit="chunk", disable=not progress):
        started = time.perf_counter()
        chunk = features.iloc[k * run.chunk_size:(k + 1) * run.chunk_size]
        low, high = str(chunk.index[0]), str(chunk.index[-1])
        with job.engine.connect() as connection:
            previous = _previous_classes(connection, run.previous_run_id, low, high)
            reusable = _reusable(connection, run.reasons_source_run_id, low, high)
        read = time.perf_counter() - started
        scored = score_chunk(job.model, chunk, job.catalogue, job.rules, previous=previous,
                             k=job.top_k, reusable=reusable)
        writing = time.perf_counter()
        score_rows, reason_rows, entries = _chunk_rows(run, scored)
        with job.engine.begin() as connection:
            insert_rows(connection, enterprise_scores, score_rows)
            insert_rows(connection, reasons, reason_rows)
            append_entries(connection, entries)
            seconds = {**scored.seconds, "read": read, "write": time.perf_counter() - writing}
            connection.execute(run_chunks.insert().values(
                run_id=run.id, chunk=k, n_rows=len(chunk), first_uscc=low, last_uscc=high,
                explained=scored.explained, reused=len(chunk) - scored.explained,
                seconds=seconds, committed_at=utc_now()))
            if on_chunk is not None:
                on_chunk(k)
    return len(done)


# --------------------------------------------------------------------------- projects, triggers

# Each optional stage commits its rows, its audit records and its stage record (a
# `monitoring` row of kind "stage.<name>") in one transaction while the run is in progress:
# readers see none of it until the run completes, and a resumed run finds the stage record
# and skips the stage. A stage that cannot run (no project champion, no `digital:` policy, a
# date behind the case book) records why instead, and the summary prints it.


def _project_champion_version(settings: Settings) -> str | None:
    """The registered project champion's version, or None (the stage is then skipped)."""
    from serving.cli_project import CHAMPION_ALIAS
    from serving.cli_project import REGISTERED_NAME as PROJECT_MODEL
    from training.registry import configure_mlflow, get_version_by_alias

    configure_mlflow(settings.home, settings.mlflow_uri)
    return get_version_by_alias(PROJECT_MODEL, CHAMPION_ALIAS)


def stage_record(engine: Engine | Connection, run_id: int, stage: str) -> dict[str, Any] | None:
    """What stage `stage` of run `run_id` committed (None when it has not run yet)."""
    query = select(monitoring.c.payload).where(monitoring.c.run_id == run_id,
                                               monitoring.c.kind == STAGE_KIND_PREFIX + stage)
    if isinstance(engine, Connection):
        value = engine.execute(query).scalar()
    else:
        with engine.connect() as connection:
            value = connection.execute(query).scalar()
    if value is None:
        return None
    loaded = json.loads(value) if isinstance(value, str) else value
    return dict(loaded)


def _skipped(zh: str, en: str) -> dict[str, Any]:
    return {"status": "skipped", "note": f"{zh} / {en}"}


def _commit_stage(job: _Job, run: RunRecord, stage: str, record: Mapping[str, Any],
                  table: Any = None, rows: Sequence[Mapping[str, Any]] = (),
                  entries: Sequence[AuditEntry] = ()) -> None:
    commit_stage(job.engine, run.id, stage, record, table, rows, entries)


def commit_stage(engine: Engine, run_id: int, stage: str, record: Mapping[str, Any],
                 table: Any = None, rows: Sequence[Mapping[str, Any]] = (),
                 entries: Sequence[AuditEntry] = ()) -> bool:
    """Commit a stage's rows, audit records and stage record in one transaction; False when
    an earlier attempt of the run already committed the stage.

    The chain's write lock is taken first, before the stage check and the head read, so an
    API read or a campaign action appended from another connection at the same moment
    queues behind this transaction instead of racing it for the next `seq`.
    """
    with engine.begin() as connection:
        lock_chain(connection)
        if stage_record(connection, run_id, stage) is not None:
            return False  # committed by an earlier attempt of this run
        if table is not None and rows:
            connection.execute(table.insert(), list(rows))  # Core: JSON columns serialised
        append_entries(connection, entries)
        connection.execute(monitoring.insert().values(
            run_id=run_id, kind=STAGE_KIND_PREFIX + stage, payload=json_ready(dict(record))))
    return True


def _day_or_none(value: Any) -> date | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).date()


def project_input_hashes(features: pd.DataFrame) -> pd.Series:
    """sha256 of each project's model inputs (the matrix view's exact feature matrix): the
    enterprise hashing for numeric inputs, canonical JSON of the row otherwise."""
    try:
        hashes = feature_hashes(features, list(features.columns))
    except (TypeError, ValueError):
        rows = features.astype(object).where(features.notna(), None).to_dict("records")
        hashes = pd.Series([hashlib.sha256(json.dumps(row, sort_keys=True, default=str)
                                           .encode("utf-8")).hexdigest() for row in rows],
                           index=features.index, name="input_hash")
    hashes.index = hashes.index.astype(str)
    return hashes


def project_grade_rows(run: RunRecord, placements: pd.DataFrame, model_name: str,
                       model_version: str, input_hashes: pd.Series
                       ) -> tuple[list[dict[str, Any]], list[AuditEntry]]:
    """Store rows and one audit record per placed project."""
    rows, entries = [], []
    as_of = run.as_of.isoformat()
    for item in placements.to_dict("records"):
        project = str(item["project_id"])
        points = item.get("risk_source_points")
        overrides = ",".join(str(o) for o in (item.get("overrides") or ()))
        next_due = _day_or_none(item["next_due_date"])
        row: dict[str, Any] = {
            "run_id": run.id, "project_id": project, "model_name": model_name,
            "model_version": model_version,
            "risk_source_grade": str(item["risk_source_grade"]),
            "risk_source_points": None if points is None or pd.isna(points) else float(points),
            "management_grade": str(item["management_grade"]),
            "probability": float(item["probability"]), "cell": str(item["cell"]),
            "level": str(item["level"]), "level_rank": int(item["level_rank"]),
            "interval_days": None if pd.isna(item["interval_days"])
            else int(item["interval_days"]),
            "last_inspection_date": _day_or_none(item["last_inspection_date"]),
            "next_due_date": next_due,
            "overrides": overrides, "reasons": str(item["reasons"]),
            "input_hash": str(input_hashes.get(project, "")),
        }
        rows.append(row)
        payload = {
            "as_of": as_of, "model_name": model_name, "model_version": model_version,
            "policy_version": run.policy_version, "policy_hash": run.policy_hash,
            "snapshot_id": run.snapshot_id, "input_hash": row["input_hash"],
            "risk_source_grade": row["risk_source_grade"],
            "risk_source_points": row["risk_source_points"],
            "management_grade": row["management_grade"], "probability": row["probability"],
            "cell": row["cell"], "level": row["level"],
            "next_due_date": None if next_due is None else next_due.isoformat(),
            "overrides": [o for o in overrides.split(",") if o], "reasons": row["reasons"],
        }
        entries.append(AuditEntry(PROJECT_GRADE, payload, project, as_of, run.id))
    return rows, entries


def _project_stage(job: _Job, run: RunRecord) -> dict[str, Any]:
    """Grade every project under construction with the registered project champion."""
    done = stage_record(job.engine, run.id, PROJECT_STAGE)
    if done is not None:
        return done
    if job.project_version is None:
        from serving.cli_project import REGISTERED_NAME as PROJECT_MODEL

        record = _skipped(f"未注册工程模型冠军版本 ({PROJECT_MODEL}), 跳过工程定级",
                          f"no registered project champion ({PROJECT_MODEL}): projects not "
                          "graded")
        _commit_stage(job, run, PROJECT_STAGE, record)
        return record
    from serving.cli_project import ProjectCliError, matrix_view

    try:
        view = matrix_view(job.settings, job.identity.as_of)
    except ProjectCliError as error:  # no matrix policy, no project under construction
        record = _skipped("工程定级未执行", f"projects not graded: {error}")
        _commit_stage(job, run, PROJECT_STAGE, record)
        return record
    if (view.model_version != job.project_version or view.snapshot_id != run.snapshot_id
            or view.policy_hash != run.policy_hash):
        raise ServingError(
            "运行期间工程模型冠军、快照或政策发生变化, 请重新运行 / the project champion, the "
            "snapshot or the policy changed during the run: run the same command again")
    from serving.cli_project import REGISTERED_NAME as PROJECT_MODEL

    hashes = project_input_hashes(view.features)
    rows, entries = project_grade_rows(run, view.placements, PROJECT_MODEL,
                                       view.model_version, hashes)
    levels = view.placements["level"].astype(str).value_counts().sort_index()
    record = {"status": "published", "model_name": PROJECT_MODEL,
              "model_version": view.model_version, "matrix_version": view.matrix_version,
              "projects": len(rows), "due": len(view.due),
              "by_level": {str(k): int(v) for k, v in levels.items()}}
    _commit_stage(job, run, PROJECT_STAGE, record, project_grades, rows, entries)
    return record


def _nightly_classes(job: _Job, run: RunRecord) -> Any:
    """The class provider of the trigger stage: this run's published classes and reasons
    (hysteresis and overrides included), so triggers and scores never disagree."""
    from serving.cli_triggers import Classification

    def provide(_settings: Settings, _day: pd.Timestamp) -> Classification:
        classes = _run_classes(job.engine, run.id).rename(columns={"risk_class": "class"})
        return Classification(classes.sort_index(), f"{run.model_name} v{run.model_version} "
                                                    f"(nightly run {run.id})",
                              reasons=partial(reason_texts, job.engine, run.id))

    return provide


REASON_BATCH = 5_000  # firms per query: well inside every database's bound-parameter limit


def reason_texts(engine: Engine, run_id: int, firms: pd.Index) -> pd.DataFrame:
    """top_reasons_zh/en of `firms` in run `run_id` (index uscc): the reason texts in rank
    order joined by "；", "" for a firm without reasons — what `scores_frame(...,
    with_reasons=True)` shows, read for these firms only."""
    wanted = sorted({str(u) for u in firms})
    parts: list[Any] = []
    with engine.connect() as connection:
        for start in range(0, len(wanted), REASON_BATCH):
            batch = wanted[start:start + REASON_BATCH]
            parts += connection.execute(
                select(reasons.c.uscc, reasons.c.rank, reasons.c.text_zh, reasons.c.text_en)
                .where(reasons.c.run_id == run_id, reasons.c.uscc.in_(batch))).all()
    frame = pd.DataFrame(parts, columns=["uscc", "rank", "text_zh", "text_en"])
    frame["uscc"] = frame["uscc"].astype(str)
    frame = frame.sort_values(["uscc", "rank"], kind="stable")
    index = pd.Index(wanted, name="uscc")
    texts = {f"top_reasons_{language}": frame.groupby("uscc", sort=False)[f"text_{language}"]
             .agg("；".join).reindex(index).fillna("") for language in ("zh", "en")}
    return pd.DataFrame(texts, index=index)


def _plain(value: Any) -> Any:
    """A case-book value as plain JSON (missing dates and numbers → None)."""
    if isinstance(value, Mapping | list | tuple):
        return json_ready(value)
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return json_ready(value)


def trigger_case_rows(run: RunRecord, book: pd.DataFrame, opened: Sequence[str],
                      updated: Sequence[str]) -> tuple[list[dict[str, Any]], list[AuditEntry]]:
    """Store rows of every case open on the run's day or touched by it, and one audit record
    per case the day's evaluation opened or updated (with that day's evidence)."""
    from supervision.triggers import open_cases_at

    day = pd.Timestamp(run.as_of)
    touched = set(opened) | set(updated)
    live = open_cases_at(book, day)
    cases = pd.concat([live, book.loc[book["case_id"].astype(str).isin(touched)]])
    cases = cases.drop_duplicates("case_id").sort_values("case_id")
    stamp = day.strftime("%Y-%m-%d")
    rows, entries = [], []
    for case in cases.to_dict("records"):
        case_id = str(case["case_id"])
        today = "opened" if case_id in opened else "updated" if case_id in updated else ""
        rules = [str(r) for r in (case.get("rules_fired") or [])]
        payload = {key: _plain(case.get(key)) for key in (
            "evidence", "tags", "reasons", "pending_corrections", "correct_by", "closed_on",
            "previous_class", "probability")}
        risk_class = case.get("risk_class")
        rows.append({
            "run_id": run.id, "case_id": case_id, "uscc": str(case["uscc"]), "today": today,
            "opened_on": pd.Timestamp(case["opened_on"]).date(),
            "updated_on": pd.Timestamp(case["updated_on"]).date(),
            "status": str(case["status"]), "action": str(case["action"]),
            "severity": _plain(case.get("severity")), "tolerated": bool(case["tolerated"]),
            "rules": ",".join(rules),
            "risk_class": risk_class if isinstance(risk_class, str) else None,
            "payload": payload,
        })
        if today:
            evidence = [item for item in (payload["evidence"] or [])
                        if item.get("recorded_on") == stamp]
            entries.append(AuditEntry(TRIGGER_CASE, {
                "case_id": case_id, "outcome": today, "as_of": stamp,
                "action": rows[-1]["action"], "severity": rows[-1]["severity"],
                "tolerated": rows[-1]["tolerated"], "rules": rules,
                "risk_class": rows[-1]["risk_class"], "evidence": evidence,
                "policy_version": run.policy_version, "policy_hash": run.policy_hash,
                "snapshot_id": run.snapshot_id,
            }, str(case["uscc"]), stamp, run.id))
    return rows, entries


def _trigger_stage(job: _Job, run: RunRecord) -> dict[str, Any]:
    """Run the digital-economy triggers for the run's day on the case book and publish the
    cases (the book under `<home>/cases/` stays the working copy)."""
    done = stage_record(job.engine, run.id, TRIGGER_STAGE)
    if done is not None:
        return done
    if job.policy.digital is None:
        record = _skipped("政策文件没有 digital 段, 跳过触发式监管",
                          "the policy has no `digital:` section: triggers not run")
        _commit_stage(job, run, TRIGGER_STAGE, record)
        return record
    from serving import case_store
    from serving.cli_triggers import run_triggers

    try:
        report = run_triggers(job.settings, job.identity.as_of,
                              class_provider=_nightly_classes(job, run))
    except case_store.CaseStoreError as error:  # e.g. a date behind the case book
        record = _skipped("触发规则未运行", f"triggers not run: {error}")
        _commit_stage(job, run, TRIGGER_STAGE, record)
        return record
    book = case_store.load_case_book(job.settings)
    rows, entries = trigger_case_rows(run, book, report.opened, report.updated)
    record = {"status": "published", "opened": len(report.opened),
              "updated": len(report.updated), "suppressed": len(report.suppressed),
              "open_cases": report.open_cases, "tagged": report.tagged,
              "undisturbed": report.undisturbed, "published_cases": len(rows),
              "recorded_before": report.already_recorded,
              "classes": report.provenance.get("classes")}
    _commit_stage(job, run, TRIGGER_STAGE, record, trigger_cases, rows, entries)
    return record


# --------------------------------------------------------------------------- monitoring


def _run_classes(engine: Engine, run_id: int | None) -> pd.DataFrame:
    if run_id is None:
        return pd.DataFrame(columns=["risk_class", "probability"])
    with engine.connect() as connection:
        rows = connection.execute(
            select(enterprise_scores.c.uscc, enterprise_scores.c.risk_class,
                   enterprise_scores.c.probability)
            .where(enterprise_scores.c.run_id == run_id)).all()
    frame = pd.DataFrame(rows, columns=["uscc", "risk_class", "probability"])
    return frame.set_index(frame["uscc"].astype(str))[["risk_class", "probability"]]


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def training_reference(model_name: str, version: str) -> dict[str, Any] | None:
    """The drift reference logged with the model version (REFERENCE_ARTIFACT), if any."""
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    quiet = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}  # one small file, no bar
    try:
        run_id = MlflowClient().get_model_version(model_name, version).run_id
        with tempfile.TemporaryDirectory() as scratch, _environment(quiet):
            path = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=REFERENCE_ARTIFACT, dst_path=scratch)
            reference: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    except (MlflowException, OSError, ValueError):
        return None
    return reference


def _monitoring(job: _Job, run: RunRecord) -> tuple[dict[str, Any], dict[str, Any]]:
    """Drift against the training reference (else the previous run), the class transition
    matrix and the fairness report on the live classes."""
    features = job.enterprise_features()
    current = _run_classes(job.engine, run.id).reindex(features.index)
    previous_run = None if run.previous_run_id is None else get_run(job.engine,
                                                                    run.previous_run_id)
    previous = _run_classes(job.engine, run.previous_run_id)["risk_class"]
    labels = list(job.rules.labels)
    matrix = transition_matrix(previous if previous_run else None, current["risk_class"], labels)
    thresholds = drift_thresholds(job.policy)
    inputs = model_inputs(job.catalogue)
    columns = [c for c in inputs if c in features.columns]
    profile = population_profile(features[columns], columns, current["probability"],
                                 thresholds.bins)
    reference = training_reference(run.model_name, run.model_version)
    source = "training"
    if reference is None and previous_run is not None:
        reference = monitoring_payloads(job.engine, previous_run).get("profile")
        source = f"previous_run:{previous_run.id}" if reference is not None else "none"
    elif reference is None:
        source = "none"
    drift_table = (population_stability(reference, features[columns],
                                        current["probability"], thresholds)
                   if reference is not None else None)
    fairness = audit_fairness(fairness_frame(features, current["risk_class"]), job.policy)
    drift_summary: dict[str, Any] = {"reference": source, "flag": thresholds.flag,
                                     "alert": thresholds.alert}
    if drift_table is not None:
        score_rows = drift_table[drift_table["kind"] == "score"]["psi"]
        drift_summary.update(
            flagged=int((drift_table["status"] == "flag").sum()),
            alerts=int((drift_table["status"] == "alert").sum()),
            score_psi=None if score_rows.empty else float(score_rows.iloc[0]))
    payloads = {
        "drift": {**drift_summary,
                  "table": [] if drift_table is None else frame_records(drift_table)},
        "transitions": {"previous_run_id": run.previous_run_id, "labels": labels,
                        "matrix": json_ready(matrix.reset_index(names="previous")
                                             .to_dict(orient="records")),
                        "changes": class_changes(matrix)},
        "fairness": {"table": frame_records(fairness),
                     "flags": int(fairness["flag"].sum())},
        "profile": profile,
    }
    return payloads, drift_summary


def _complete(job: _Job, run: RunRecord, timer: StageTimer, payloads: dict[str, Any],
              drift: dict[str, Any], ingest: dict[str, Any] | None,
              resumed: int) -> NightlySummary:
    """Flip the run to complete with its monitoring rows and audit anchor, in one
    transaction; mark other unfinished runs of the same date superseded."""
    with timer("publish"):
        with job.engine.connect() as connection:
            totals = chunk_totals(connection, run.id)
        counts = _run_classes(job.engine, run.id)["risk_class"].value_counts()
        class_counts = {c: int(counts.get(c, 0)) for c in job.rules.labels}
        changes = payloads["transitions"]["changes"]
        notes = []
        if drift.get("reference") != "training":
            notes.append("模型未附训练参照分布, 漂移以上一次运行为参照 / the model has no "
                         "training reference; drift is measured against the previous run"
                         if drift.get("reference", "").startswith("previous_run")
                         else "没有漂移参照 (首次运行且模型未附参照) / no drift reference "
                         "(first run and the model carries none)")
        stage_seconds = dict(timer.seconds)
        for stage in ("read", "score", "explain", "write"):
            stage_seconds[stage] = totals["seconds"].get(stage, 0.0)
        stages = {stage: stage_record(job.engine, run.id, stage)
                  for stage in (PROJECT_STAGE, TRIGGER_STAGE)}
        summary = {"class_counts": class_counts, "class_changes": changes,
                   "explained": totals["explained"], "reused": totals["reused"],
                   "drift": drift, "ingest": ingest, "resumed_chunks": resumed,
                   "notes": notes, "stages": {k: v for k, v in stages.items() if v}}
        with job.engine.begin() as connection:
            for kind, payload in payloads.items():
                connection.execute(monitoring.insert().values(
                    run_id=run.id, kind=kind, payload=json_ready(payload)))
            head = append_entries(connection, [AuditEntry(
                RUN_PUBLISHED,
                {"run_key": run.run_key, "as_of": run.as_of.isoformat(),
                 "snapshot_id": run.snapshot_id, "input_hash": run.input_hash,
                 "model_name": run.model_name, "model_version": run.model_version,
                 "policy_version": run.policy_version, "policy_hash": run.policy_hash,
                 "n_entities": run.n_entities, "class_counts": class_counts},
                None, run.as_of.isoformat(), run.id)])
            summary["audit_head"] = list(head)
            connection.execute(
                update(runs).where(runs.c.id == run.id, runs.c.status == RUN_IN_PROGRESS)
                .values(status=RUN_COMPLETE, finished_at=utc_now(),
                        stage_seconds=json_ready(stage_seconds), summary=json_ready(summary),
                        audit_head_seq=head[0], audit_head_hash=head[1]))
            connection.execute(
                update(runs).where(runs.c.as_of == run.as_of, runs.c.id != run.id,
                                   runs.c.status == RUN_IN_PROGRESS)
                .values(status=RUN_SUPERSEDED))
    stage_seconds["publish"] = timer.seconds["publish"]
    stage_seconds["total"] = sum(v for k, v in stage_seconds.items() if k != "total")
    with job.engine.begin() as connection:
        connection.execute(update(runs).where(runs.c.id == run.id)
                           .values(stage_seconds=json_ready(stage_seconds)))
    finished = get_run(job.engine, run.id)
    assert finished is not None
    return _summary_from_record(finished, "complete")


# --------------------------------------------------------------------------- replay


@dataclass(frozen=True)
class Difference:
    field: str
    recorded: Any
    replayed: Any


@dataclass
class ReplayReport:
    """A decision rebuilt from its snapshot, model version and policy, against the record."""

    uscc: str
    as_of: str
    run_id: int
    differences: list[Difference]
    notes: list[str]
    replayed: dict[str, Any]

    @property
    def matches(self) -> bool:
        return not self.differences

    def format(self) -> str:
        head = (f"重放 / replay {self.uscc} as of {self.as_of} (run {self.run_id}): "
                + ("一致 / MATCH" if self.matches else "不一致 / DIFFERS"))
        lines = [head]
        lines += [f"  注 / note: {n}" for n in self.notes]
        lines.append(f"  类别 / class {self.replayed.get('class')}, 概率 / probability "
                     f"{self.replayed.get('probability')!r}, 模型 / model "
                     f"{self.replayed.get('model_name')} v{self.replayed.get('model_version')}")
        for d in self.differences:
            lines.append(f"  ✗ {d.field}: 记录 / recorded {d.recorded!r} ≠ 重放 / replayed "
                         f"{d.replayed!r}")
        return "\n".join(lines)


def _replay_policy(engine: Engine, settings: Settings, run: RunRecord) -> tuple[Policy, list[str]]:
    notes: list[str] = []
    current = load_policy(settings.policy_path)
    if current.content_hash == run.policy_hash:
        return current, notes
    notes.append(f"政策文件已变更 (运行时 {run.policy_hash[:12]}…, 现在 "
                 f"{current.content_hash[:12]}…), 使用运行时保存的政策版本 {run.policy_version} / "
                 f"the policy file changed since the run (hash {run.policy_hash[:12]}… then, "
                 f"{current.content_hash[:12]}… now); replaying with the stored policy "
                 f"version {run.policy_version}")
    content = stored_policy(engine, run.policy_hash)
    if content is None:
        raise ServingError(f"结果库中没有政策 {run.policy_hash[:12]}… 的内容, 无法重放 / the "
                           "store lacks the run's policy content; cannot replay")
    stored = parse_policy(yaml.safe_load(content), source=f"store:{run.policy_hash[:12]}")
    if stored.content_hash != run.policy_hash:
        raise ServingError("保存的政策内容与其哈希不符 / stored policy content does not match "
                           "its hash")
    return stored, notes


def _compare(recorded: Mapping[str, Any], replayed: Mapping[str, Any], prefix: str = ""
             ) -> list[Difference]:
    differences = []
    for key in sorted(set(recorded) | set(replayed)):
        a, b = recorded.get(key), replayed.get(key)
        if a != b:
            differences.append(Difference(prefix + key, a, b))
    return differences


def replay_decision(settings: Settings, uscc: str, as_of: pd.Timestamp | str) -> ReplayReport:
    """Rebuild one published decision from the run's snapshot, the registered model version
    and the policy, and compare it with the audit record (and the store row)."""
    day = as_date(as_of)
    engine = open_store(settings.database_url)
    try:
        return _replay(settings, engine, uscc, day)
    finally:
        engine.dispose()


def _replay(settings: Settings, engine: Engine, uscc: str, day: date) -> ReplayReport:
    from training.registry import configure_mlflow, load_model

    run = complete_run_on(engine, day)
    if run is None:
        raise ServingError(f"{day} 没有已发布的运行 / no published run for {day}")
    record = decision_record(engine, uscc, run.id)
    stored = enterprise_score(engine, uscc, run)
    if record is None and stored is None:
        raise ServingError(f"运行 {run.id} 中没有企业 {uscc} 的决定 / run {run.id} holds no "
                           f"decision for {uscc}")
    snapshot_dir = settings.snapshots / run.snapshot_id
    if not snapshot_dir.is_dir():
        raise ServingError(f"运行所用快照 {run.snapshot_id} 已不在 {settings.snapshots}, 无法重放 "
                           f"/ the run's snapshot {run.snapshot_id} is no longer under "
                           f"{settings.snapshots}; cannot replay")
    notes: list[str] = []
    manifest_hash = str(snapshot_manifest(snapshot_dir).get("input_hash", ""))
    if manifest_hash != run.input_hash:
        notes.append("快照输入哈希与运行记录不符 / the snapshot's input hash differs from the "
                     "run's")
    policy, policy_notes = _replay_policy(engine, settings, run)
    notes += policy_notes
    configure_mlflow(settings.home, settings.mlflow_uri)
    model = load_model(run.model_name, run.model_version)
    features = _enterprise_features(snapshot_dir, policy, pd.Timestamp(run.as_of))
    if uscc not in features.index:
        raise ServingError(f"企业 {uscc} 在 {day} 不存续, 快照中无其特征 / {uscc} did not exist "
                           f"on {day} in the snapshot")
    previous = None
    if run.previous_run_id is not None:
        before = enterprise_score(engine, uscc, run.previous_run_id)
        previous = None if before is None else pd.Series({uscc: before["class"]}, dtype=object)
    scored = score_chunk(model, features.loc[[uscc]], policy.feature_catalogue(),
                         class_rules(policy), previous=previous, k=run.top_k)
    row = scored.scores.iloc[0]
    long = scored.reasons
    payload = decision_payload(
        as_of=run.as_of.isoformat(), model_name=run.model_name, model_version=run.model_version,
        policy_version=policy.version, policy_hash=policy.content_hash,
        snapshot_id=run.snapshot_id, input_hash=str(row["input_hash"]),
        raw_score=float(row["raw_score"]), probability=float(row["probability"]),
        score_class=str(row["score_class"]), risk_class=str(row["class"]),
        overrides=[o for o in str(row["overrides"]).split(",") if o],
        reasons=zip(long["reason_code"], long["value"], long["contribution"], strict=True))
    differences: list[Difference] = []
    if record is None:
        notes.append("审计日志中缺少该决定的记录 / the audit log has no record of this decision")
    else:
        differences += _compare(record.payload, json_ready(payload))
    if stored is not None:
        texts = {"reasons_zh": [r["text_zh"] for r in stored["reasons"]],
                 "reasons_en": [r["text_en"] for r in stored["reasons"]],
                 "class": stored["class"], "probability": stored["probability"],
                 "input_hash": stored["input_hash"]}
        again = {"reasons_zh": long["text_zh"].tolist(), "reasons_en": long["text_en"].tolist(),
                 "class": str(row["class"]), "probability": float(row["probability"]),
                 "input_hash": str(row["input_hash"])}
        differences += _compare(texts, again, prefix="store.")
    return ReplayReport(uscc, day.isoformat(), run.id, differences, notes,
                        dict(json_ready(payload)))

"""Temporal backtest of the management-risk model (M axis) and of matrix-driven scheduling.

Two questions, answered the way a district would live them:

1. **Does the model predict?** On rolling as-of dates (folds every `refit_months`), a model is
   trained only on labels known before the fold, calibrated on the most recent labelled slice
   before it, and judged on the following months against the rule-only baseline (risk-source
   points) and a uniform choice (AUC, Brier, ECE, hits at inspection capacity; with ground
   truth, true defects per inspection and share of the oracle's).
2. **Does the matrix find more defects per inspection?** Month by month over the test period
   the matrix places every site (both grades, cell, level, interval, overrides) and the
   inspectors visit what falls due (optionally only the top of the ranked due list when
   capacity is short). At the same number of inspections each month, the uniform schedule
   (the expected finds of choosing that many active sites uniformly at random: every site the
   same chance, no noise from one particular draw; the "× uniform" denominator), a uniform
   rotation (oldest visit first — it favours new and historically rarely visited, mostly
   low-hazard sites, so it is shown but not used as the denominator), the rule-only ranking,
   the model ranking and the oracle (true monthly risk) visit their own choice. The defects
   each strategy finds are read from the simulator's truth (`project_monthly.defective` of
   the month visited).

Simplifications, stated rather than hidden: the replayed visits do not change the world (the
truth table was produced under the district's historical inspections), and features always
come from the recorded history, not from the replayed visits.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from features.catalogue import FeatureInfo
from features.enterprise_features import build_enterprise_features, snapshot_table
from features.project_features import (
    PROJECT_FEATURES,
    build_project_features,
    last_inspection_dates,
    project_state,
)
from features.project_labels import build_project_labels
from models.baselines import PointScorecard
from models.calibration import CalibratedRiskModel
from models.classes import CLASS_LABELS
from models.lgbm import RiskClassifier
from models.matrix import MatrixRules, management_scores, place_projects, rank_due
from models.risk_source import RiskSourceRules, grade_risk_source
from training.metrics import evaluate_scores, format_backtest_table

ParticipantCreditAt = Callable[[pd.Timestamp], pd.DataFrame | None]
STRATEGIES: tuple[str, ...] = (
    "matrix", "uniform", "rotation", "risk_source_rules", "model_ranking", "oracle")
STRATEGY_LABELS: dict[str, str] = {
    "matrix": "风险矩阵排期 / matrix schedule",
    "uniform": "均匀随机 (期望) / uniform random (expected)",
    "rotation": "均匀轮检 / uniform rotation",
    "risk_source_rules": "仅风险源规则 / risk-source rules only",
    "model_ranking": "仅模型排序 / model ranking only",
    "oracle": "真实风险 (上限) / oracle (true risk)",
}


class ProjectBacktestError(ValueError):
    """The data cannot support the requested backtest (message bilingual)."""


@dataclass(frozen=True)
class ProjectTrainingConfig:
    """How one management model is trained; the label window comes from the caller's policy.

    `panel_start`: first as-of month of the training panel (default: three months after the
    first recorded project inspection). The latest `calibration_months` of usable labels
    calibrate (a later slice than training); `min_training_positives` guards both slices.
    """

    label_window_days: int
    panel_start: pd.Timestamp | str | None = None
    calibration_months: int = 6
    calibration_method: Literal["isotonic", "sigmoid"] = "sigmoid"
    min_training_positives: int = 30
    classifier_params: Mapping[str, Any] = field(default_factory=lambda: {
        "n_estimators": 250, "learning_rate": 0.03, "num_leaves": 15, "max_depth": 4,
        "min_child_samples": 40, "n_jobs": 2,
    })


@dataclass(frozen=True)
class ProjectBacktestConfig:
    """How the backtest runs; capacities come from the caller's policy (evaluation section).

    `test_start`/`test_end`: first and last as-of month of the test period (month starts;
    default end: the last month with inspections, and truth when given). The model is refit
    every `refit_months`. `replay_capacities`: for each, the share of active sites the
    station can visit per month (None = whatever falls due).
    """

    training: ProjectTrainingConfig
    capacities: tuple[float, ...]
    test_start: pd.Timestamp | str
    test_end: pd.Timestamp | str | None = None
    refit_months: int = 6
    replay_capacities: tuple[float | None, ...] = (None,)
    top_reasons_k: int = 3


@dataclass
class FoldModel:
    """A fitted fold: the calibrated model and the windows it saw."""

    as_of: pd.Timestamp
    model: CalibratedRiskModel
    train_rows: int
    train_positives: int
    calibration_rows: int
    calibration_positives: int
    train_until: pd.Timestamp
    calibration_from: pd.Timestamp


@dataclass
class ProjectBacktestResult:
    """Everything the backtest measured (tables are plain frames, ready to log)."""

    folds: list[dict[str, Any]]
    pooled: list[dict[str, Any]]
    fold_windows: pd.DataFrame
    replay: pd.DataFrame
    replay_monthly: pd.DataFrame
    placements: pd.DataFrame
    capacity: float
    scored: pd.DataFrame
    panel: pd.DataFrame


# --------------------------------------------------------------------------------------------
# participants' credit, point in time
# --------------------------------------------------------------------------------------------


def participant_credit_on(
    snapshot: Mapping[str, pd.DataFrame],
    as_of: pd.Timestamp | str,
    *,
    scorecard: PointScorecard,
    class_cutoffs: Sequence[float] | None,
    feature_kwargs: Mapping[str, Any],
) -> pd.DataFrame:
    """Credit-risk points and class of every project participant, as known on `as_of`.

    The policy scorecard on that date's enterprise features: the same computation for a
    past backtest month and for today, so the management model never trains on a class
    from a model that saw the future (the registered enterprise champion would). Columns
    uscc, credit_points, credit_class (A–D from `class_cutoffs`, the lowest points of B, C
    and D; missing when the policy sets none). Firms not existing on `as_of` are absent.
    """
    features = build_enterprise_features(snapshot, as_of, **dict(feature_kwargs))
    wanted = pd.Index(snapshot_table(snapshot, "project_participants")["uscc"].astype(str))
    features = features[features.index.astype(str).isin(wanted)]
    points = scorecard.score(features).to_numpy(dtype=float)
    if class_cutoffs is None:
        classes = pd.Series(pd.NA, index=range(len(points)), dtype="string")
    else:
        steps = np.searchsorted(np.asarray(class_cutoffs, dtype=float), points, side="right")
        classes = pd.Series(np.asarray(CLASS_LABELS, dtype=object)[steps], dtype="string")
    return pd.DataFrame({
        "uscc": features.index.astype(str).to_numpy(),
        "credit_points": points,
        "credit_class": classes.to_numpy(),
    })


def cached_credit(credit_on: ParticipantCreditAt) -> ParticipantCreditAt:
    """`credit_on` computed once per date (the panel and the production fit share dates)."""
    cache: dict[pd.Timestamp, pd.DataFrame | None] = {}

    def credit_at(as_of: pd.Timestamp) -> pd.DataFrame | None:
        stamp = pd.Timestamp(as_of).normalize()
        if stamp not in cache:
            cache[stamp] = credit_on(stamp)
        return cache[stamp]

    return credit_at


# --------------------------------------------------------------------------------------------
# panel: one row per (project, as_of) with features, label, risk-source grade and truth
# --------------------------------------------------------------------------------------------


def month_starts(start: pd.Timestamp | str, end: pd.Timestamp | str) -> list[pd.Timestamp]:
    """First days of the months from `start`'s month to `end`'s month, inclusive."""
    first = pd.Timestamp(start).to_period("M").to_timestamp()
    last = pd.Timestamp(end).to_period("M").to_timestamp()
    return list(pd.date_range(first, last, freq="MS"))


def build_project_panel(
    snapshot: Mapping[str, pd.DataFrame],
    as_of_dates: Sequence[pd.Timestamp],
    *,
    label_window_days: int,
    participant_credit_at: ParticipantCreditAt | None = None,
) -> pd.DataFrame:
    """Point-in-time features and label for every project active on each date.

    Columns: project_id, as_of, the `PROJECT_FEATURES` columns, label (NaN = not inspected
    in the window), label_date, label_known_date. Policy-free, so one panel serves every
    matrix policy compared on it (`attach_risk_source` adds the grades).
    """
    frames = []
    for as_of in as_of_dates:
        stamp = pd.Timestamp(as_of).normalize()
        credit = participant_credit_at(stamp) if participant_credit_at is not None else None
        features = build_project_features(snapshot, stamp, participant_credit=credit)
        labels = build_project_labels(snapshot, stamp, window_days=label_window_days)
        frame = features.assign(
            label=labels["label"].astype("Float64").to_numpy(dtype=float, na_value=np.nan),
            label_date=labels["inspection_date"].to_numpy(),
            label_known_date=labels["known_date"].to_numpy(),
        )
        frame.insert(0, "as_of", stamp)
        frames.append(frame.reset_index())
    if not frames:
        raise ProjectBacktestError("没有回测日期 / no as-of dates to build a panel from")
    panel = pd.concat(frames, ignore_index=True)
    panel["project_id"] = panel["project_id"].astype(str)
    return panel


def attach_risk_source(panel: pd.DataFrame, snapshot: Mapping[str, pd.DataFrame],
                       risk_rules: RiskSourceRules) -> pd.DataFrame:
    """Add risk_source_points and risk_source_grade of each row, graded on its own date."""
    graded = []
    for as_of in sorted(panel["as_of"].unique()):
        stamp = pd.Timestamp(as_of)
        rows = grade_risk_source(project_state(snapshot, stamp), risk_rules)
        graded.append(pd.DataFrame({
            "project_id": rows["project_id"].astype(str).to_numpy(),
            "as_of": stamp,
            "risk_source_points": rows["risk_source_points"].to_numpy(dtype=float,
                                                                     na_value=np.nan),
            "risk_source_grade": rows["risk_source_grade"].astype(str).to_numpy(),
        }))
    grades = pd.concat(graded, ignore_index=True)
    base = panel.drop(columns=["risk_source_points", "risk_source_grade"], errors="ignore")
    return base.merge(grades, on=["project_id", "as_of"], how="left", validate="one_to_one")


def _month_start(dates: pd.Series) -> np.ndarray:
    stamps = pd.to_datetime(dates).astype("datetime64[ns]")
    return np.asarray(stamps.dt.to_period("M").dt.to_timestamp().astype("datetime64[ns]"))


def attach_truth(panel: pd.DataFrame, truth_monthly: pd.DataFrame) -> pd.DataFrame:
    """Add the simulator's truth of each row's month: true_risk and true_defective (0/1).

    A project-month missing from the truth (not under construction in the simulated world)
    gets risk 0 and no defect.
    """
    truth = pd.DataFrame({
        "project_id": truth_monthly["project_id"].astype(str).to_numpy(),
        "as_of": _month_start(truth_monthly["month"]),
        "true_risk": truth_monthly["risk"].astype(float).to_numpy(),
        "true_defective": truth_monthly["defective"].astype(bool).astype(float).to_numpy(),
    })
    joined = panel.assign(_month=_month_start(panel["as_of"])).merge(
        truth.rename(columns={"as_of": "_month"}), on=["project_id", "_month"], how="left")
    return joined.drop(columns="_month").fillna({"true_risk": 0.0, "true_defective": 0.0})


# --------------------------------------------------------------------------------------------
# training one fold
# --------------------------------------------------------------------------------------------


def _feature_names(catalogue: Mapping[str, FeatureInfo]) -> list[str]:
    return [name for name, info in catalogue.items() if info.model_input]


def train_fold(panel: pd.DataFrame, as_of: pd.Timestamp, config: ProjectTrainingConfig
               ) -> FoldModel:
    """Train on labels known before `as_of`; calibrate on the latest `calibration_months`.

    A row is usable when its label window ended before `as_of` and the label's result was
    recorded before it; rows whose window started in the last `calibration_months` of that
    period calibrate, older rows train.
    """
    stamp = pd.Timestamp(as_of).normalize()
    window_end = panel["as_of"] + pd.Timedelta(days=config.label_window_days)
    usable = (
        panel["label"].notna()
        & (window_end <= stamp)
        & (panel["label_known_date"] < stamp)
    )
    rows = panel.loc[usable.to_numpy(dtype=bool)]
    if rows.empty:
        raise ProjectBacktestError(
            f"{stamp.date()} 之前没有已知标签 / no labels known before {stamp.date()}")
    train_until = rows["as_of"].max() - pd.DateOffset(months=config.calibration_months)
    train = rows[rows["as_of"] <= train_until]
    calibration = rows[rows["as_of"] > train_until]
    for name, part in (("训练 / training", train), ("校准 / calibration", calibration)):
        positives = int(part["label"].sum())
        if positives < config.min_training_positives or positives == len(part):
            raise ProjectBacktestError(
                f"{stamp.date()}: {name} 样本不足 ({len(part)} 行, {positives} 个正例) / "
                f"too few rows for {name.split(' / ')[1]} ({len(part)} rows, {positives} "
                f"positives; need {config.min_training_positives}); start the test later"
            )
    features = _feature_names(PROJECT_FEATURES)
    base = RiskClassifier(PROJECT_FEATURES, features, **dict(config.classifier_params))
    base.fit(train[features], train["label"].astype(int))
    model = CalibratedRiskModel(base, config.calibration_method).fit(
        calibration[features], calibration["label"].astype(int))
    return FoldModel(
        as_of=stamp, model=model, train_rows=len(train),
        train_positives=int(train["label"].sum()), calibration_rows=len(calibration),
        calibration_positives=int(calibration["label"].sum()),
        train_until=pd.Timestamp(train_until),
        calibration_from=pd.Timestamp(calibration["as_of"].min()),
    )


def fold_dates(config: ProjectBacktestConfig, test_months: Sequence[pd.Timestamp]
               ) -> list[pd.Timestamp]:
    """Refit dates: the first test month, then every `refit_months`."""
    if config.refit_months <= 0:
        raise ProjectBacktestError("refit_months 必须为正 / refit_months must be positive")
    return list(test_months[:: config.refit_months])


def train_project_model(
    snapshot: Mapping[str, pd.DataFrame],
    as_of: pd.Timestamp | str,
    config: ProjectTrainingConfig,
    *,
    participant_credit_at: ParticipantCreditAt | None = None,
    panel: pd.DataFrame | None = None,
) -> FoldModel:
    """The management model to use from `as_of` on: trained on every label known before it
    (what `riskmatrix train project` runs); `panel` may be reused from a backtest."""
    stamp = pd.Timestamp(as_of).normalize()
    if panel is None:
        last = stamp - pd.Timedelta(days=config.label_window_days)
        dates = month_starts(_panel_start(snapshot, config), last)
        dates = [d for d in dates if d <= last]
        if not dates:
            raise ProjectBacktestError(
                f"{stamp.date()} 之前的历史太短, 无法训练 / not enough history before "
                f"{stamp.date()} to train (need label windows of {config.label_window_days} "
                "days that have ended)")
        panel = build_project_panel(snapshot, dates, label_window_days=config.label_window_days,
                                    participant_credit_at=participant_credit_at)
    return train_fold(panel, stamp, config)


# --------------------------------------------------------------------------------------------
# replaying schedules
# --------------------------------------------------------------------------------------------


def _stable_order(ids: pd.Series) -> np.ndarray:
    """A tie-breaker that depends on the project id only, not on file order."""
    return np.array([int(hashlib.sha256(str(i).encode()).hexdigest()[:12], 16) for i in ids])


def _top(frame: pd.DataFrame, column: str, n: int) -> pd.DataFrame:
    keyed = frame.assign(_tie=_stable_order(frame["project_id"]))
    return keyed.sort_values([column, "_tie"], ascending=[False, True], kind="stable").head(n)


def _oldest(frame: pd.DataFrame, last: pd.Series, n: int) -> pd.DataFrame:
    """The `n` sites visited longest ago (never visited first): a uniform rotation."""
    seen = pd.to_datetime(last.reindex(frame["project_id"].to_numpy()).to_numpy())
    days = np.where(pd.isna(seen), -np.inf, seen.astype("datetime64[ns]").astype(np.int64))
    keyed = frame.assign(_seen=days, _tie=_stable_order(frame["project_id"]))
    return keyed.sort_values(["_seen", "_tie"], kind="stable").head(n)


def replay_schedules(
    monthly: pd.DataFrame,
    matrix_rules: MatrixRules,
    events: pd.DataFrame,
    initial_last_inspection: pd.Series,
    *,
    capacity: float | None,
) -> pd.DataFrame:
    """Month by month: what each strategy visits and the true defects it finds.

    `monthly` has one row per (as_of month start, active project): project_id, as_of,
    probability, risk_source_grade, risk_source_points, true_risk, true_defective. The
    matrix visits what falls due within the month, ranked as on the working list, at most
    `capacity` × active sites when a capacity is given; every other strategy then visits the
    same number of sites that month. Returns one row per month and strategy.
    """
    results = []
    matrix_last = initial_last_inspection.astype("datetime64[ns]").copy()
    uniform_last = matrix_last.copy()
    for stamp in sorted(pd.to_datetime(monthly["as_of"].unique())):
        sites = monthly[monthly["as_of"] == stamp]
        month_end = stamp + pd.offsets.MonthBegin(1) - pd.Timedelta(days=1)
        sites = sites.reset_index(drop=True)
        graded = sites[["project_id", "risk_source_grade", "risk_source_points"]]
        scores = sites[["project_id", "probability"]]
        placed = place_projects(graded, scores, matrix_rules, events, stamp,
                                matrix_last.reindex(sites["project_id"].to_numpy()).dropna())
        due = rank_due(placed, month_end)
        if capacity is not None:
            due = due.head(max(1, math.floor(capacity * len(sites) + 0.5)))
        n = len(due)
        visit_day = pd.Series(
            np.clip(due["next_due_date"].to_numpy(dtype="datetime64[ns]"),
                    stamp.to_datetime64(), month_end.to_datetime64()), index=due.index)
        matrix_last = _updated(matrix_last, due["project_id"], visit_day)
        rotation = _oldest(sites, uniform_last, n)
        uniform_last = _updated(uniform_last, rotation["project_id"],
                                pd.Series(stamp + pd.Timedelta(days=14), index=rotation.index))
        share = n / len(sites) if len(sites) else 0.0
        results.append({
            "month": stamp, "strategy": "uniform", "active_sites": len(sites),
            "inspections": n, "defects_found": share * float(sites["true_defective"].sum()),
            "expected_found": share * float(sites["true_risk"].sum()),
        })
        chosen = {
            "matrix": due["project_id"],
            "rotation": rotation["project_id"],
            "risk_source_rules": _top(sites, "risk_source_points", n)["project_id"],
            "model_ranking": _top(sites, "probability", n)["project_id"],
            "oracle": _top(sites, "true_risk", n)["project_id"],
        }
        truth = sites.set_index("project_id")
        for strategy, ids in chosen.items():
            visited = truth.loc[list(ids.astype(str))]
            results.append({
                "month": stamp, "strategy": strategy, "active_sites": len(sites),
                "inspections": n, "defects_found": float(visited["true_defective"].sum()),
                "expected_found": float(visited["true_risk"].sum()),
            })
    return pd.DataFrame(results)


def _updated(last: pd.Series, ids: pd.Series, days: pd.Series) -> pd.Series:
    fresh = pd.Series(pd.to_datetime(days.to_numpy()).astype("datetime64[ns]"),
                      index=ids.astype(str).to_numpy())
    combined = pd.concat([last[~last.index.isin(fresh.index)], fresh])
    return combined.astype("datetime64[ns]")


def summarise_replay(monthly_results: pd.DataFrame) -> pd.DataFrame:
    """Totals per strategy: inspections, true defects found, per inspection, × uniform, % of
    the oracle's."""
    totals = monthly_results.groupby("strategy", sort=False)[
        ["inspections", "defects_found", "expected_found"]].sum()
    inspections = totals["inspections"].to_numpy(dtype=float)
    found = totals["defects_found"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_inspection = np.where(inspections > 0, found / inspections, np.nan)
    totals["defects_per_inspection"] = per_inspection
    by_name = dict(zip(totals.index, per_inspection, strict=True))
    found_by_name = dict(zip(totals.index, found, strict=True))
    uniform = float(by_name.get("uniform", np.nan))
    oracle = float(found_by_name.get("oracle", np.nan))
    totals["vs_uniform"] = per_inspection / uniform
    totals["pct_of_oracle"] = found / oracle
    totals["site_months"] = monthly_results.groupby("strategy", sort=False)[
        "active_sites"].sum()
    totals["inspections_per_site_month"] = totals["inspections"] / totals["site_months"]
    order = [s for s in STRATEGIES if s in totals.index]
    return totals.loc[order].reset_index()


# --------------------------------------------------------------------------------------------
# the whole backtest
# --------------------------------------------------------------------------------------------


def run_project_backtest(
    snapshot: Mapping[str, pd.DataFrame],
    risk_rules: RiskSourceRules,
    matrix_rules: MatrixRules,
    config: ProjectBacktestConfig,
    *,
    truth_monthly: pd.DataFrame | None = None,
    participant_credit_at: ParticipantCreditAt | None = None,
    panel: pd.DataFrame | None = None,
) -> ProjectBacktestResult:
    """Rolling-origin backtest of the management model and, with truth, the schedule replay.

    `panel` may be passed in (from `build_project_panel`) to reuse it across policy variants.
    Without `truth_monthly` (a real district) the replay and the truth columns are skipped.
    """
    test_months = _test_months(snapshot, config, truth_monthly)
    if panel is None:
        panel_start = _panel_start(snapshot, config.training)
        panel = build_project_panel(
            snapshot, month_starts(panel_start, test_months[-1]),
            label_window_days=config.training.label_window_days,
            participant_credit_at=participant_credit_at)
    panel = attach_risk_source(panel, snapshot, risk_rules)
    if truth_monthly is not None:
        panel = attach_truth(panel, truth_monthly)
    refits = fold_dates(config, test_months)
    features = _feature_names(PROJECT_FEATURES)
    scored, folds, windows = [], [], []
    for i, fold_as_of in enumerate(refits):
        fold = train_fold(panel, fold_as_of, config.training)
        until = refits[i + 1] if i + 1 < len(refits) else test_months[-1] + pd.DateOffset(days=1)
        rows = panel[(panel["as_of"] >= fold_as_of) & (panel["as_of"] < until)]
        rows = rows.assign(probability=fold.model.predict_proba(rows[features])[:, 1])
        scored.append(rows)
        label = f"{fold_as_of.date()}"
        folds += _evaluate(rows, label, config)
        windows.append({
            "fold": label, "train_rows": fold.train_rows, "train_positives": fold.train_positives,
            "train_until": fold.train_until.date().isoformat(),
            "calibration_from": fold.calibration_from.date().isoformat(),
            "calibration_rows": fold.calibration_rows,
            "calibration_positives": fold.calibration_positives,
            "test_rows": len(rows), "test_labelled": int(rows["label"].notna().sum()),
        })
    tested = pd.concat(scored, ignore_index=True)
    pooled = _evaluate(tested, "all", config)
    replay, replay_monthly = _replays(snapshot, tested, matrix_rules, config, test_months,
                                      truth_monthly is not None)
    placements = _last_placements(snapshot, panel, tested, fold, risk_rules, matrix_rules,
                                  config, test_months[-1])
    return ProjectBacktestResult(
        folds=folds, pooled=pooled, fold_windows=pd.DataFrame(windows), replay=replay,
        replay_monthly=replay_monthly, placements=placements,
        capacity=config.capacities[len(config.capacities) // 2],
        scored=tested[[c for c in ("project_id", "as_of", "probability", "label",
                                   "risk_source_points", "risk_source_grade", "true_risk",
                                   "true_defective") if c in tested.columns]],
        panel=panel,
    )


def _first_inspection(snapshot: Mapping[str, pd.DataFrame]) -> pd.Timestamp:
    dates = pd.to_datetime(snapshot["project_inspections"]["inspection_date"])
    if dates.notna().sum() == 0:
        raise ProjectBacktestError(
            "快照中没有工程检查记录 / the snapshot has no project inspections")
    return pd.Timestamp(dates.min())


def _panel_start(snapshot: Mapping[str, pd.DataFrame], config: ProjectTrainingConfig
                 ) -> pd.Timestamp:
    if config.panel_start is not None:
        return pd.Timestamp(config.panel_start)
    return (_first_inspection(snapshot) + pd.DateOffset(months=3)).to_period("M").to_timestamp()


def _test_months(snapshot: Mapping[str, pd.DataFrame], config: ProjectBacktestConfig,
                 truth_monthly: pd.DataFrame | None) -> list[pd.Timestamp]:
    if config.test_end is not None:
        end = pd.Timestamp(config.test_end)
    else:
        dates = pd.to_datetime(snapshot["project_inspections"]["inspection_date"])
        end = pd.Timestamp(dates.max())
        if truth_monthly is not None:
            end = min(end, pd.Timestamp(pd.to_datetime(truth_monthly["month"]).max()))
    months = month_starts(config.test_start, end)
    if not months or months[0] < pd.Timestamp(config.test_start):
        months = [m for m in months if m >= pd.Timestamp(config.test_start)]
    if not months:
        raise ProjectBacktestError(
            f"测试期为空 / empty test period: {config.test_start} … {end.date()}")
    return months


def _evaluate(rows: pd.DataFrame, label: str, config: ProjectBacktestConfig
              ) -> list[dict[str, Any]]:
    truth = (rows["true_defective"].to_numpy(dtype=float) if "true_defective" in rows.columns
             else None)
    labels = rows["label"].to_numpy(dtype=float)
    ties = _stable_order(rows["project_id"])

    def judge(name: str, scores: np.ndarray, probabilities: np.ndarray | None
              ) -> dict[str, Any]:
        return evaluate_scores(name, scores, probabilities, labels, None, truth,
                               capacities=config.capacities, tie_breaker=ties)

    probability = rows["probability"].to_numpy(dtype=float)
    results = [
        judge("management_model", probability, probability),
        judge("risk_source_points", rows["risk_source_points"].fillna(0).to_numpy(dtype=float),
              None),
    ]
    if "true_risk" in rows.columns:
        results.append(judge("oracle_true_risk", rows["true_risk"].to_numpy(dtype=float), None))
    for result in results:
        result["fold"] = label
    return results


def _replays(snapshot: Mapping[str, pd.DataFrame], tested: pd.DataFrame,
             matrix_rules: MatrixRules, config: ProjectBacktestConfig,
             test_months: Sequence[pd.Timestamp], has_truth: bool
             ) -> tuple[pd.DataFrame, pd.DataFrame]:
    if not has_truth:
        return pd.DataFrame(), pd.DataFrame()
    initial = last_inspection_dates(snapshot, test_months[0])
    summaries, details = [], []
    for capacity in config.replay_capacities:
        monthly = replay_schedules(tested, matrix_rules, snapshot["project_events"], initial,
                                   capacity=capacity)
        name = "due" if capacity is None else f"{100 * capacity:g}%"
        details.append(monthly.assign(capacity=name))
        summaries.append(summarise_replay(monthly).assign(capacity=name))
    replay = pd.concat(summaries, ignore_index=True)
    first = ["capacity", "strategy"]
    return replay[first + [c for c in replay.columns if c not in first]], pd.concat(
        details, ignore_index=True)


def _last_placements(snapshot: Mapping[str, pd.DataFrame], panel: pd.DataFrame,
                     tested: pd.DataFrame, fold: FoldModel, risk_rules: RiskSourceRules,
                     matrix_rules: MatrixRules, config: ProjectBacktestConfig,
                     as_of: pd.Timestamp) -> pd.DataFrame:
    """The matrix as the last fold's model would have placed every site on the last month."""
    rows = panel[panel["as_of"] == as_of].set_index("project_id")
    features = rows[_feature_names(PROJECT_FEATURES)]
    scores = management_scores(fold.model, features, PROJECT_FEATURES, config.top_reasons_k)
    graded = grade_risk_source(project_state(snapshot, as_of), risk_rules)
    graded = graded[graded["project_id"].astype(str).isin(scores["project_id"].astype(str))]
    return place_projects(graded, scores, matrix_rules, snapshot["project_events"], as_of,
                          last_inspection_dates(snapshot, as_of))


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------


def format_replay_table(replay: pd.DataFrame) -> str:
    """The schedule comparison as fixed-width bilingual text."""
    if replay.empty:
        return "无真值, 未回放排期 / no ground truth: schedule replay skipped"
    lines = [
        f"{'能力 / capacity':<16}{'策略 / strategy':<44}{'检查 / insp.':>12}"
        f"{'发现 / found':>12}{'每次 / per insp.':>17}{'×均匀 / × uniform':>19}"
        f"{'占上限 / % oracle':>18}{'每项目月 / per site-month':>26}"
    ]
    for row in replay.to_dict(orient="records"):
        label = STRATEGY_LABELS.get(str(row["strategy"]), str(row["strategy"]))
        lines.append(
            f"{row['capacity']!s:<16}{label:<44}{int(row['inspections']):>12d}"
            f"{row['defects_found']:>12.0f}{row['defects_per_inspection']:>17.3f}"
            f"{row['vs_uniform']:>19.2f}{100 * row['pct_of_oracle']:>17.1f}%"
            f"{row['inspections_per_site_month']:>26.3f}"
        )
    return "\n".join(lines)


def format_project_backtest(result: ProjectBacktestResult) -> str:
    """Fold table, pooled table and the schedule replay, ready to print."""
    return "\n\n".join([
        "== 管理风险模型回测 (各折) / management model, per fold ==",
        format_backtest_table(result.folds, result.capacity),
        "== 合并测试期 / pooled test period ==",
        format_backtest_table(result.pooled, result.capacity),
        "== 排期回放 (同等检查次数) / schedule replay (same number of inspections) ==",
        format_replay_table(result.replay),
    ])


# --------------------------------------------------------------------------------------------
# MLflow
# --------------------------------------------------------------------------------------------

INTENDED_USE_ZH = (
    "预测在建工程下一次监督检查发现质量问题或安全隐患的概率, 作为风险矩阵的管理风险等级 (M1–M4) "
    "依据, 只用于安排监督检查力量。"
)
INTENDED_USE_EN = (
    "Predicts the probability that a construction site's next supervision inspection finds a "
    "quality defect or safety hazard; it sets the management grade (M1–M4) of the risk matrix "
    "and only allocates inspection effort."
)
LIMITS: tuple[tuple[str, str], ...] = (
    ("标签来自以往检查, 以往排期偏向高风险工地, 样本并非随机",
     "labels come from past inspections, which favoured risky sites: not a random sample"),
    ("工程表为当前记录; 无阶段变化记录时按准备阶段处理",
     "the projects table is the current record; without stage-change records a site counts "
     "as in preparation"),
    ("回放中的检查不改变真实状态 (模拟真值产生于历史排期)",
     "replayed inspections do not change the simulated truth, which arose under the "
     "historical schedule"),
    ("参建单位信用为策略记分卡按基准日即时计算的记分与分类, 而非企业冠军模型的分类: 冠军模型见过"
     "以后的标签, 用于历史月份会泄露未来; 训练与服务使用同一口径",
     "participants' credit is the policy scorecard's points and class computed on each as-of "
     "date, not the enterprise champion's class: the champion has seen later labels, so it "
     "would leak the future into past months; training and serving use the same definition"),
    ("\"×均匀\" 以同等检查次数下均匀随机抽取的期望为基准; 轮检 (最久未检优先) 偏向新开工和低风险"
     "工地, 仅作参考",
     "\"× uniform\" is against the expected finds of a uniformly random choice of as many "
     "sites; the rotation (oldest visit first) favours new and low-hazard sites and is shown "
     "for reference only"),
)


def log_project_model(
    fold: FoldModel,
    *,
    experiment: str,
    registered_name: str,
    policy_version: str,
    policy_hash: str,
    input_example: pd.DataFrame,
    backtest: ProjectBacktestResult | None = None,
) -> Any:
    """Log the trained management model with its backtest evidence and register it.

    Call `training.registry.configure_mlflow(home)` first. Returns the registry's
    `RegisteredVersion`. Tables: fold windows, per-fold and pooled metrics, schedule replay;
    figure: reliability of the pooled test probabilities.
    """
    from training.metrics import backtest_records, reliability_table, summary_metrics
    from training.model_card import render_model_card
    from training.plots import calibration_plot
    from training.registry import log_training_run

    data_window = {
        "trained_as_of": fold.as_of.date().isoformat(),
        "train_until": fold.train_until.date().isoformat(),
        "calibration_from": fold.calibration_from.date().isoformat(),
        "train_rows": fold.train_rows, "train_positives": fold.train_positives,
        "calibration_rows": fold.calibration_rows,
        "calibration_positives": fold.calibration_positives,
    }
    tables: dict[str, pd.DataFrame] = {}
    figures = {}
    metrics: dict[str, float] = {}
    metrics_table = pd.DataFrame([data_window])
    if backtest is not None:
        tables = {
            "fold_windows": backtest.fold_windows,
            "folds": pd.DataFrame(backtest_records(backtest.folds, backtest.capacity)),
            "pooled": pd.DataFrame(backtest_records(backtest.pooled, backtest.capacity)),
            "schedule_replay": backtest.replay,
        }
        metrics_table = tables["pooled"]
        for entry in backtest.pooled:
            metrics.update({f"{entry['model']}.{k}": v
                            for k, v in summary_metrics(entry).items()})
        labelled = backtest.scored[backtest.scored["label"].notna()]
        if len(labelled):
            figures["reliability"] = calibration_plot(reliability_table(
                labelled["label"].to_numpy(dtype=float),
                labelled["probability"].to_numpy(dtype=float)))
    card = render_model_card(
        model_name=registered_name, version=f"as of {fold.as_of.date()}",
        intended_use_zh=INTENDED_USE_ZH, intended_use_en=INTENDED_USE_EN,
        data_window=data_window, features=PROJECT_FEATURES, metrics_table=metrics_table,
        fairness_table=None, limits=LIMITS, policy_version=policy_version,
    )
    params = {"calibration_method": fold.model.method,
              **fold.model.base.lightgbm_params([0] * len(fold.model.feature_names_))}
    return log_training_run(
        experiment=experiment, model=fold.model, params=params, data_window=data_window,
        tables=tables, figures=figures, policy_version=policy_version,
        policy_hash=policy_hash, model_card_md=card, input_example=input_example,
        registered_name=registered_name, metrics=metrics,
        run_name=f"project-{fold.as_of.date()}",
    )

"""`riskmatrix train project`, `backtest project` and `matrix`: the construction risk matrix.

The engine (features.project_features, models.matrix, training.project_backtest) does the
work; this module wires it to the runtime home: the current snapshot, the policy's `matrix:`
section, the MLflow registry (`riskmatrix-project`, alias `champion`) and bilingual output.

Participants' credit: the management model sees each participant's credit-risk points and
class from the policy scorecard computed point in time on the enterprise features of the
very as-of date (`participant_credit_source`). The registered enterprise champion cannot be
used for past months (it has seen later labels: scoring the training panel with it leaks),
and serving with champion classes would feed the model a feature with another meaning than
it was trained on. So training, backtest and serving all use the scorecard.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import typer

from serving.cli_options import HomeOption
from serving.settings import Settings, load_settings

REGISTERED_NAME = "riskmatrix-project"
EXPERIMENT = "riskmatrix-project"
CHAMPION_ALIAS = "champion"
CHALLENGER_ALIAS = "challenger"
MODEL_ROW = "management_model"
FAIRNESS_GROUPS: tuple[str, ...] = ("ownership_type",)

TruthOption = Annotated[
    Path | None,
    typer.Option("--truth", help="模拟辖区真值目录 (仅评估用) / simulated ground truth, "
                 "for evaluation only (e.g. DIR/truth of `riskmatrix simulate`)"),
]
TestMonthsOption = Annotated[
    int, typer.Option("--test-months", help="回测月数 (每6个月重训) / months in the backtest "
                      "test period (refit every 6 months)")
]
ThreadsOption = Annotated[
    int | None, typer.Option("--threads", help="LightGBM 线程数 (默认: 引擎默认) / LightGBM "
                             "threads (default: the engine's)")
]
AsOfOption = Annotated[
    str | None,
    typer.Option("--as-of", help="基准日 YYYY-MM-DD (默认: 数据截止次日) / as-of date "
                 "(default: the day after the data ends)"),
]
TopOption = Annotated[
    int, typer.Option("--top", help="显示的到期项目数 (0 = 全部) / due projects shown (0 = all)")
]


class ProjectCliError(Exception):
    """A mistake the operator can fix (bad date, no matrix policy, no champion, bad truth)."""


# --------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProjectRunOptions:
    """How `train project` / `backtest project` run; None keeps the engine's default.

    `threads` sets LightGBM's n_jobs alone (on a busy machine one thread is often faster);
    `classifier_params` replaces the engine's classifier parameters wholesale.
    """

    test_months: int = 12
    threads: int | None = None
    classifier_params: Mapping[str, Any] | None = None


def matrix_section(policy: Any) -> Any:
    """The policy's `matrix:` section; a clear error when the file has none."""
    section = getattr(policy, "matrix", None)
    if section is None:
        raise ProjectCliError(
            f"策略文件 {policy.source} 没有 matrix: 部分, 无法定级工程 / the policy file "
            f"{policy.source} has no matrix: section, so projects cannot be graded"
        )
    return section


def label_window_days(policy: Any) -> int:
    """Days after an as-of date in which the next inspection's result is the label."""
    return int(matrix_section(policy).management.label_window_days)


def parse_as_of(text: str | None) -> pd.Timestamp | None:
    """`YYYY-MM-DD` → Timestamp (None stays None); a bilingual error for anything else."""
    if text is None:
        return None
    try:
        stamp: pd.Timestamp | None = pd.Timestamp(text)
    except (ValueError, TypeError):
        stamp = None
    if stamp is None or pd.isna(stamp):
        raise ProjectCliError(
            f"--as-of 不是有效日期 (应为 YYYY-MM-DD): {text!r} / --as-of is not a valid date "
            f"(use YYYY-MM-DD): {text!r}"
        )
    return pd.Timestamp(stamp).normalize()


def read_truth_monthly(truth: Path | None) -> pd.DataFrame | None:
    """The simulator's `project_monthly` truth from `DIR/truth` (or DIR), or None."""
    if truth is None:
        return None
    from simulation.io import read_truth

    directory = truth.parent if truth.name == "truth" else truth
    if not (directory / "truth").is_dir():
        raise ProjectCliError(f"真值目录不存在 / truth directory not found: {truth}")
    monthly = read_truth(directory).get("project_monthly")
    if monthly is None:
        raise ProjectCliError(
            f"真值目录中没有 project_monthly / no project_monthly in the truth directory: {truth}"
        )
    return monthly


def training_config(policy: Any, options: ProjectRunOptions) -> Any:
    from training.project_backtest import ProjectTrainingConfig

    config = ProjectTrainingConfig(label_window_days=label_window_days(policy))
    params = dict(config.classifier_params if options.classifier_params is None
                  else options.classifier_params)
    if options.threads is not None:
        if options.threads < 1:
            raise ProjectCliError("--threads 至少为 1 / --threads must be at least 1")
        params["n_jobs"] = options.threads
    return replace(config, classifier_params=params)


def backtest_start(snapshot: Mapping[str, pd.DataFrame], test_months: int) -> pd.Timestamp:
    """First month of a test period of `test_months` ending with the last inspected month."""
    if test_months < 1:
        raise ProjectCliError("--test-months 至少为 1 / --test-months must be at least 1")
    dates = pd.to_datetime(snapshot["project_inspections"]["inspection_date"])
    if dates.notna().sum() == 0:
        raise ProjectCliError("快照中没有工程检查记录 / the snapshot has no project inspections")
    last_month = pd.Timestamp(dates.max()).to_period("M").to_timestamp()
    return pd.Timestamp(last_month - pd.DateOffset(months=test_months - 1))


def backtest_config(
    snapshot: Mapping[str, pd.DataFrame], policy: Any, options: ProjectRunOptions
) -> Any:
    """Capacities from the evaluation policy; replay at 'whatever falls due' and each capacity."""
    from training.project_backtest import ProjectBacktestConfig

    capacities = tuple(float(c) for c in policy.evaluation.inspection_capacities)
    return ProjectBacktestConfig(
        training=training_config(policy, options),
        capacities=capacities,
        test_start=backtest_start(snapshot, options.test_months),
        replay_capacities=(None, *capacities),
        top_reasons_k=matrix_section(policy).management.top_reasons,
    )


def participant_credit_source(
    snapshot: Mapping[str, pd.DataFrame], policy: Any
) -> Callable[[pd.Timestamp], pd.DataFrame | None]:
    """as-of date → the participants' scorecard points and class known on it (cached)."""
    from models.baselines import PointScorecard
    from training.enterprise import scorecard_rules
    from training.project_backtest import cached_credit, participant_credit_on

    scorecard = PointScorecard(scorecard_rules(policy))
    cutoffs = policy.scorecard.class_cutoffs
    kwargs = policy.enterprise_feature_kwargs()
    return cached_credit(lambda stamp: participant_credit_on(
        snapshot, stamp, scorecard=scorecard, class_cutoffs=cutoffs, feature_kwargs=kwargs))


def model_inputs(snapshot: Mapping[str, pd.DataFrame], as_of: pd.Timestamp, policy: Any
                 ) -> pd.DataFrame:
    """The management model's inputs for every site under construction on `as_of`, with the
    participants' point-in-time credit: exactly what the model is trained and scored on."""
    from features.project_features import build_project_features

    credit = participant_credit_source(snapshot, policy)(as_of)
    return build_project_features(snapshot, as_of, participant_credit=credit)


def run_backtest(context: Any, truth: Path | None, options: ProjectRunOptions) -> Any:
    """The engine's rolling backtest on the current snapshot (bilingual errors)."""
    from training.project_backtest import ProjectBacktestError, run_project_backtest

    section = matrix_section(context.policy)
    config = backtest_config(context.snapshot, context.policy, options)
    try:
        return run_project_backtest(
            context.snapshot, section.risk_source_rules(), section.matrix_rules(), config,
            truth_monthly=read_truth_monthly(truth),
            participant_credit_at=participant_credit_source(context.snapshot, context.policy),
        )
    except ProjectBacktestError as error:
        raise ProjectCliError(str(error)) from None


# --------------------------------------------------------------------------------------------
# fairness and the promotion gate
# --------------------------------------------------------------------------------------------


def contractor_fairness(
    scored: pd.DataFrame, snapshot: Mapping[str, pd.DataFrame], matrix_rules: Any, policy: Any
) -> pd.DataFrame:
    """Do management grades weigh on sites because of who builds them?

    One row per tested site-month: the M grade its probability gets and the general
    contractor's ownership type (as `ownership_type`, so the enterprise gate reads it); M4 is
    the "top class", M3–M4 the "upper classes", a recorded inspection the burden and its
    finding the hit. Band and reference groups come from the policy. Streets are left out:
    with a few sites per street every ratio is noise. A site appears once per month, so the
    policy's minimum group size counts distinct sites, not site-months.
    """
    from models.matrix import MANAGEMENT_GRADES, management_grades
    from training.fairness import fairness_report

    participants = snapshot["project_participants"]
    contractors = participants[(participants["role"] == "general_contractor").to_numpy(
        dtype=bool, na_value=False)]
    ownership = snapshot["enterprises"].set_index("uscc")["ownership_type"]
    by_project = pd.Series(
        ownership.reindex(contractors["uscc"].to_numpy()).to_numpy(dtype=object),
        index=contractors["project_id"].astype(str).to_numpy(),
    )
    by_project = by_project[~by_project.index.duplicated(keep="first")]
    ids = scored["project_id"].astype(str).to_numpy()
    label = scored["label"].to_numpy(dtype=float)
    frame = pd.DataFrame({
        "project_id": ids,
        "grade": management_grades(scored["probability"], matrix_rules.management_cutoffs),
        "ownership_type": by_project.reindex(ids).to_numpy(dtype=object),
        "inspected": (~np.isnan(label)).astype(int),
        "hit": label,
    })
    fairness = policy.evaluation.fairness
    return fairness_report(
        frame, group_columns=FAIRNESS_GROUPS, class_column="grade",
        inspected_column="inspected", hit_column="hit",
        reference_groups={k: v for k, v in fairness.reference_groups.items()
                          if k in FAIRNESS_GROUPS},
        band=(fairness.band[0], fairness.band[1]),
        high_classes=MANAGEMENT_GRADES[-1:], elevated_classes=MANAGEMENT_GRADES[-2:],
        unit_column="project_id",
    )


def gate_rules(policy: Any) -> Any:
    """The policy's promotion metric on the project model's pooled backtest metrics (MLflow
    keys `management_model.<metric>`), with the management model's own calibration limit
    `matrix.management.ece_gate`."""
    from training.enterprise import promotion_rules

    rules = promotion_rules(policy)
    return replace(rules, primary_metric=f"{MODEL_ROW}.{rules.primary_metric}",
                   ece_metric=f"{MODEL_ROW}.{rules.ece_metric}",
                   max_ece=float(matrix_section(policy).management.ece_gate))


def challenger_metrics(result: Any, fairness_flags: int) -> dict[str, float]:
    """Every pooled metric, keyed as `log_project_model` logs them, plus the fairness flags."""
    from training.metrics import summary_metrics

    metrics = {f"{entry['model']}.{key}": value for entry in result.pooled
               for key, value in summary_metrics(entry).items()}
    metrics["fairness_flags"] = float(fairness_flags)
    return metrics


@dataclass(frozen=True)
class ProjectTrainingRun:
    """What `train project` did: the backtest, the fitted fold, the registry decision."""

    backtest: Any
    fold: Any
    fairness: pd.DataFrame
    fairness_flags: int
    version: str
    run_id: str
    decision: Any
    seconds: float


def train_and_register_project(
    settings: Settings,
    truth: Path | None,
    options: ProjectRunOptions,
    progress: Callable[[str], None] | None = None,
) -> ProjectTrainingRun:
    """Backtest, fit on every label known before the as-of date, log, register and gate."""
    from mlflow.tracking import MlflowClient

    from serving.scoring import load_context
    from training import registry
    from training.enterprise import fairness_gate_flags
    from training.project_backtest import (
        ProjectBacktestError,
        log_project_model,
        train_project_model,
    )

    started = time.perf_counter()
    say = progress or (lambda _: None)
    context = load_context(settings)
    section = matrix_section(context.policy)
    registry.configure_mlflow(settings.home, settings.mlflow_uri)
    say("时间回测 / temporal backtest")
    result = run_backtest(context, truth, options)
    say("公平性审查 / fairness audit (tested site-months)")
    fairness = contractor_fairness(result.scored, context.snapshot, section.matrix_rules(),
                                   context.policy)
    flags = fairness_gate_flags(fairness)
    say(f"训练生产模型 / fitting the production model (as of {context.as_of.date()})")
    try:
        fold = train_project_model(context.snapshot, context.as_of,
                                   training_config(context.policy, options), panel=result.panel)
    except ProjectBacktestError as error:
        raise ProjectCliError(str(error)) from None
    say("记录到 MLflow / logging to MLflow")
    registered = log_project_model(
        fold, experiment=EXPERIMENT, registered_name=REGISTERED_NAME,
        policy_version=context.policy.version, policy_hash=context.policy.content_hash,
        input_example=model_inputs(context.snapshot, context.as_of, context.policy).head(5),
        backtest=result,
    )
    client = MlflowClient()
    client.log_metric(registered.run_id, "fairness_flags", float(flags))
    client.log_text(registered.run_id, fairness.to_csv(index=False), "tables/fairness.csv")
    champion_version = registry.get_version_by_alias(REGISTERED_NAME, CHAMPION_ALIAS)
    decision = registry.promote_if_better(
        REGISTERED_NAME, registered.version,
        challenger_metrics=challenger_metrics(result, flags),
        champion_metrics=(registry.version_metrics(REGISTERED_NAME, champion_version)
                          if champion_version is not None else None),
        rules=gate_rules(context.policy),
    )
    return ProjectTrainingRun(result, fold, fairness, flags, str(registered.version),
                              str(registered.run_id), decision, time.perf_counter() - started)


def project_model(settings: Settings, alias: str = CHAMPION_ALIAS) -> tuple[Any, str]:
    """The management model behind `alias` and its version; a clear error when unset."""
    from training.registry import configure_mlflow, get_version_by_alias, load_model

    configure_mlflow(settings.home, settings.mlflow_uri)
    version = get_version_by_alias(REGISTERED_NAME, alias)
    if version is None:
        raise ProjectCliError(
            f"模型 {REGISTERED_NAME} 还没有{'冠军' if alias == CHAMPION_ALIAS else alias}版本, "
            f"请先运行 riskmatrix train project / no {alias} for {REGISTERED_NAME}: run "
            "`riskmatrix train project` first"
        )
    return load_model(REGISTERED_NAME, version), version


# --------------------------------------------------------------------------------------------
# the matrix and the working list
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MatrixView:
    """Placements of every active project on a date, its due list, and what made them."""

    as_of: pd.Timestamp
    placements: pd.DataFrame
    due: pd.DataFrame
    names: pd.Series
    model_version: str
    model_alias: str
    policy_version: str
    policy_hash: str
    matrix_version: str
    snapshot_id: str
    matrix_rules: Any
    features: pd.DataFrame  # the model's exact inputs per project (hash these for audit)


def matrix_view(
    settings: Settings, as_of: pd.Timestamp | None, alias: str = CHAMPION_ALIAS
) -> MatrixView:
    """Grade every project under construction on `as_of` with the model behind `alias`, and
    rank what is due (default date: the day after the data ends)."""
    from features.project_features import project_state
    from models.matrix import placements_on
    from serving.scoring import load_context
    from supervision.schedule import due_list

    context = load_context(settings, as_of)
    section = matrix_section(context.policy)
    if project_state(context.snapshot, context.as_of).empty:
        day = context.as_of.date()
        raise ProjectCliError(f"{day} 没有在建项目 / no project is under construction on {day}")
    model, version = project_model(settings, alias)
    features = model_inputs(context.snapshot, context.as_of, context.policy)
    placements = placements_on(
        context.snapshot, context.as_of, model, section.risk_source_rules(),
        section.matrix_rules(), top_reasons_k=section.management.top_reasons,
        features=features,
    )
    projects = context.snapshot["projects"]
    names = pd.Series(projects["name"].astype(str).to_numpy(),
                      index=projects["project_id"].astype(str).to_numpy())
    return MatrixView(
        as_of=context.as_of, placements=placements, due=due_list(placements, context.as_of),
        names=names, model_version=version, model_alias=alias,
        policy_version=context.policy.version, policy_hash=context.policy.content_hash,
        matrix_version=section.version, snapshot_id=context.snapshot_id,
        matrix_rules=section.matrix_rules(), features=features,
    )


def matrix_counts(placements: pd.DataFrame) -> pd.DataFrame:
    """Projects per cell: rows R4 … R1 (most hazardous on top), columns M1 … M4."""
    from models.matrix import MANAGEMENT_GRADES
    from models.risk_source import RISK_SOURCE_GRADES

    counts = pd.crosstab(placements["risk_source_grade"].astype(str),
                         placements["management_grade"].astype(str))
    return counts.reindex(index=list(reversed(RISK_SOURCE_GRADES)), columns=list(
        MANAGEMENT_GRADES), fill_value=0).astype(int)


def format_matrix(placements: pd.DataFrame, matrix_rules: Any) -> str:
    """The 4 × 4 table: count and the cell's supervision level (中文/English) per cell."""
    from models.matrix import MANAGEMENT_GRADE_LABELS
    from models.risk_source import RISK_SOURCE_GRADE_LABELS
    from training.metrics import render_fixed_width

    counts = matrix_counts(placements)
    headers = ["风险源 \\ 管理 / risk source \\ management"] + [
        f"{m} {MANAGEMENT_GRADE_LABELS[m][0]} / {m} {MANAGEMENT_GRADE_LABELS[m][1]}"
        for m in counts.columns
    ] + ["合计 / total"]
    body = []
    for r in counts.index:
        zh, en = RISK_SOURCE_GRADE_LABELS[r]
        cells = []
        for m in counts.columns:
            level = matrix_rules.level(matrix_rules.cells[(r, m)])
            cells.append(f"{counts.loc[r, m]} {level.zh}/{level.en}")
        body.append([f"{r} {zh} ({en})", *cells, str(int(counts.loc[r].sum()))])
    body.append(["合计 (total)", *(str(int(counts[m].sum())) for m in counts.columns),
                 str(int(counts.to_numpy().sum()))])
    return render_fixed_width(headers, body, [False] + [True] * (len(headers) - 1))


def format_levels(placements: pd.DataFrame, matrix_rules: Any) -> str:
    """Projects per supervision level after event overrides, with each level's interval."""
    parts = []
    for level in matrix_rules.levels:
        at_level = placements["level"].astype(str) == level.code
        raised = at_level & (placements["cell_level"].astype(str) != level.code)
        parts.append(f"{level.zh} / {level.en} (每 {level.interval_days} 天 / every "
                     f"{level.interval_days} d): {int(at_level.sum())}"
                     + (f" (事故调高 / raised by accident: {int(raised.sum())})"
                        if raised.any() else ""))
    return "\n".join(f"  {p}" for p in parts)


def _date_text(value: Any, missing: str = "—") -> str:
    return missing if pd.isna(value) else pd.Timestamp(value).strftime("%Y-%m-%d")


def format_due_list(due: pd.DataFrame, names: pd.Series, top: int) -> str:
    """The working list: a table in visiting order, then each project's reasons."""
    from training.metrics import render_fixed_width

    shown = due if top <= 0 else due.head(top)
    if shown.empty:
        return "今天没有到期的项目 / no project is due"
    headers = ["序 / #", "项目 / project", "名称 / name", "等级 / level", "R", "M",
               "单元格 / cell", "周期(天) / interval (d)", "上次检查 / last inspection",
               "应检日期 / next due", "逾期(天) / days overdue", "概率 / probability"]
    body = []
    reasons = []
    for row in shown.to_dict(orient="records"):
        project = str(row["project_id"])
        body.append([
            str(row["rank"]), project, str(names.get(project, "")),
            f"{row['level_zh']}/{row['level_en']}", str(row["risk_source_grade"]),
            str(row["management_grade"]), str(row["cell"]), str(row["interval_days"]),
            _date_text(row["last_inspection_date"], "从未 / never"),
            _date_text(row["next_due_date"]), str(row["days_overdue"]),
            f"{float(row['probability']):.3f}",
        ])
        reasons.append(f"  {row['rank']}. {project} {names.get(project, '')}")
        reasons += [f"       {part}" for part in str(row["reasons"]).split(" | ")]
    table = render_fixed_width(headers, body, [True, False, False, False, False, False, False,
                                               True, False, False, True, True])
    return "\n".join([table, "", "原因 / reasons:", *reasons])


def format_view(view: MatrixView, top: int) -> str:
    """Everything `riskmatrix matrix` prints."""
    matrix_rules = view.matrix_rules
    shown = len(view.due) if top <= 0 else min(top, len(view.due))
    lines = [
        f"基准日 / as of: {view.as_of.date()}   快照 / snapshot: {view.snapshot_id}",
        f"模型 / model: {REGISTERED_NAME} v{view.model_version} ({view.model_alias})   "
        f"策略 / policy: "
        f"{view.policy_version} ({view.policy_hash[:12]}), 矩阵 / matrix {view.matrix_version}",
        f"在建项目 / projects under construction: {len(view.placements)}",
        "",
        "== 风险矩阵 (风险源等级 × 管理风险等级) / risk matrix (risk-source × management) ==",
        format_matrix(view.placements, matrix_rules),
        "",
        "监管等级 (含事件调整) / supervision levels (after event overrides):",
        format_levels(view.placements, matrix_rules),
        "",
        f"== 到期或逾期检查清单 / due and overdue inspections: {len(view.due)} "
        f"(显示 / showing {shown}) ==",
        format_due_list(view.due, view.names, top),
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------------


def _json_safe(value: Any) -> Any:
    """Plain JSON values: NaN/inf → null, numpy scalars → Python, timestamps → ISO dates."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat()
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    return value if isinstance(value, str) else str(value)


def backtest_document(result: Any, policy: Any) -> dict[str, Any]:
    """The backtest as one JSON-ready mapping (stable English keys)."""
    from training.metrics import backtest_records, summary_metrics

    scored_months = pd.to_datetime(result.scored["as_of"])
    document = {
        "model": REGISTERED_NAME,
        "policy_version": policy.version,
        "matrix_version": matrix_section(policy).version,
        "test_period": [scored_months.min(), scored_months.max()],
        "capacity": result.capacity,
        "folds": backtest_records(result.folds, result.capacity),
        "pooled": backtest_records(result.pooled, result.capacity),
        "pooled_metrics": {str(e["model"]): summary_metrics(e) for e in result.pooled},
        "fold_windows": result.fold_windows.to_dict(orient="records"),
        "replay": result.replay.to_dict(orient="records"),
    }
    safe = _json_safe(document)
    json.dumps(safe, allow_nan=False)  # fail here rather than in a consumer
    return dict(safe)


# --------------------------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------------------------


def train_project(
    home: HomeOption = None,
    truth: TruthOption = None,
    test_months: TestMonthsOption = 12,
    threads: ThreadsOption = None,
) -> None:
    """训练工程管理风险模型并登记 / backtest, train, register and gate the project model."""
    _train(load_settings(home), truth, ProjectRunOptions(test_months=test_months,
                                                         threads=threads))


def _train(settings: Settings, truth: Path | None, options: ProjectRunOptions) -> None:
    run = train_and_register_project(settings, truth, options,
                                     progress=lambda m: typer.echo(f"  .. {m}"))
    typer.echo(training_text(run))


def training_text(run: ProjectTrainingRun) -> str:
    """Backtest, fairness audit, production fold and the registry's decision, as printed."""
    from training.fairness import format_fairness
    from training.project_backtest import format_project_backtest

    flagged = run.fairness[run.fairness["flag"]]
    fold = run.fold
    lines = [
        format_project_backtest(run.backtest),
        "",
        f"公平性审查 (施工总承包单位所有制, 按项目月) / fairness audit (general contractor's "
        f"ownership, per site-month): {len(flagged)} 项超出区间 / flagged (门槛只看 M3–M4 "
        f"占比 / the gate reads the M3–M4 share: {run.fairness_flags})",
    ]
    if len(flagged):
        lines.append(format_fairness(flagged))
    lines += [
        "",
        f"生产模型 / production model as of {fold.as_of.date()}: 训练 / train "
        f"{fold.train_rows:,} 行 / rows ({fold.train_positives:,} 正例 / positives, ≤ "
        f"{fold.train_until.date()}), 校准 / calibration {fold.calibration_rows:,} 行 / rows "
        f"(≥ {fold.calibration_from.date()})",
        f"已登记 / registered: {REGISTERED_NAME} v{run.version} (run {run.run_id})",
        run.decision.reasons,
        f"用时 / took {run.seconds:.0f} s",
    ]
    return "\n".join(lines)


def backtest_project(
    home: HomeOption = None,
    truth: TruthOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="机器可读输出 / JSON output")] = False,
    test_months: TestMonthsOption = 12,
    threads: ThreadsOption = None,
) -> None:
    """工程管理风险模型与矩阵排期回测 / backtest the management model and matrix scheduling."""
    from serving.scoring import load_context
    from training.project_backtest import format_project_backtest

    settings = load_settings(home)
    context = load_context(settings)
    started = time.perf_counter()
    result = run_backtest(context, truth, ProjectRunOptions(test_months=test_months,
                                                            threads=threads))
    if as_json:
        typer.echo(json.dumps(backtest_document(result, context.policy), ensure_ascii=False,
                              indent=1))
        return
    typer.echo(format_project_backtest(result))
    typer.echo(f"\n用时 / took {time.perf_counter() - started:.0f} s")


def matrix(as_of: AsOfOption = None, home: HomeOption = None, top: TopOption = 20) -> None:
    """风险矩阵与到期检查清单 / the risk matrix and the inspectors' due list for a date."""
    _show_matrix(load_settings(home), parse_as_of(as_of), top)


def _show_matrix(settings: Settings, as_of: pd.Timestamp | None, top: int,
                 alias: str = CHAMPION_ALIAS) -> None:
    typer.echo(format_view(matrix_view(settings, as_of, alias), top))


def demo_matrix(settings: Settings, truth_dir: Path | None) -> None:
    """The demo's matrix step: train when no champion exists, then the matrix for the day
    after the data ends with the top 10 due projects.

    When the promotion gate refuses the freshly trained model, the demo still shows the
    matrix, with that challenger and a warning, so the walkthrough does not stop there.
    """
    from training.registry import configure_mlflow, get_version_by_alias

    configure_mlflow(settings.home, settings.mlflow_uri)
    if get_version_by_alias(REGISTERED_NAME, CHAMPION_ALIAS) is None:
        _train(settings, truth_dir, ProjectRunOptions())
    alias = CHAMPION_ALIAS
    if get_version_by_alias(REGISTERED_NAME, CHAMPION_ALIAS) is None:
        alias = CHALLENGER_ALIAS
        typer.echo("注意: 模型未通过晋升门槛, 以下矩阵使用挑战者模型, 仅供演示 / note: the model "
                   "did not pass the promotion gate; the matrix below uses the challenger, for "
                   "demonstration only")
    _show_matrix(settings, None, top=10, alias=alias)

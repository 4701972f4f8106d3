"""`riskmatrix campaign ...` and `riskmatrix simulate-policy`: campaigns from the command line.

    plan → draw → verify → assign → visits → lists → results → publish   (+ list, show)

Where the roster and the snapshot come from is injectable (`build_campaign_app`): the default
scores the current snapshot with the champion model, tests pass a roster built from a
simulated district. User mistakes print one bilingual message and exit with code 2; a draw that
fails verification exits with code 1.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, NoReturn

import pandas as pd
import typer
from pydantic import ValidationError

from features.contract import DEPARTMENTS, INSPECTION_OUTCOMES, LIST_SEPARATOR
from serving import campaign_store as store_ops
from serving.campaign_store import CampaignStore, CampaignStoreError
from serving.cli_options import HomeOption
from serving.files import default_actor, utc_now
from serving.settings import Settings, load_settings
from supervision.assignment import workload
from supervision.campaigns import CampaignError, CampaignSpec, Scope
from supervision.draw import DrawEvidence
from supervision.sampling_policy import SamplingPolicy
from supervision.trigger_policy import DigitalPolicy

ForceOption = Annotated[
    bool,
    typer.Option("--force", help="重做已完成的非证据步骤 / redo a completed non-evidential step"),
]
BASIS_LABELS = {
    "floor": "保底比例 / floor applied (不免抽)",
    "general_items_cap": "一般事项上限 / general-items cap applied",
    "floor:undisturbed": "无事不扰, 仅保底 / undisturbed: floor only",
}


# --------------------------------------------------------------------------------------------
# Inputs: the roster (classes) and the snapshot (inspections, inspectors, conflicts)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SnapshotTables:
    """The current snapshot's typed contract tables and its id."""

    snapshot_id: str
    tables: Mapping[str, pd.DataFrame]


@dataclass(frozen=True)
class RosterSource:
    """A campaign roster (indexed by uscc: registry attributes, class, probability, reasons,
    digital_undisturbed) and where it came from (recorded in the campaign log)."""

    roster: pd.DataFrame
    provenance: dict[str, str] = field(default_factory=dict)


RosterProvider = Callable[[Settings], RosterSource]
SnapshotProvider = Callable[[Settings], SnapshotTables]
Clock = Callable[[], dt.datetime]


def current_snapshot_tables(settings: Settings) -> SnapshotTables:
    """The current snapshot under the home (a user error if none was ingested yet)."""
    from features.snapshot import SnapshotError, current_snapshot, load_snapshot

    try:
        directory = current_snapshot(settings.snapshots)
        return SnapshotTables(directory.name, load_snapshot(directory))
    except SnapshotError as error:
        raise CampaignStoreError(str(error)) from None


def digital_undisturbed(
    tables: Mapping[str, pd.DataFrame],
    as_of: pd.Timestamp,
    uscc: pd.Index,
    policy: DigitalPolicy | None,
    open_cases: pd.DataFrame | None = None,
) -> pd.Series:
    """"无事不扰" flag per firm: tagged digital-economy firm with no open trigger case.

    Tags follow the policy's `digital:` section (no section: nobody is flagged). Without a
    case book (`open_cases` None) the open cases are those the trigger engine opens on the
    snapshot at `as_of` from recent evidence within each rule's lookback (class-drop rules
    left out, as no previous classes are known here).
    """
    if policy is None:
        return pd.Series(False, index=uscc, name="digital_undisturbed")
    from supervision.tagging import tag_enterprises
    from supervision.triggers import evaluate_triggers, undisturbed_flags

    tags = tag_enterprises(tables["enterprises"], tables.get("digital_tags"), policy, as_of)
    if open_cases is None:
        open_cases = evaluate_triggers(tables, as_of, tags=tags, classes=None, open_cases=None,
                                       policy=policy).cases
    return _aligned(undisturbed_flags(tags, open_cases, as_of), uscc)


def _aligned(flags: pd.Series, uscc: pd.Index) -> pd.Series:
    """Flags re-indexed to the roster (firms not flagged are False)."""
    aligned = flags.reindex(pd.Index(uscc.astype(str))).fillna(False).astype(bool)
    return pd.Series(aligned.to_numpy(), index=uscc, name="digital_undisturbed")


def roster_undisturbed(
    settings: Settings,
    tables: Mapping[str, pd.DataFrame],
    as_of: pd.Timestamp,
    uscc: pd.Index,
    policy: DigitalPolicy | None,
) -> tuple[pd.Series, str]:
    """The flags for a campaign roster and where they came from.

    The trigger run's stored flags (`serving.case_store`) when there are any, so campaigns and
    the case book agree; otherwise computed from the snapshot (with the stored case book if
    one exists).
    """
    from serving import case_store

    stored_on = case_store.undisturbed_as_of(settings)
    if stored_on is not None:
        flags = _aligned(case_store.load_undisturbed(settings), uscc)
        return flags, f"trigger run {stored_on.date().isoformat()}"
    book = case_store.load_case_book(settings)
    flags = digital_undisturbed(tables, as_of, uscc, policy, None if book.empty else book)
    source = "no digital policy: none" if policy is None else f"computed at {as_of.date()}"
    return flags, source


def champion_roster(settings: Settings) -> RosterSource:
    """Today's roster: the current snapshot scored by the champion, with 无事不扰 flags."""
    from serving import scoring

    scores = scoring.score_with_champion(settings)
    roster = scoring.enterprise_roster(scores)
    context = scores.context
    flags, flag_source = roster_undisturbed(settings, context.snapshot, context.as_of,
                                            roster.index, context.policy.digital)
    roster["digital_undisturbed"] = flags
    return RosterSource(roster, {
        "snapshot_id": context.snapshot_id, "input_hash": context.input_hash,
        "model": f"{scores.model_name} v{scores.model_version}",
        "as_of": context.as_of.date().isoformat(), "undisturbed": flag_source,
    })


def sampling_policy(settings: Settings, path: Path | None = None) -> SamplingPolicy:
    """The `sampling:` section of a policy file (a `.json` file is a bare sampling section)."""
    from supervision.policy import load_policy

    if path is not None and path.suffix.lower() == ".json":
        if not path.is_file():
            raise CampaignStoreError(f"文件不存在 / file not found: {path}")
        try:
            return SamplingPolicy.model_validate_json(path.read_text(encoding="utf-8"))
        except ValidationError as error:
            raise CampaignStoreError(f"{path}: 抽查策略无效 / invalid sampling policy: "
                                     f"{_validation_text(error)}") from None
    policy = load_policy(path or settings.policy_path)
    if policy.sampling is None:
        raise CampaignStoreError(
            f"{policy.source}: 策略文件缺少 sampling 部分 / the policy file has no `sampling:` "
            f"section"
        )
    return policy.sampling


# --------------------------------------------------------------------------------------------
# Helpers: errors, parsing, printing
# --------------------------------------------------------------------------------------------


def _validation_text(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '-'}: {e['msg']}"
                     for e in error.errors())


def _user_error_types() -> tuple[type[BaseException], ...]:
    """Errors meaning bad input, not a bug (serving modules' only if they were imported)."""
    from features.snapshot import SnapshotError
    from supervision.policy import PolicyError
    from supervision.trigger_policy import TriggerPolicyError

    types: list[type[BaseException]] = [CampaignStoreError, CampaignError, PolicyError,
                                        SnapshotError, TriggerPolicyError]
    for module, name in (("serving.scoring", "ServingError"),
                         ("serving.case_store", "CaseStoreError"),
                         ("serving.store", "StoreError")):
        loaded = sys.modules.get(module)
        if loaded is not None:
            types.append(getattr(loaded, name))
    return tuple(types)


def exit_with(code: int) -> NoReturn:
    """Exit with `code` via SystemExit: unlike `typer.Exit`, it survives a caller running the
    app with `standalone_mode=False` (which turns typer.Exit into a discarded return value)."""
    raise SystemExit(code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Print a user mistake as one bilingual line on stderr and exit 2 (no traceback)."""
    try:
        yield
    except Exception as error:
        if isinstance(error, _user_error_types()):
            typer.echo(f"错误 / error: {error}", err=True)
            exit_with(2)
        raise


def _date(text: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise CampaignStoreError(f"{option} 日期格式应为 YYYY-MM-DD / {option} must be a date "
                                 f"YYYY-MM-DD, got {text!r}") from None


def _pct(value: float) -> str:
    return "-" if pd.isna(value) else f"{100 * float(value):.1f}%"


def _basis(code: str) -> str:
    if code in BASIS_LABELS:
        return BASIS_LABELS[code]
    kind, _, name = code.partition(":")
    return {"ratio_set": f"比例方案 / ratio set {name}",
            "targeted_rule": f"定向规则 / targeted rule {name}",
            "budget": f"总量分配 / budget split of {name}"}.get(kind, code)


def _table(frame: pd.DataFrame) -> str:
    return frame.to_string(index=False) if len(frame) else "  (无 / none)"


def _one_or_all(campaign_id: str | None, all_campaigns: bool) -> str | None:
    """The campaign named on the command line, or None for `--all` (exactly one is needed)."""
    if (campaign_id is None) == (not all_campaigns):
        raise CampaignStoreError("需要抽查任务编号或 --all (二选一) / give a campaign id or "
                                 "--all (exactly one)")
    return campaign_id


def _json_records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows with NaN as null (JSON has no NaN)."""
    return [{str(k): (None if isinstance(v, float) and pd.isna(v) else v)
             for k, v in row.items()}
            for row in table.to_dict(orient="records")]


def format_estimates(table: pd.DataFrame, campaign_ids: Sequence[str]) -> str:
    """The estimates table with bilingual headers (confidence from the campaigns' policy)."""
    level = f"{100 * float(table['confidence'].iloc[0]):g}%"
    shown = pd.DataFrame({
        "分类 class": table["domain"].map(lambda d: "总体 overall" if d == "overall" else d),
        "问题率 rate": table["estimate"].map(_pct),
        f"{level}置信区间 CI": [f"[{_pct(lo)}, {_pct(hi)}]"
                             for lo, hi in zip(table["ci_low"], table["ci_high"], strict=True)],
        "已检查 n inspected": table["sampled"],
        "有效样本量 n_eff": table["effective_sample_size"].map(
            lambda v: "-" if pd.isna(v) else f"{float(v):.1f}"),
        "估计户数 N̂": table["population_estimate"].map(lambda v: f"{float(v):.0f}"),
    })
    return "\n".join([
        f"问题发生率估计 (Horvitz–Thompson/Hájek, 按入样概率加权) / problem-rate estimates "
        f"weighted by inclusion probability: {', '.join(campaign_ids)}",
        shown.to_string(index=False),
        "仅计入所有事项均已录入的企业 / only firms with every item recorded are counted",
    ])


def build_spec(
    campaign_id: str,
    department: str,
    items: str,
    item_kind: str,
    period_start: str,
    period_end: str,
    *,
    title: str = "",
    ratio_set: str | None = None,
    budget: int | None = None,
    scope: str | None = None,
    filters: Mapping[str, Any] | None = None,
    rules: Sequence[str] | None = None,
) -> CampaignSpec:
    """A validated spec from command-line text; every problem reported in both languages."""
    if department not in DEPARTMENTS:
        raise CampaignStoreError(f"--department 未知部门 {department!r} / unknown department; "
                                 f"allowed: {list(DEPARTMENTS)}")
    if item_kind not in ("general", "key"):
        raise CampaignStoreError(f"--item-kind 只能是 general (一般事项) 或 key (重点事项) / "
                                 f"must be general or key, got {item_kind!r}")
    chosen = {k: v for k, v in (filters or {}).items() if v not in (None, [], ())}
    if scope not in (None, "whole", "targeted"):
        raise CampaignStoreError(f"--scope 只能是 whole 或 targeted / --scope must be whole or "
                                 f"targeted, got {scope!r}")
    if scope == "whole" and chosen:
        raise CampaignStoreError(f"不定向抽查不能带筛选条件 / --scope whole takes no filters, "
                                 f"got {sorted(chosen)}")
    if scope == "targeted" and not chosen:
        raise CampaignStoreError("定向抽查至少需要一个筛选条件 / --scope targeted needs at least "
                                 "one filter (--entity-type, --industry, --street, --min-capital…)")
    codes = [part.strip() for part in items.split(LIST_SEPARATOR) if part.strip()]
    try:
        return CampaignSpec(
            campaign_id=campaign_id, department=department, title=title, check_items=codes,
            item_kind=item_kind,  # type: ignore[arg-type]
            scope=Scope(**chosen),
            period_start=_date(period_start, "--period-start"),
            period_end=_date(period_end, "--period-end"), ratio_set=ratio_set, budget=budget,
            targeted_rules=list(rules) if rules is not None else None,
        )
    except ValidationError as error:
        raise CampaignStoreError(f"抽查任务设置无效 / invalid campaign settings: "
                                 f"{_validation_text(error)}") from None


def format_plan(record: store_ops.PlanRecord, roster_rows: int,
                provenance: Mapping[str, str]) -> str:
    spec, frame, commitment = record.spec, record.frame, record.commitment
    scope = spec.scope.model_dump(exclude_defaults=True)
    strata = frame.strata.assign(
        configured=frame.strata["configured_ratio"].map(_pct),
        effective=frame.strata["ratio"].map(_pct), basis=frame.strata["basis"].map(_basis),
    )[["stratum", "population", "configured", "effective", "sample", "basis"]]
    strata.columns = ["层 stratum", "总数 N", "配置比例 ratio", "实际比例 effective",
                      "预计抽取 draws", "依据 basis"]
    source = ", ".join(f"{k}={v}" for k, v in provenance.items()) or "-"
    return "\n".join([
        f"抽查任务 / campaign: {spec.campaign_id}  ({DEPARTMENTS[spec.department]})",
        f"检查事项 / items: {LIST_SEPARATOR.join(spec.check_items)} "
        f"({'重点事项 / key items' if spec.item_kind == 'key' else '一般事项 / general items'}); "
        f"期间 / period: {spec.period_start} – {spec.period_end}",
        f"范围 / scope: {'定向 / targeted ' + str(scope) if scope else '全部名录 / whole roster'}",
        f"名录 / roster: {roster_rows} 户 firms ({source}); 可抽 / eligible: {len(frame.units)}; "
        f"本年已抽排除 / excluded as drawn this year: {len(frame.excluded)}",
        _table(strata),
        f"合计预计抽取 / expected draws in total: {int(frame.strata['sample'].sum())}",
        "承诺摘要, 请在抽取前公布 / commitment digest — publish it before the draw:",
        f"  {commitment.digest()}",
        f"下一步 / next: riskmatrix campaign draw {spec.campaign_id} [--public-entropy TEXT]",
    ])


def format_draw(evidence: DrawEvidence, campaign: store_ops.Campaign) -> str:
    strata = pd.DataFrame([s.model_dump() for s in evidence.strata])
    strata = strata.assign(probability=strata["inclusion_probability"].map(lambda p: f"{p:.4f}"))
    strata = strata[["stratum", "population", "sample", "probability"]]
    strata.columns = ["层 stratum", "总数 N", "抽中 drawn", "入样概率 inclusion probability"]
    by_class = evidence.drawn_frame()["class"].value_counts().sort_index()
    return "\n".join([
        f"已抽取 / drawn: {len(evidence.drawn)} 户 firms, 抽查任务 / campaign "
        f"{evidence.spec.campaign_id}; 按分类 / by class: "
        + ", ".join(f"{c} {n}" for c, n in by_class.items()),
        f"种子已公开 / seed revealed: {evidence.seed}",
        f"公开随机数 / public entropy: {evidence.public_entropy or '(无 / none)'}",
        _table(strata),
        f"证据 (内部) / evidence (internal): {campaign.file(store_ops.EVIDENCE)}",
        f"公告 (可公开) / public notice: {campaign.file(store_ops.NOTICE)}",
    ])


def _print_lists(ranked: pd.DataFrame) -> None:
    for team, rows in ranked.groupby("team_id", sort=True):
        typer.echo(f"== 执法小组 / team {team}: {len(rows)} 次检查 / visits")
        for r in rows.to_dict(orient="records"):
            p = r["probability"]
            probability = "-" if p is None or pd.isna(p) else f"{float(p):.3f}"
            typer.echo(f"  {r['rank']:>3}. {r['visit_date']} {r['uscc']} {r['name']}  "
                       f"类 class {r['class']}  概率 p={probability}  部门 {r['departments']}  "
                       f"事项 {r['check_items']}")
            if r["top_reasons"]:
                typer.echo(f"       原因 / reasons: {r['top_reasons']}")


def _deadline_lines(deadlines: pd.DataFrame, working_days: int) -> list[str]:
    if deadlines.empty:
        return ["公示期限 / deadline: 尚无结果 / no recorded result yet"]
    labels = {"due": "待公示 / due", "overdue": "已逾期 / OVERDUE",
              "published": "已公示 / published", "published_late": "逾期公示 / published late"}
    counts = deadlines["status"].value_counts()
    summary = ", ".join(f"{labels.get(str(k), k)}: {v}" for k, v in counts.items())
    return [f"公示期限 (检查后{working_days}个工作日) / deadline ({working_days} working days "
            f"after the check): "
            f"最早 earliest {min(deadlines['deadline'])}, 最晚 latest {max(deadlines['deadline'])}",
            f"公示状态 / status: {summary}"]


# --------------------------------------------------------------------------------------------
# The app
# --------------------------------------------------------------------------------------------


def build_campaign_app(
    roster_provider: RosterProvider = champion_roster,
    snapshot_provider: SnapshotProvider = current_snapshot_tables,
    clock: Clock = utc_now,
    actor: Callable[[], str] = default_actor,
) -> typer.Typer:
    """The `campaign` command group with its inputs injected (defaults: champion + snapshot)."""
    app = typer.Typer(
        help="双随机、一公开抽查任务 / random-inspection campaigns: plan, draw, verify, assign, "
             "visits, lists, results, publish.",
        no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    )

    def context(home: Path | None) -> tuple[Settings, CampaignStore]:
        settings = load_settings(home)
        return settings, CampaignStore(settings.campaigns, settings.database_url)

    @app.command()
    def plan(
        department: Annotated[str, typer.Option(help="检查部门 / department, e.g. market")],
        items: Annotated[str, typer.Option(help="检查事项, 分号分隔 / check items, ITEM;ITEM")],
        period_start: Annotated[str, typer.Option(help="开始日期 / first day, YYYY-MM-DD")],
        period_end: Annotated[str, typer.Option(help="结束日期 / last day, YYYY-MM-DD")],
        item_kind: Annotated[str, typer.Option(
            help="general 一般事项 (有上限) | key 重点事项 / general (capped) or key items")
        ] = "general",
        ratio_set: Annotated[str | None, typer.Option(
            help="策略中的比例方案 / ratio set of the policy (default: the policy's default)")
        ] = None,
        budget: Annotated[int | None, typer.Option(
            help="抽查总量, 按分类权重分配 / total draws split by class weights")] = None,
        scope: Annotated[str | None, typer.Option(
            help="whole 不定向 | targeted 定向 (default: targeted iff a filter is given)")
        ] = None,
        entity_type: Annotated[list[str] | None, typer.Option(
            help="定向: 市场主体类型 / targeted: entity type (repeatable)")] = None,
        industry: Annotated[list[str] | None, typer.Option(
            help="定向: 行业代码前缀 / targeted: industry code prefix (repeatable)")] = None,
        street: Annotated[list[str] | None, typer.Option(
            help="定向: 街道 / targeted: street (repeatable)")] = None,
        min_capital: Annotated[float | None, typer.Option(
            help="定向: 注册资本下限 (万元) / minimum registered capital, 10k CNY")] = None,
        max_capital: Annotated[float | None, typer.Option(
            help="定向: 注册资本上限 (万元) / maximum registered capital, 10k CNY")] = None,
        min_employees: Annotated[int | None, typer.Option(
            help="定向: 从业人数下限 / minimum employees")] = None,
        max_employees: Annotated[int | None, typer.Option(
            help="定向: 从业人数上限 / maximum employees")] = None,
        rule: Annotated[list[str] | None, typer.Option(
            help="定向规则 (默认: 策略默认规则) / targeted rule names (default: the policy's)")
        ] = None,
        no_rules: Annotated[bool, typer.Option(
            help="不适用定向规则 / apply no targeted rule")] = False,
        title: Annotated[str, typer.Option(help="任务名称 / title")] = "",
        home: HomeOption = None,
    ) -> None:
        """制定抽查计划并公布承诺 / plan a campaign: freeze roster, seal seed, commit."""
        with user_errors():
            settings, store = context(home)
            policy = sampling_policy(settings)
            now = clock()
            filters = {"entity_types": entity_type, "industry_prefixes": industry,
                       "streets": street, "min_registered_capital": min_capital,
                       "max_registered_capital": max_capital, "min_employees": min_employees,
                       "max_employees": max_employees}
            if no_rules and rule:
                raise CampaignStoreError("--rule 与 --no-rules 不能同时使用 / use either --rule "
                                         "or --no-rules")
            spec = build_spec(
                store.next_id(department, now.date()), department, items, item_kind,
                period_start, period_end, title=title,
                ratio_set=ratio_set, budget=budget, scope=scope, filters=filters,
                rules=[] if no_rules else rule,
            )
            source = roster_provider(settings)
            snapshot = snapshot_provider(settings)
            history = store_ops.plan_history(store, snapshot.tables.get("inspections"))
            provenance = {"snapshot_id": snapshot.snapshot_id, **source.provenance}
            record = store_ops.plan(store, spec, source.roster, policy, history, actor=actor(),
                                    now=now, provenance=provenance)
            typer.echo(format_plan(record, len(source.roster), provenance))

    @app.command()
    def draw(
        campaign_id: Annotated[str, typer.Argument(help="抽查任务编号 / campaign id")],
        public_entropy: Annotated[str, typer.Option(
            help="承诺后才确定的公开随机数 (如彩票开奖号) / public randomness fixed after the "
                 "commitment, e.g. a lottery number")] = "",
        home: HomeOption = None,
    ) -> None:
        """公开种子并抽取 / reveal the seed and draw (once; never re-run)."""
        with user_errors():
            _, store = context(home)
            evidence = store_ops.draw(store, campaign_id, public_entropy, actor=actor(),
                                      now=clock())
            typer.echo(format_draw(evidence, store.campaign(campaign_id)))

    @app.command()
    def verify(
        campaign_id: Annotated[str | None, typer.Argument(
            help="抽查任务编号 / campaign id (or give --evidence and --roster)")] = None,
        evidence: Annotated[Path | None, typer.Option(
            help="公开的抽取证据 / published evidence JSON")] = None,
        roster: Annotated[Path | None, typer.Option(
            help="名录快照 / roster snapshot Parquet")] = None,
        policy: Annotated[Path | None, typer.Option(
            help="策略文件 / policy YAML (or sampling-section JSON)")] = None,
        digest: Annotated[str | None, typer.Option(
            help="抽取前公布的承诺摘要 / commitment digest published before the draw")] = None,
        home: HomeOption = None,
    ) -> None:
        """核验抽取 / re-run a draw from its evidence: exit 0 on match, 1 on mismatch."""
        with user_errors():
            settings, store = context(home)
            if campaign_id is not None and (evidence is not None or roster is not None):
                raise CampaignStoreError("请给出抽查任务编号, 或者 --evidence 与 --roster, "
                                         "不要同时给 / give a campaign id or --evidence with "
                                         "--roster, not both")
            if campaign_id is not None:
                chosen = sampling_policy(settings, policy) if policy is not None else None
                result = store_ops.verify_stored(store, campaign_id, chosen, digest)
            else:
                if evidence is None or roster is None:
                    raise CampaignStoreError("需要抽查任务编号, 或 --evidence 与 --roster / need a "
                                             "campaign id, or both --evidence and --roster")
                result = store_ops.verify_files(evidence, roster,
                                                sampling_policy(settings, policy), digest)
        typer.echo(result.summary())
        typer.echo("一致 / match" if result.match
                   else f"不一致 / mismatch: {', '.join(result.failed)}")
        if not result.match:
            exit_with(1)

    @app.command()
    def assign(
        campaign_id: Annotated[str, typer.Argument(help="抽查任务编号 / campaign id")],
        field_: Annotated[str | None, typer.Option(
            "--field", help="只派该执法领域的人员 / only inspectors of this field")] = None,
        force: ForceOption = False,
        home: HomeOption = None,
    ) -> None:
        """随机分配执法人员 (≥2人, 回避) / staff each target: ≥ 2 inspectors, recusal."""
        with user_errors():
            settings, store = context(home)
            tables = snapshot_provider(settings).tables
            teams = store_ops.assign(store, campaign_id, tables["inspectors"],
                                     tables.get("inspector_conflicts"), tables.get("inspections"),
                                     actor=actor(), now=clock(), field=field_, force=force)
            load = workload(teams)
            typer.echo(f"已分配 / assigned: {len(teams)} 个检查对象 targets, {len(load)} "
                       f"名执法人员 inspectors, 每人 {int(load.min())}–{int(load.max())} 户 / "
                       f"targets each")
            typer.echo(f"  {store.campaign(campaign_id).file(store_ops.ASSIGNMENT)}")

    @app.command()
    def visits(
        window_days: Annotated[int | None, typer.Option(
            help="合并窗口天数 (默认取策略) / merge window in days (default: policy)")] = None,
        force: ForceOption = False,
        home: HomeOption = None,
    ) -> None:
        """合并联合检查 (进一次门、查多项事) / merge open campaigns' tasks into joint visits."""
        with user_errors():
            settings, store = context(home)
            window = (window_days if window_days is not None
                      else sampling_policy(settings).joint_visits.window_days)
            outcome = store_ops.merge_visits(store, window, actor=actor(), now=clock(),
                                             force=force)
            if outcome.joint is None:
                typer.echo("没有等待合并的抽查任务 / no assigned campaign awaits visit planning")
                return
            typer.echo(outcome.joint.summary())
            typer.echo(f"合并的抽查任务 / campaigns merged (window {window} days): "
                       f"{', '.join(outcome.campaigns)}")

    @app.command("lists")
    def lists(
        campaign_id: Annotated[str | None, typer.Argument(
            help="抽查任务编号 / campaign id")] = None,
        all_open: Annotated[bool, typer.Option(
            "--all", help="所有未录入结果的任务 / every campaign without results")] = False,
        out: Annotated[Path | None, typer.Option(help="另存 CSV / also write a CSV")] = None,
        home: HomeOption = None,
    ) -> None:
        """按风险排序的检查清单 (内部) / ranked inspection lists per team (internal)."""
        from supervision.visits import ranked_inspection_lists

        with user_errors():
            _, store = context(home)
            if (campaign_id is None) == (not all_open):
                raise CampaignStoreError("请给出抽查任务编号或 --all (二选一) / give a campaign id "
                                         "or --all (one of them)")
            visit_table, involved = store_ops.stored_visits(store, campaign_id)
            if not involved:
                typer.echo("没有待检查的联合检查 / no open visits")
                return
            ranked = ranked_inspection_lists(visit_table, store_ops.list_roster(involved))
            typer.echo("内部检查清单, 含风险分类, 不得公开 / internal list with risk classes — "
                       "never publish")
            _print_lists(ranked)
            if out is not None:
                store_ops.atomic_write(out, store_ops.csv_bytes(ranked, bom=True))
                typer.echo(f"已写入 / written: {out}")

    @app.command()
    def results(
        campaign_id: Annotated[str, typer.Argument(help="抽查任务编号 / campaign id")],
        file: Annotated[Path | None, typer.Option(
            help="检查结果 CSV / results CSV (with --template: where to write it)")] = None,
        template: Annotated[bool, typer.Option(
            help="生成待填写的模板 / write a template to fill in")] = False,
        force: ForceOption = False,
        home: HomeOption = None,
    ) -> None:
        """录入检查结果, 或生成模板 / record outcomes per visit and item, or write a template."""
        with user_errors():
            _, store = context(home)
            if template:
                frame = store_ops.results_template(store, campaign_id)
                target = file or store.campaign(campaign_id).file("results_template.csv")
                store_ops.atomic_write(target, store_ops.csv_bytes(frame, bom=True))
                typer.echo(f"模板已写入 / template written: {target} ({len(frame)} 项 items)")
                typer.echo(f"结果代码 / outcome codes: {', '.join(INSPECTION_OUTCOMES)}; "
                           f"日期 / dates YYYY-MM-DD; 空白结果 = 待录入 / blank outcome = pending")
                return
            if file is None:
                raise CampaignStoreError("需要 --file 或 --template / need --file or --template")
            if not file.is_file():
                raise CampaignStoreError(f"文件不存在 / file not found: {file}")
            try:
                raw = store_ops.read_csv_text(file)
            except (ValueError, UnicodeDecodeError) as error:
                raise CampaignStoreError(f"{file}: 无法读取为 UTF-8 CSV / cannot be read as "
                                         f"UTF-8 CSV: {error}") from None
            recorded = store_ops.record(store, campaign_id, raw, str(file), actor=actor(),
                                        now=clock(), force=force)
            typer.echo(f"已录入 / recorded: {recorded.recorded} 项 items; 待录入 / pending: "
                       f"{recorded.pending}")
            typer.echo(f"  {store.campaign(campaign_id).file(store_ops.RESULTS)}")

    @app.command()
    def publish(
        campaign_id: Annotated[str, typer.Argument(help="抽查任务编号 / campaign id")],
        force: ForceOption = False,
        home: HomeOption = None,
    ) -> None:
        """导出可公示结果 (脱敏, 不含分类) / write publishable results: masked, no classes."""
        with user_errors():
            settings, store = context(home)
            inspectors = snapshot_provider(settings).tables["inspectors"]
            now = clock()
            done = store_ops.publish(store, campaign_id, inspectors, actor=actor(), now=now,
                                     force=force)
            days = store.campaign(campaign_id).policy().publication.deadline_working_days
            typer.echo(f"已导出 / exported {done.rows} 行 rows (待录入未公示 / pending, not "
                       f"published: {done.pending}):")
            typer.echo(f"  {done.csv_path}\n  {done.json_path}")
            for line in _deadline_lines(done.deadlines, days):
                typer.echo(line)

    @app.command("list")
    def list_campaigns(home: HomeOption = None) -> None:
        """列出抽查任务 / list campaigns with their current step."""
        with user_errors():
            _, store = context(home)
            rows = []
            for campaign in store.campaigns():
                spec = campaign.spec()
                drawn = len(campaign.evidence().drawn) if campaign.done("draw") else None
                rows.append({"campaign_id": campaign.campaign_id, "department": spec.department,
                             "items": LIST_SEPARATOR.join(spec.check_items),
                             "period": f"{spec.period_start}–{spec.period_end}",
                             "drawn": "-" if drawn is None else drawn,
                             "status": store_ops.STEP_NAMES[campaign.status]})
            if not rows:
                typer.echo(f"还没有抽查任务 / no campaign yet in {store.root}")
                return
            typer.echo(_table(pd.DataFrame(rows)))

    @app.command()
    def show(
        campaign_id: Annotated[str, typer.Argument(help="抽查任务编号 / campaign id")],
        home: HomeOption = None,
    ) -> None:
        """显示抽查任务详情与操作记录 / show a campaign, its steps and its action log."""
        with user_errors():
            _, store = context(home)
            campaign = store.campaign(campaign_id)
            spec, commitment = campaign.spec(), campaign.commitment()
            typer.echo(f"抽查任务 / campaign {campaign_id}: {DEPARTMENTS[spec.department]}; "
                       f"{spec.title or '-'}")
            typer.echo(f"事项 / items {LIST_SEPARATOR.join(spec.check_items)} ({spec.item_kind}); "
                       f"期间 / period {spec.period_start} – {spec.period_end}")
            typer.echo(f"承诺摘要 / commitment digest: {commitment.digest()} "
                       f"(策略 / policy {commitment.policy_version})")
            for step in store_ops.STEPS:
                entry = campaign.last_action(step)
                when = f"{entry['at']} by {entry['actor']}" if entry else ""
                mark = "x" if campaign.done(step) else " "
                typer.echo(f"  [{mark}] {store_ops.STEP_NAMES[step]} {when}")
            if campaign.done("draw"):
                drawn = campaign.evidence().drawn_frame()
                counts = drawn.groupby("stratum")["inclusion_probability"].agg(["size", "first"])
                for stratum, row in counts.iterrows():
                    typer.echo(f"  层 stratum {stratum}: 抽中 drawn {int(row['size'])}, 入样概率 "
                               f"p={float(row['first']):.4f}")
            if campaign.done("results"):
                days = campaign.policy().publication.deadline_working_days
                status = store_ops.deadline_status(campaign, clock().date())
                for line in _deadline_lines(status, days):
                    typer.echo(line)

    @app.command()
    def estimates(
        campaign_id: Annotated[str | None, typer.Argument(
            help="抽查任务编号 / campaign id")] = None,
        all_campaigns: Annotated[bool, typer.Option(
            "--all", help="所有已录入结果的任务 (合并估计) / every campaign with results, pooled")
        ] = False,
        as_json: Annotated[bool, typer.Option("--json", help="输出 JSON / JSON output")] = False,
        home: HomeOption = None,
    ) -> None:
        """按分类估计问题发生率 (HT) / Horvitz–Thompson problem rates per class and overall."""
        with user_errors():
            _, store = context(home)
            campaigns = store_ops.campaigns_with_results(store, _one_or_all(campaign_id,
                                                                            all_campaigns))
            table = store_ops.campaign_estimates(campaigns)
            names = [c.campaign_id for c in campaigns]
            if as_json:
                typer.echo(json.dumps({"campaigns": names,
                                       "estimates": _json_records(table)},
                                      ensure_ascii=False, indent=1))
                return
            typer.echo(format_estimates(table, names))

    @app.command("export-inspections")
    def export_inspections(
        out: Annotated[Path, typer.Option("--out", help="输出 CSV / output CSV file")],
        campaign_id: Annotated[str | None, typer.Argument(
            help="抽查任务编号 / campaign id")] = None,
        all_campaigns: Annotated[bool, typer.Option(
            "--all", help="所有已录入结果的任务 / every campaign with results")] = False,
        known_date: Annotated[str | None, typer.Option(
            help="数据获知日期 / known_date of the rows, YYYY-MM-DD (default: today)")] = None,
        home: HomeOption = None,
    ) -> None:
        """导出为 inspections 源表 (回流训练) / results as contract `inspections` rows."""
        with user_errors():
            _, store = context(home)
            campaigns = store_ops.campaigns_with_results(store, _one_or_all(campaign_id,
                                                                            all_campaigns))
            known = (_date(known_date, "--known-date") if known_date is not None
                     else clock().date())
            rows = store_ops.inspections_export(campaigns, known)
            store_ops.atomic_write(out, store_ops.csv_bytes(rows))
            typer.echo(f"已写入 / written: {out} ({len(rows)} 行检查 / inspection rows, "
                       f"source=random_draw, known_date {known})")
            typer.echo("放入下次导入目录命名为 inspections.csv, 标签按 1/入样概率 加权 / put it in "
                       "the next ingest directory as inspections.csv; labels carry 1/π weights")

    return app


campaign_app = build_campaign_app()


# --------------------------------------------------------------------------------------------
# simulate-policy
# --------------------------------------------------------------------------------------------


def compare_on_district(
    classes: pd.DataFrame,
    monthly: pd.DataFrame,
    policy: SamplingPolicy,
    names: Sequence[str],
    cycles: int,
    seed: str,
) -> pd.DataFrame:
    """Each ratio set and its equal-budget uniform twin replayed over the last `cycles` months.

    Rows: the set, then `uniform@<set>`; `vs_uniform` is problems per inspection over the
    twin's (every set shares the cycle's draw keys, so only the ratios differ).
    """
    from supervision.policy_replay import compare_ratio_sets

    months = sorted(monthly["month"].unique())
    if not 1 <= cycles <= len(months):
        raise CampaignStoreError(f"--cycles 须在 1 到 {len(months)} 之间 (模拟月数) / "
                                 f"--cycles must be between 1 and {len(months)} (simulated "
                                 f"months)")
    tables = []
    for name in names:
        table = compare_ratio_sets(classes, monthly, {name: policy.ratio_sets[name]},
                                   months[-cycles:], seed, cycle_column="month",
                                   uniform_baseline_for=name, floor_ratio=policy.floor_ratio)
        table["vs_uniform"] = (table["problems_per_inspection"]
                               / table["problems_per_inspection"].iloc[-1])
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def format_comparison(table: pd.DataFrame) -> str:
    shown = pd.DataFrame({
        "方案 set": table["ratio_set"],
        "检查数 inspections": table["inspections"],
        "发现问题(真值) found": table["problems_found"],
        "每检发现 per insp.": table["problems_per_inspection"].map(lambda v: f"{v:.3f}"),
        "×均匀 vs uniform": table["vs_uniform"].map(lambda v: f"{v:.2f}×"),
        "A类检查 A insp.": table["class_a_inspections"],
        "A类每期受检比例 A share/cycle": table["class_a_share_inspected"].map(_pct),
        "总体率误差 overall err": table["overall_rate_abs_error"].map(lambda v: f"{v:.4f}"),
        "分类率误差 class err": table["class_rate_abs_error"].map(lambda v: f"{v:.4f}"),
    })
    return shown.to_string(index=False)


def simulate_policy(
    enterprises: Annotated[int, typer.Option(help="企业数 / number of enterprises")] = 4000,
    years: Annotated[int, typer.Option(help="模拟年数 / simulated years")] = 2,
    seed: Annotated[int, typer.Option(help="随机种子 / random seed")] = 7,
    cycles: Annotated[int, typer.Option(help="抽查轮数 (月) / draw cycles (months)")] = 12,
    ratio_sets: Annotated[str | None, typer.Option(
        help="比例方案, 逗号分隔 (默认: 策略中全部) / ratio sets a,b,c (default: all in policy)")
    ] = None,
    home: HomeOption = None,
) -> None:
    """在模拟辖区比较抽查比例方案 / compare ratio sets on a simulated district vs uniform."""
    from simulation.district import DistrictConfig, simulate_district

    with user_errors():
        policy = sampling_policy(load_settings(home))
        names = ([n.strip() for n in ratio_sets.split(",") if n.strip()] if ratio_sets
                 else list(policy.ratio_sets))
        unknown = [n for n in names if n not in policy.ratio_sets]
        if unknown or not names:
            raise CampaignStoreError(f"比例方案不存在 / unknown ratio sets {unknown}; known: "
                                     f"{list(policy.ratio_sets)}")
        try:
            config = DistrictConfig(enterprises=enterprises, years=years, seed=seed)
            config.validate()
        except ValueError as error:
            raise CampaignStoreError(str(error)) from None
        district = simulate_district(config)
        classes = (district.truth["enterprise_class"][["uscc", "true_class"]]
                   .rename(columns={"true_class": "class"}).set_index("uscc"))
        monthly = district.truth["enterprise_monthly"]
        monthly = monthly.loc[monthly["uscc"].isin(classes.index)]
        table = compare_on_district(classes, monthly, policy, names, cycles, f"simulate-{seed}")
    typer.echo(f"模拟辖区 / simulated district: {enterprises} 户 firms, {years} 年 years, "
               f"seed {seed}; {cycles} 轮抽查 (每月一轮) / draw cycles (one per month); "
               f"策略 / policy {policy.version}, 保底 / floor {_pct(policy.floor_ratio)}")
    typer.echo("分类来源: 模拟器的真实分类 (未训练模型) / classes used: the simulator's true "
               "classes (no model trained); 问题: 真值 / problems: ground truth")
    typer.echo("uniform@X: 与方案 X 同等检查总数的简单随机抽样 / simple random sample with the "
               "same total inspections as set X")
    typer.echo(format_comparison(table))

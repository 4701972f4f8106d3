"""`riskmatrix triggers`: trigger-based supervision (触发式监管, "无事不扰") on the command line.

    riskmatrix triggers --as-of DATE     tag firms, evaluate the triggers, store and print cases
    riskmatrix triggers evaluate         replay the trigger policy on a simulated district
    riskmatrix triggers cases [--open]   list stored cases;  close CASE_ID --reason TEXT
    riskmatrix triggers undisturbed      write the "无事不扰" flags for the campaign planner

Where today's classes come from is injectable (`build_triggers_app(class_provider=...)`): the
default scores the current snapshot with the champion model; tests pass classes built from a
simulated district's truth. The previous class per firm (for the class-drop rule) is the class
this command stored at its last run (`<home>/cases/classes.parquet`); on the first run there is
none, so class-drop rules cannot fire until the second run. User mistakes print one bilingual
line on stderr and exit with code 2.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import pandas as pd
import typer

from features.contract import SEVERITIES
from serving import case_store
from serving.case_store import CaseStoreError
from serving.cli_options import HomeOption
from serving.files import utc_now
from serving.settings import Settings, load_settings
from supervision.trigger_policy import ACTIONS, DigitalPolicy
from supervision.triggers import CASE_STATUSES, OUTCOMES, TOLERANCE_RULE

if TYPE_CHECKING:
    from serving.scoring import Context

AsOfOption = Annotated[
    str | None,
    typer.Option("--as-of", help="基准日 YYYY-MM-DD / as-of date (default: the day after the "
                 "snapshot's data ends)"),
]
WithoutClassesOption = Annotated[
    bool,
    typer.Option("--without-classes", help="不使用模型分类 (分类下降规则不触发) / run without the "
                 "model's classes (class-drop rules cannot fire)"),
]
TOLERANCE_LABEL = "包容期 / tolerance period"
ShowOption = Annotated[
    int | None,
    typer.Option("--show", help="最多显示案件数, 严重的在前 / show at most N cases, most severe "
                 "first (default: all)"),
]


# --------------------------------------------------------------------------------------------
# Inputs: today's classes
# --------------------------------------------------------------------------------------------


ReasonLoader = Callable[[pd.Index], pd.DataFrame]


@dataclass(frozen=True)
class Classification:
    """Today's class per firm (index uscc; columns class, probability, top_reasons_zh,
    top_reasons_en — the last three optional) and what produced it (model and version).

    `reasons`, when set, loads top_reasons_zh/en (index uscc) for just the firms the triggers
    watch and replaces those columns: reason texts for a whole district cost more memory than
    the rest of the trigger stage, and only the watched firms' are ever shown.
    """

    classes: pd.DataFrame
    source: str
    reasons: ReasonLoader | None = None


ClassProvider = Callable[[Settings, pd.Timestamp], Classification]
Clock = Callable[[], dt.datetime]


def champion_classes(settings: Settings, as_of: pd.Timestamp) -> Classification:
    """The champion's classes at `as_of`, exactly as every other serving command scores them
    (no hysteresis input here, so the classes match the campaign roster's)."""
    from serving.scoring import score_with_champion

    scores = score_with_champion(settings, as_of)
    columns = ["class", "probability", "top_reasons_zh", "top_reasons_en"]
    return Classification(scores.population.scores[columns],
                          f"{scores.model_name} v{scores.model_version}")


def engine_classes(
    classification: Classification, previous: pd.Series, as_of: pd.Timestamp,
    scope: pd.Index | None = None,
) -> pd.DataFrame:
    """The trigger engine's class frame: uscc, risk_class, previous_class, probability,
    reasons ({zh, en}), classified_on (so a class drop fires once per classification date)."""
    scores = classification.classes
    if "class" not in scores.columns:
        raise CaseStoreError("分类结果缺少 class 列 / the classes lack a `class` column")
    if scope is not None:
        scores = scores.loc[scores.index.astype(str).isin(scope.astype(str))]
    uscc = pd.Index(scores.index.astype(str), name="uscc")

    def column(name: str) -> pd.Series:
        if name in scores.columns:
            return pd.Series(scores[name].to_numpy(), index=uscc)
        return pd.Series([None] * len(uscc), index=uscc, dtype=object)

    if classification.reasons is not None:
        texts = classification.reasons(uscc).reindex(uscc)
        zh = pd.Series(texts["top_reasons_zh"].to_numpy(), index=uscc)
        en = pd.Series(texts["top_reasons_en"].to_numpy(), index=uscc)
    else:
        zh, en = column("top_reasons_zh"), column("top_reasons_en")
    reasons = [
        None if pd.isna(z) and pd.isna(e) else {"zh": _text(z), "en": _text(e)}
        for z, e in zip(zh, en, strict=True)
    ]
    before = previous.reindex(uscc.astype("string"))
    return pd.DataFrame({
        "uscc": uscc.to_numpy(),
        "risk_class": column("class").astype(object).to_numpy(),
        "previous_class": before.astype(object).where(before.notna(), None).to_numpy(),
        "probability": pd.to_numeric(column("probability"), errors="coerce").to_numpy(),
        "reasons": reasons,
        "classified_on": as_of,
    })


def _text(value: Any) -> str:
    return "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


# --------------------------------------------------------------------------------------------
# The nightly run
# --------------------------------------------------------------------------------------------


@dataclass
class RunReport:
    """What one run did (or, for a date already run, what it had done), ready to print."""

    as_of: pd.Timestamp
    already_recorded: bool
    cases: pd.DataFrame                 # today's cases (opened or updated), case-book columns
    opened: tuple[str, ...]
    updated: tuple[str, ...]
    suppressed: pd.DataFrame            # firings suppressed by the cool-down (engine firings)
    tagged: int
    undisturbed: int
    open_cases: int
    names: dict[str, str]
    policy: DigitalPolicy
    provenance: dict[str, Any] = field(default_factory=dict)
    undisturbed_path: Path | None = None


def _digital_policy(context: Any) -> DigitalPolicy:
    digital = context.policy.digital
    if digital is None:
        raise CaseStoreError(
            f"策略文件 {context.policy.source} 缺少 digital 段 / the policy file has no "
            "`digital:` section"
        )
    return digital


# What the trigger engine and the report read of the snapshot (supervision.tagging,
# supervision.triggers): the registry columns of tagging and firm age, and the record columns.
TRIGGER_ENTERPRISE_COLUMNS: tuple[str, ...] = (
    "uscc", "name", "established_date", "status", "status_date", "industry_code",
    "business_scope",
)
TRIGGER_EVENT_COLUMNS: tuple[str, ...] = (
    "event_id", "uscc", "event_type", "occurred_date", "known_date", "severity",
)


def read_table_columns(snapshot_dir: Path, name: str, columns: Sequence[str] | None = None,
                       firms: pd.Index | None = None) -> pd.DataFrame:
    """One snapshot table typed as `load_snapshot` types it, but only `columns` (None: all)
    and, given `firms`, only their rows (filtered while reading, so a district's records are
    never all in memory at once). Row order is the file's, as in `load_snapshot`."""
    from dataclasses import replace

    from features.contract import TABLES
    from features.snapshot import SnapshotError, coerce_types

    table = TABLES[name]
    path = Path(snapshot_dir) / f"{name}.parquet"
    if not path.is_file():
        raise SnapshotError(f"快照 {Path(snapshot_dir).name} 缺少表文件 {path.name} / "
                            f"snapshot {Path(snapshot_dir).name} lacks {path.name}")
    wanted = table.column_names if columns is None else list(columns)
    import pyarrow.parquet as pq

    stored = set(pq.read_schema(path).names)
    filters = None if firms is None else [("uscc", "in", [str(u) for u in firms])]
    frame = pd.read_parquet(path, columns=[c for c in wanted if c in stored], filters=filters)
    return coerce_types(replace(table, columns=tuple(table.column(c) for c in wanted)), frame)


def trigger_snapshot(snapshot_dir: Path, digital: DigitalPolicy, as_of: pd.Timestamp
                     ) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """The snapshot tables the triggers read, cut to what they read, and the tags at `as_of`.

    Only the tagged firms' registry rows and records are kept (unless the policy watches all
    firms): the engine drops every other firm first thing, and a district's full record table
    would be the largest object of a nightly run. The engine's result is the same.
    """
    enterprises = read_table_columns(snapshot_dir, "enterprises", TRIGGER_ENTERPRISE_COLUMNS)
    digital_tags = read_table_columns(snapshot_dir, "digital_tags")
    from supervision.tagging import tag_enterprises, tagged_firms

    tags = tag_enterprises(enterprises, digital_tags, digital, as_of)
    watched = None if digital.apply_to_all_firms else tagged_firms(tags)
    if watched is not None:
        kept = enterprises["uscc"].astype(str).isin(watched.astype(str)).to_numpy()
        enterprises = enterprises.loc[kept].reset_index(drop=True)
    events = read_table_columns(snapshot_dir, "enterprise_events", TRIGGER_EVENT_COLUMNS,
                                firms=watched)
    tables = {"enterprises": enterprises, "digital_tags": digital_tags,
              "enterprise_events": events}
    return tables, tags


def _trigger_context(settings: Settings, day: dt.date | None) -> Context:
    """The policy and snapshot of the run for `day`, without tables (`trigger_snapshot` reads
    what the triggers need). Defaulting the date to the day after the snapshot's data ends
    needs the whole snapshot once, and it is dropped right after."""
    from serving.scoring import Context, current_snapshot_dir, load_context
    from supervision.policy import load_policy

    if day is None:
        full = load_context(settings, None)
        return Context(full.snapshot_dir, {}, full.policy, full.as_of)
    return Context(current_snapshot_dir(settings), {}, load_policy(settings.policy_path),
                   pd.Timestamp(day))


def _names(snapshot: Mapping[str, pd.DataFrame], uscc: Sequence[str]) -> dict[str, str]:
    enterprises = snapshot["enterprises"]
    wanted = enterprises.loc[enterprises["uscc"].astype(str).isin(list(uscc))]
    return {str(u): str(n) for u, n in zip(wanted["uscc"], wanted["name"], strict=True)}


def _evidence_on(case: Mapping[str, Any], day: pd.Timestamp) -> list[dict[str, Any]]:
    stamp = day.strftime("%Y-%m-%d")
    return [item for item in (case.get("evidence") or []) if item.get("recorded_on") == stamp]


def run_triggers(
    settings: Settings,
    as_of: object | None = None,
    *,
    class_provider: ClassProvider | None = champion_classes,
    now: dt.datetime | None = None,
) -> RunReport:
    """Tag firms at as_of, evaluate the triggers on the stored book, store and report.

    `class_provider=None` runs without classes (class-drop rules cannot fire). A date already
    recorded is not evaluated again: the report re-reads what that run stored.
    """
    from supervision.tagging import tagged_firms
    from supervision.triggers import evaluate_triggers, merge_case_book, undisturbed_flags

    context = _trigger_context(settings, None if as_of is None else case_store.as_date(as_of))
    day = pd.Timestamp(context.as_of).normalize()
    digital = _digital_policy(context)
    snapshot, tags = trigger_snapshot(context.snapshot_dir, digital, day)
    recorded = case_store.find_run(settings, day)
    if recorded is None:
        case_store.check_can_run(settings, day)
    book = case_store.load_case_book(settings)
    provenance: dict[str, Any] = {
        "snapshot_id": context.snapshot_id, "input_hash": context.input_hash,
        "policy_version": context.policy.version,
        "policy_hash": context.policy.content_hash,
    }
    suppressed = pd.DataFrame(columns=["uscc", "rule", "severity", "zh", "en"])
    if recorded is not None:
        opened, updated = recorded.opened, recorded.updated
        provenance = recorded.provenance or provenance
    else:
        classes = None
        classification = None
        if class_provider is not None:
            classification = class_provider(settings, day)
            scope = None if digital.apply_to_all_firms else tagged_firms(tags)
            classes = engine_classes(classification, case_store.load_previous_classes(settings),
                                     day, scope)
            provenance["classes"] = classification.source
        else:
            provenance["classes"] = None
        result = evaluate_triggers(snapshot, day, tags=tags, classes=classes, open_cases=book,
                                   policy=digital)
        book = merge_case_book(book, result)
        case_store.save_case_book(settings, book, day, provenance=provenance, now=now)
        if classification is not None:
            case_store.save_classes(settings, classification.classes["class"], day)
        opened, updated = result.opened, result.updated
        suppressed = result.firings.loc[result.firings["outcome"] == "suppressed_cooldown"]
    flags = undisturbed_flags(tags, book, day)
    # A date run earlier only re-shows its result: the stored flags stay today's.
    path = None if recorded is not None else case_store.write_undisturbed(settings, flags, day)
    today = book.loc[book["case_id"].isin([*opened, *updated])].sort_values("case_id")
    firms = sorted({*today["uscc"].astype(str), *suppressed["uscc"].astype(str)})
    open_now = case_store.typed_book(book)
    return RunReport(
        as_of=day, already_recorded=recorded is not None, cases=today.reset_index(drop=True),
        opened=tuple(opened), updated=tuple(updated),
        suppressed=suppressed.reset_index(drop=True), tagged=len(flags),
        undisturbed=int(flags.sum()),
        open_cases=int(((open_now["status"] == "open") & (open_now["opened_on"] <= day)).sum()),
        names=_names(snapshot, firms), policy=digital, provenance=provenance,
        undisturbed_path=path,
    )


# --------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------


def _zh(label: str) -> str:
    return label.split(" / ")[0]


def _en(label: str) -> str:
    return label.split(" / ")[-1]


def rule_label(policy: DigitalPolicy, name: str) -> str:
    if name == TOLERANCE_RULE:
        return TOLERANCE_LABEL
    try:
        rule = policy.trigger(name)
    except (KeyError, ValueError, LookupError):
        return name
    return f"{rule.zh} / {rule.en}"


def _label(table: Mapping[str, str], code: Any) -> str:
    if code is None or (not isinstance(code, str) and pd.isna(code)):
        return "-"
    return table.get(str(code), str(code))


def _pairs(values: Mapping[str, Any] | None) -> str:
    if not values:
        return "-"
    return ", ".join(f"{k}={_value(v)}" for k, v in values.items())


def _value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return "[" + ",".join(str(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def format_evidence(item: Mapping[str, Any], policy: DigitalPolicy) -> list[str]:
    """One evidence item: rule, records, observed values against thresholds, bilingual text."""
    lines = [f"    - {rule_label(policy, str(item.get('rule')))} [{item.get('rule')}]"
             f"  {_label(SEVERITIES, item.get('severity'))}"]
    applied, asked = item.get("applied_action"), item.get("action")
    if asked is not None:
        shown = _label(ACTIONS, applied or asked)
        if applied and applied != asked:
            shown += f" (包容期内代替 / tolerated, instead of {_label(ACTIONS, asked)})"
        lines.append(f"      处置 / action: {shown}")
    lines.append(f"      {item.get('zh')}")
    lines.append(f"      {item.get('en')}")
    records = item.get("event_ids") or []
    if records:
        lines.append(f"      记录 / records: {', '.join(str(r) for r in records)}")
    lines.append(f"      观测值 / observed: {_pairs(item.get('observed'))}")
    lines.append(f"      阈值 / threshold: {_pairs(item.get('threshold'))}")
    return lines


def _reasons(reasons: Any) -> list[str]:
    if isinstance(reasons, dict):
        return [t for t in (reasons.get("zh"), reasons.get("en")) if t]
    if isinstance(reasons, str) and reasons:
        return [reasons]
    return []


def format_case(
    case: Mapping[str, Any],
    policy: DigitalPolicy,
    names: Mapping[str, str],
    *,
    outcome: str | None = None,
    day: pd.Timestamp | None = None,
    reason: str | None = None,
) -> list[str]:
    """A case for an inspector: action, class, reasons and the evidence (of `day` if given)."""
    head = f"[{_label(OUTCOMES, outcome)}] " if outcome else ""
    uscc = str(case["uscc"])
    lines = [f"{head}{case['case_id']}  {uscc}  {names.get(uscc, '')}".rstrip()]
    tags = case.get("tags") or []
    if tags:
        lines.append(f"  标签 / tags: {', '.join(str(t) for t in tags)}")
    status = _label(CASE_STATUSES, case.get("status"))
    dates = f"立案 / opened {_day(case.get('opened_on'))}, 更新 / updated " \
            f"{_day(case.get('updated_on'))}"
    if case.get("status") == "closed":
        dates += f", 办结 / closed {_day(case.get('closed_on'))}"
    lines.append(f"  状态 / status: {status}  ({dates})")
    tolerated = "是 / yes" if bool(case.get("tolerated")) else "否 / no"
    lines.append(f"  处置 / action: {_label(ACTIONS, case.get('action'))}   严重程度 / severity: "
                 f"{_label(SEVERITIES, case.get('severity'))}   包容期 / tolerated: {tolerated}")
    if case.get("tolerated") and not pd.isna(case.get("correct_by")):
        lines.append(f"  改正期限 / correct by: {_day(case.get('correct_by'))}")
    risk_class = case.get("risk_class")
    if isinstance(risk_class, str):
        previous = case.get("previous_class")
        previous_text = f", 上次 / previous {previous}" if isinstance(previous, str) else ""
        probability = case.get("probability")
        probability_text = "" if probability is None or pd.isna(probability) else \
            f", 概率 / probability {float(probability):.3f}"
        lines.append(f"  分类 / class: {risk_class}{previous_text}{probability_text}")
    else:
        lines.append("  分类 / class: - (无模型分类 / no model class)")
    reasons = _reasons(case.get("reasons"))
    if reasons:
        lines.append(f"  主要原因 / top reasons: {reasons[0]}")
        lines.extend(f"                          {r}" for r in reasons[1:])
    if reason:
        lines.append(f"  结案原因 / closing reason: {reason}")
    items = _evidence_on(case, day) if day is not None else list(case.get("evidence") or [])
    if items:
        lines.append("  证据 / evidence:")
        for item in items:
            lines.extend(format_evidence(item, policy))
    return lines


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict("records")]


def _day(value: Any) -> str:
    return "-" if value is None or pd.isna(value) else pd.Timestamp(value).strftime("%Y-%m-%d")


def format_run(report: RunReport, show: int | None = None) -> str:
    """Today's cases with their evidence, the cool-down suppressions and the counts."""
    p = report.provenance
    classes = p.get("classes") or "无 / none (分类下降规则未评估 / class-drop rules not evaluated)"
    lines = [f"触发式监管 / trigger-based supervision — 基准日 / as of {report.as_of:%Y-%m-%d}"]
    if report.already_recorded:
        lines.append("该基准日已运行, 以下为已记录的结果 (未重新评估) / this date was already run: "
                     "showing the recorded result (not evaluated again)")
    lines.append(f"快照 / snapshot: {p.get('snapshot_id', '-')}   策略 / policy: "
                 f"{p.get('policy_version', '-')} ({str(p.get('policy_hash', ''))[:12]})   "
                 f"分类 / classes: {classes}")
    lines.append(
        f"带标签企业 / tagged firms: {report.tagged:,}   无事不扰 / undisturbed: "
        f"{report.undisturbed:,}   有在办案件 / with an open case: "
        f"{report.tagged - report.undisturbed:,}   在办案件合计 / open cases: "
        f"{report.open_cases:,}"
    )
    lines.append(f"今日新立 / opened today: {len(report.opened):,}   今日更新 / updated today: "
                 f"{len(report.updated):,}   {OUTCOMES['suppressed_cooldown']}: "
                 f"{len(report.suppressed):,}")
    opened = set(report.opened)
    shown = _records(report.cases)
    if show is not None and len(shown) > show:
        # Most severe first, so a shortened list keeps what an inspector must see first.
        order = {"serious": 0, "general": 1, "minor": 2}
        shown = sorted(shown, key=lambda c: (order.get(str(c.get("severity")), 3),
                                             str(c["case_id"])))
        hidden, shown = len(shown) - show, shown[:show]
    else:
        hidden = 0
    for case in shown:
        outcome = "opened" if case["case_id"] in opened else "updated"
        lines.append("")
        lines.extend(format_case(case, report.policy, report.names, outcome=outcome,
                                 day=report.as_of))
    if hidden:
        lines.append("")
        lines.append(f"另有 {hidden} 件, 见 riskmatrix triggers cases / {hidden} more: "
                     "see `riskmatrix triggers cases`")
    if len(report.suppressed):
        lines.append("")
        lines.append(f"{OUTCOMES['suppressed_cooldown']} (近期已办结案件处理过同一规则 / a "
                     "recently closed case dealt with the same rule):")
        for firing in report.suppressed.to_dict("records"):
            uscc = str(firing["uscc"])
            lines.append(f"  {uscc} {report.names.get(uscc, '')}  "
                         f"{rule_label(report.policy, str(firing['rule']))}  "
                         f"{_label(SEVERITIES, firing['severity'])}: {firing['zh']} / "
                         f"{firing['en']}")
    if report.undisturbed_path is not None:
        lines.append("")
        lines.append(f"无事不扰标记 / undisturbed flags: {report.undisturbed_path}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Evaluation on a simulated district
# --------------------------------------------------------------------------------------------


def true_classes_by_date(
    truth: Mapping[str, pd.DataFrame], dates: Sequence[pd.Timestamp]
) -> dict[pd.Timestamp, pd.DataFrame]:
    """Simulated true class per firm for each date (its risk in the month before the date).

    Only for the routine-sampling baseline: `previous_class` is left empty, so the class-drop
    rule does not fire on the truth (that would grade the triggers with an oracle).
    """
    monthly = truth["enterprise_monthly"][["uscc", "month", "risk"]]
    thresholds = truth["class_thresholds"].sort_values("risk_low")
    edges = thresholds["risk_high"].astype(float).to_numpy()[:-1]
    labels = thresholds["true_class"].astype(str).to_numpy()
    months = pd.to_datetime(monthly["month"])
    out = {}
    for day in dates:
        month = (day - pd.Timedelta(days=1)).to_period("M").to_timestamp()
        rows = monthly.loc[(months == month).to_numpy()]
        risk = rows["risk"].astype(float).to_numpy()
        out[day] = pd.DataFrame({
            "uscc": rows["uscc"].astype(str).to_numpy(),
            "risk_class": labels[edges.searchsorted(risk, side="right")],
            "previous_class": None,
        })
    return out


def routine_ratios(policy: Any, rounds_per_year: float) -> tuple[dict[str, float], float]:
    """Annual class-driven ratios (the default ratio set, raised to the floor) and the floor."""
    sampling = policy.sampling
    if sampling is None:
        raise CaseStoreError("策略文件缺少 sampling 段 / the policy file has no `sampling:` "
                             "section (needed for the routine-sampling baseline)")
    ratios = sampling.ratio_sets[sampling.default_ratio_set]
    floor = float(sampling.floor_ratio)
    annual = {c: min(1.0, max(float(r), floor)) * rounds_per_year for c, r in ratios.items()}
    return annual, floor * rounds_per_year


def _pct(value: float) -> str:
    return "-" if pd.isna(value) else f"{100 * float(value):.1f}%"


def _mark(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def format_evaluation(
    metrics: Mapping[str, Any],
    by_rule: pd.DataFrame,
    header: Sequence[str],
    policy: DigitalPolicy,
    *,
    target_lift: float,
    target_share: float,
    catch_days: int,
) -> str:
    """The evaluation figures, the issue's two targets with PASS/FAIL, and honest caveats."""
    m = metrics
    lift, inspection_lift = m["precision_lift"], m["inspection_precision_lift"]
    share = m["serious_reached_within_catch_days"]
    avoided = m["inspections_avoided"]
    lines = [*header, ""]
    lines += [
        f"带标签企业 (平均) / tagged firms (mean): {m['tagged_firms_mean']:,.0f}   "
        f"无事不扰占比 / undisturbed share: {_pct(m['undisturbed_share_mean'])}",
        f"随机抽查命中率 / random-check hit rate (tagged firm with a live true problem): "
        f"{_pct(m['random_check_hit_rate'])}",
        f"立案 / cases opened: {m['cases_opened']:,}   其中现场检查 / of which on-site "
        f"inspection: {m['inspection_cases_opened']:,}",
        f"精确率 / precision: 全部案件 / all cases {_pct(m['trigger_precision'])} "
        f"({lift:.2f}× 随机抽查 / a random check);  现场检查案件 / inspection cases "
        f"{_pct(m['inspection_case_precision'])} ({inspection_lift:.2f}×)",
        f"召回率 / recall: {m['true_problems_caught']:,} / {m['true_problems']:,} 个真实问题 / "
        f"true problems ({_pct(m['recall'])});  问题出现至立案中位天数 / median days problem → "
        f"case: {m['median_days_problem_start_to_case']:.0f}",
        f"严重问题在首条记录后{catch_days}天内立案 / serious problems reaching a case within "
        f"{catch_days} days of their first record: {_pct(share)} "
        f"(可测 / measurable {m['serious_measurable']:,} / {m['serious_problems']:,})",
        f"检查次数 / inspections: 按分类常规抽查 / class-driven routine sampling "
        f"{m['routine_inspections']:,.1f}  vs  触发式 / trigger regime "
        f"{m['trigger_regime_inspections']:,.1f} (触发检查 / trigger inspections "
        f"{m['inspection_cases']:,} + 保底抽查 / random floor)  →  减少 / avoided "
        f"{avoided:,.1f}",
        f"无问题企业被检查 / inspections of firms without a problem: 常规 / routine "
        f"{m['routine_inspections_without_problem']:,.1f}  vs  触发式 / trigger regime "
        f"{m['trigger_regime_inspections_without_problem']:,.1f}",
    ]
    if "repeat_inspections_of_a_problem" in m:
        lines.append(
            f"同一问题被重复检查 / inspections of a problem an earlier trigger inspection "
            f"already hit: {m['repeat_inspections_of_a_problem']:,}  →  不计重复 / avoided "
            f"without them {m['inspections_avoided_without_repeats']:,.1f};  发现问题 / "
            f"problems found: 常规 / routine {m['problems_found_routine']:,.1f}  vs  触发检查 "
            f"/ trigger inspections {m['problems_found_by_trigger_inspections']:,.0f}"
        )
    if not pd.isna(avoided) and avoided < 0:
        lines += [
            f"注意 / note: 触发式检查多于常规抽查, 这不是计算错误: 任一时点约"
            f"{_pct(m['random_check_hit_rate'])}的带标签企业存在真实问题, 监测命中每月都有, "
            "触发规则据此立案; 常规抽查每年只查约一成企业, 找到的问题也少得多. 回放没有反馈: "
            "触发检查不会终止模拟中的问题, 冷静期后同一问题再次触发并再次检查, 现实中检查会责令"
            "改正, 因此上面另列不计重复检查的数字.",
            f"  / the trigger regime inspects MORE than routine sampling would, and this is "
            f"not an arithmetic error: about {_pct(m['random_check_hit_rate'])} of tagged "
            "firms have a live true problem at any time and the monitoring model hits them "
            "monthly, so the triggers open cases on them; routine sampling visits about one "
            "firm in ten a year and finds far fewer problems. The replay has no feedback: a "
            "trigger inspection does not end the simulated problem, so after the cool-down the "
            "same problem fires and is inspected again, where a real inspection orders the "
            "correction — hence the figure without repeat inspections above.",
        ]
    if len(by_rule):
        lines += ["", "按规则 / by rule:"]
        for row in _records(by_rule):
            lines.append(f"  {rule_label(policy, str(row['rule']))} [{row['rule']}]: "
                         f"{int(row['firings']):,} 次 / firings, 命中 / precision "
                         f"{_pct(float(row['precision']))}")
    lines += [
        "",
        "目标 / targets:",
        f"  [{_mark(inspection_lift >= target_lift)}] 现场检查案件命中真实问题 ≥ {target_lift:g}× "
        f"随机抽查 / inspection cases hit a true problem ≥ {target_lift:g}× a random check: "
        f"{inspection_lift:.2f}×",
        f"  [{_mark(lift >= target_lift)}] 全部案件 (含提醒、约谈、责令改正) / all cases "
        f"(advice, talks and correction notices included): {lift:.2f}×",
        f"  [{_mark(not pd.isna(share) and share >= target_share)}] 严重问题{catch_days}天内立案 "
        f"≥ {_pct(target_share)} / serious problems reach a case within {catch_days} days "
        f"≥ {_pct(target_share)}: {_pct(share)}",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# The command group
# --------------------------------------------------------------------------------------------


def _user_error_types() -> tuple[type[BaseException], ...]:
    """Errors meaning bad input, not a bug (serving.scoring's only if it was imported)."""
    from features.snapshot import SnapshotError
    from supervision.policy import PolicyError
    from supervision.trigger_policy import TriggerPolicyError

    types: list[type[BaseException]] = [CaseStoreError, PolicyError, SnapshotError,
                                        TriggerPolicyError]
    scoring = sys.modules.get("serving.scoring")
    if scoring is not None:
        types.append(scoring.ServingError)
    return tuple(types)


@contextmanager
def user_errors() -> Iterator[None]:
    """Print a user mistake as one bilingual line on stderr and exit 2 (no traceback)."""
    try:
        yield
    except typer.Exit:
        raise
    except Exception as error:
        if isinstance(error, _user_error_types()):
            typer.echo(f"错误 / error: {error}", err=True)
            raise typer.Exit(2) from None
        raise


def build_triggers_app(
    class_provider: ClassProvider = champion_classes,
    clock: Clock = utc_now,
) -> typer.Typer:
    """The `triggers` command group with its class source and clock injected."""
    app = typer.Typer(
        help="触发式监管 / trigger-based supervision of digital-economy firms (无事不扰): "
             "`--as-of DATE` runs the triggers; subcommands evaluate, cases, close, undisturbed.",
        invoke_without_command=True, add_completion=False, pretty_exceptions_enable=False,
    )

    def settings_for(ctx: typer.Context, home: Path | None) -> Settings:
        group_home = (ctx.obj or {}).get("home") if isinstance(ctx.obj, dict) else None
        return load_settings(home or group_home)

    def run(settings: Settings, as_of: str | None, without_classes: bool,
            show: int | None = None) -> None:
        with user_errors():
            report = run_triggers(settings, as_of,
                                  class_provider=None if without_classes else class_provider,
                                  now=clock())
        typer.echo(format_run(report, show))

    @app.callback(invoke_without_command=True)
    def main(
        ctx: typer.Context,
        as_of: AsOfOption = None,
        home: HomeOption = None,
        without_classes: WithoutClassesOption = False,
        show: ShowOption = None,
    ) -> None:
        """运行触发规则并列出今日案件 / run the triggers for a date and show today's cases."""
        ctx.obj = {"home": home}
        if ctx.invoked_subcommand is None:
            run(load_settings(home), as_of, without_classes, show)

    @app.command("run")
    def run_command(
        ctx: typer.Context,
        as_of: AsOfOption = None,
        home: HomeOption = None,
        without_classes: WithoutClassesOption = False,
        show: ShowOption = None,
    ) -> None:
        """运行触发规则 (同不带子命令) / run the triggers (same as no subcommand)."""
        run(settings_for(ctx, home), as_of, without_classes, show)

    @app.command()
    def cases(
        ctx: typer.Context,
        open_only: Annotated[bool, typer.Option("--open", help="只列在办案件 / open cases only")]
        = False,
        evidence: Annotated[bool, typer.Option("--evidence", help="显示证据 / show evidence")]
        = False,
        home: HomeOption = None,
    ) -> None:
        """列出案件台账 / list the stored trigger cases."""
        with user_errors():
            settings = settings_for(ctx, home)
            book = case_store.load_case_book(settings)
            reasons = case_store.closure_reasons(settings)
            policy = _stored_policy(settings)
        if open_only:
            book = book.loc[book["status"] == "open"]
        total, still_open = len(book), int((book["status"] == "open").sum())
        typer.echo(f"案件 / cases: {total:,}  (办理中 / open {still_open:,})")
        if book.empty:
            typer.echo("  (无 / none)")
            return
        names = _snapshot_names(settings, book["uscc"].astype(str).tolist())
        for case in _records(book.sort_values(["opened_on", "case_id"])):
            if evidence and policy is not None:
                typer.echo("")
                typer.echo("\n".join(format_case(case, policy, names,
                                                 reason=reasons.get(str(case["case_id"])))))
                continue
            reason = reasons.get(str(case["case_id"]))
            line = (f"{case['case_id']}  {_label(CASE_STATUSES, case['status'])}  "
                    f"{_day(case['opened_on'])}→{_day(case['updated_on'])}  "
                    f"{_label(ACTIONS, case['action'])}  {_label(SEVERITIES, case['severity'])}  "
                    f"分类 / class {case['risk_class'] or '-'}  "
                    f"{','.join(case['rules_fired'] or [])}  {names.get(str(case['uscc']), '')}")
            if reason:
                line += f"  结案原因 / reason: {reason}"
            typer.echo(line)

    @app.command()
    def close(
        ctx: typer.Context,
        case_id: Annotated[str, typer.Argument(help="案件编号 / case id, e.g. DT-<uscc>-<date>")],
        reason: Annotated[str, typer.Option("--reason", help="结案原因 / why the case is closed")],
        on: Annotated[str | None, typer.Option(
            "--on", help="结案日期 / closing date (default: the last run's as-of date)")] = None,
        home: HomeOption = None,
    ) -> None:
        """办结案件 / close a case (its rules' cool-down starts on the closing date)."""
        with user_errors():
            settings = settings_for(ctx, home)
            closed = case_store.close_case(settings, case_id, reason, closed_on=on, now=clock())
        typer.echo(f"已办结 / closed: {case_id}  ({_day(closed['closed_on'])})  "
                   f"原因 / reason: {reason.strip()}")

    @app.command()
    def undisturbed(
        ctx: typer.Context,
        as_of: AsOfOption = None,
        home: HomeOption = None,
        show: Annotated[bool, typer.Option("--list", help="逐户列出 / list every firm")] = False,
    ) -> None:
        """写出"无事不扰"标记 / write the undisturbed flags for campaign planning."""
        with user_errors():
            settings = settings_for(ctx, home)
            report = undisturbed_flags_for(settings, as_of)
        flags, day, path, latest = report
        typer.echo(f"无事不扰 / undisturbed — 基准日 / as of {day:%Y-%m-%d}: "
                   f"{int(flags.sum()):,} / {len(flags):,} 带标签企业 / tagged firms "
                   f"(有在办案件 / with an open case: {int((~flags).sum()):,})")
        if latest is None or latest < day:
            last = "无 / none" if latest is None else f"{latest:%Y-%m-%d}"
            typer.echo(f"注意 / note: 触发规则最近运行于 / the triggers were last run for {last}; "
                       f"运行 / run `riskmatrix triggers --as-of {day:%Y-%m-%d}` first for "
                       "up-to-date cases")
        typer.echo(f"已写入 / written: {path}")
        if show:
            for uscc, flag in flags.items():
                typer.echo(f"  {uscc}  {'是 / yes' if flag else '否 / no'}")

    @app.command()
    def evaluate(
        enterprises: Annotated[int, typer.Option(help="企业数 / number of enterprises")] = 20_000,
        years: Annotated[int, typer.Option(help="模拟年数 / simulated years")] = 4,
        seed: Annotated[int, typer.Option(help="随机种子 / random seed")] = 7,
        weeks: Annotated[int, typer.Option(
            help="评估周数: 每周一个基准日, 截至模拟末日 / weekly as-of dates up to the "
                 "district's end date")] = 52,
        case_days: Annotated[int, typer.Option(
            help="案件处理天数 (此后结案) / a case is closed this many days after its last "
                 "update")] = 30,
        catch_days: Annotated[int, typer.Option(
            help="及时立案窗口 (天) / days within which a serious problem must reach a case")
        ] = 30,
        rounds_per_year: Annotated[float, typer.Option(
            help="常规抽查每年轮数 / class-driven sampling rounds a year (baseline)")] = 1.0,
        target_lift: Annotated[float, typer.Option(
            help="目标: 命中率倍数 / target: hit rate over a random check")] = 3.0,
        target_share: Annotated[float, typer.Option(
            help="目标: 严重问题及时立案占比 / target: share of serious problems reached")] = 0.5,
        policy_path: Annotated[Path | None, typer.Option(
            "--policy", help="策略文件 / policy file (default: $RISKMATRIX_POLICY or packaged)")
        ] = None,
    ) -> None:
        """在模拟辖区上评估触发规则 / evaluate the trigger policy on a simulated district."""
        with user_errors():
            text = evaluate_on_district(
                enterprises=enterprises, years=years, seed=seed, weeks=weeks,
                case_days=case_days, catch_days=catch_days, rounds_per_year=rounds_per_year,
                target_lift=target_lift, target_share=target_share,
                policy_path=policy_path or load_settings().policy_path,
                progress=typer.echo,
            )
        typer.echo(text)

    return app


def _stored_policy(settings: Settings) -> DigitalPolicy | None:
    """The digital policy for labels (None when the policy has no digital section)."""
    from supervision.policy import load_policy

    return load_policy(settings.policy_path).digital


def _snapshot_names(settings: Settings, uscc: Sequence[str]) -> dict[str, str]:
    """Firm names from the current snapshot (none when no snapshot was ingested yet)."""
    from features.snapshot import SnapshotError, current_snapshot, load_snapshot

    try:
        snapshot = load_snapshot(current_snapshot(settings.snapshots))
    except (SnapshotError, FileNotFoundError):
        return {}
    return _names(snapshot, uscc)


def undisturbed_flags_for(
    settings: Settings, as_of: object | None
) -> tuple[pd.Series, pd.Timestamp, Path, pd.Timestamp | None]:
    """Flags at as_of from the current snapshot's tags and the stored book; writes the file.

    Returns (flags, as_of, path written, as-of date of the last trigger run or None).
    """
    from supervision.tagging import tag_enterprises
    from supervision.triggers import undisturbed_flags

    context = _trigger_context(settings, None if as_of is None else case_store.as_date(as_of))
    day = pd.Timestamp(context.as_of).normalize()
    digital = _digital_policy(context)
    enterprises = read_table_columns(context.snapshot_dir, "enterprises",
                                     TRIGGER_ENTERPRISE_COLUMNS)
    tags = tag_enterprises(enterprises, read_table_columns(context.snapshot_dir, "digital_tags"),
                           digital, day)
    flags = undisturbed_flags(tags, case_store.load_case_book(settings), day)
    path = case_store.write_undisturbed(settings, flags, day)
    latest = case_store.last_run(settings)
    return flags, day, path, None if latest is None else latest.as_of


def evaluate_on_district(
    *,
    enterprises: int,
    years: int,
    seed: int,
    weeks: int,
    case_days: int,
    catch_days: int,
    rounds_per_year: float,
    target_lift: float,
    target_share: float,
    policy_path: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> str:
    """Simulate a district in memory, replay the trigger policy weekly, format the figures."""
    import time

    from simulation.district import DistrictConfig, simulate_district
    from supervision.policy import load_policy
    from supervision.trigger_evaluation import EvaluationSettings, evaluate_trigger_policy

    if enterprises < 100:
        raise CaseStoreError("--enterprises 至少为 100 / --enterprises must be at least 100")
    if weeks < 1 or case_days < 1 or catch_days < 1 or rounds_per_year <= 0:
        raise CaseStoreError("--weeks、--case-days、--catch-days、--rounds-per-year 须为正数 / "
                             "--weeks, --case-days, --catch-days, --rounds-per-year must be "
                             "positive")
    say = progress or (lambda _: None)
    policy = load_policy(policy_path)
    digital = policy.digital
    if digital is None:
        raise CaseStoreError(f"策略文件 {policy.source} 缺少 digital 段 / the policy file has no "
                             "`digital:` section")
    ratios, floor = routine_ratios(policy, rounds_per_year)
    started = time.perf_counter()
    say(f"  .. 模拟辖区 / simulating a district ({enterprises:,} 企业 / enterprises, "
        f"{years} 年 / years, seed {seed})")
    try:
        config = DistrictConfig(enterprises=enterprises, years=years, seed=seed)
        config.validate()
    except ValueError as error:
        raise CaseStoreError(str(error)) from None
    district = simulate_district(config)
    end = pd.Timestamp(config.end_date)
    dates = [end - pd.Timedelta(weeks=w) for w in range(weeks - 1, -1, -1)]
    say(f"  .. 逐周回放 / replaying {len(dates)} weekly as-of dates "
        f"({dates[0]:%Y-%m-%d} – {dates[-1]:%Y-%m-%d})")
    settings = EvaluationSettings(case_duration_days=case_days, catch_days=catch_days,
                                  routine_ratio_by_class=ratios, floor_ratio=floor)
    result = evaluate_trigger_policy(district.tables, district.truth, digital, dates,
                                     classes_by_date=true_classes_by_date(district.truth, dates),
                                     settings=settings)
    ratio_text = " ".join(f"{c} {_pct(r)}" for c, r in ratios.items())
    header = [
        f"触发式监管评估 / trigger-policy evaluation — 模拟辖区 / simulated district: "
        f"{enterprises:,} 企业 / enterprises, {years} 年 / years, seed {seed}",
        f"基准日 / as-of dates: {len(dates)} (每周 / weekly, {dates[0]:%Y-%m-%d} – "
        f"{dates[-1]:%Y-%m-%d});  案件{case_days}天后办结 / cases close {case_days} days after "
        f"their last update;  策略 / policy {policy.version}",
        f"常规抽查基线 / routine baseline: 每年 / a year {ratio_text} (比例方案 / ratio set "
        f"{policy.sampling.default_ratio_set if policy.sampling else '-'}, "
        f"{rounds_per_year:g} 轮 / rounds), 无事不扰保底 / floor {_pct(floor)}",
        "分类 / classes: 模拟真值按月, 仅用于常规抽查基线; 分类下降规则未评估 / simulated true "
        "class by month, for the routine baseline only; the class-drop rule is not evaluated",
        f"用时 / took {time.perf_counter() - started:.0f} s",
    ]
    return format_evaluation(result["metrics"], result["by_rule"], header, digital,
                             target_lift=target_lift, target_share=target_share,
                             catch_days=catch_days)


triggers_app = build_triggers_app()

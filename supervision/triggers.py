"""Trigger engine (触发式监管): open or update one case per firm when a policy rule fires.

Tagged digital-economy firms are left alone ("无事不扰") until something in the records calls for
attention: a complaint surge, a monitoring-model hit, a referred case lead, a new list entry or
penalty, a fall to a worse credit-risk class, a public-opinion alert. The engine is a pure
function of the snapshot, the as-of date, the tags, the classes and the existing case book, so
the same inputs always give the same cases (deterministic case ids, sorted output).

Semantics (all figures come from `DigitalPolicy`):

- Point in time: only records with known_date < as_of count; a record is "new" when it became
  known within the rule's lookback; cases in the book opened on or after as_of are ignored and
  a case closed on or after as_of is still open at as_of.
- Evidence is used once: an event id already cited by any case of the firm never fires again
  (a complaint surge fires again only when its window holds a complaint not cited yet), and a
  class drop with the same key (previous->current[@classified_on]) fires once.
- One case per firm: all firings of a firm go into its open case (updated, never duplicated)
  or into one new case whose id is `DT-<uscc>-<YYYYMMDD of as_of>`.
- Cool-down: with no open case, a firing of rule R is suppressed while a case of the firm that
  cited R closed less than R's cooldown_days ago, unless the firing's severity is strictly
  higher than the highest severity R recorded in those recently closed cases.
- Tolerance period (包容期): see `TolerancePolicy`; a tolerated case gets the mapped (lenient)
  action, is escalated when a correction is overdue, and loses tolerance on any new firing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features.contract import ENTERPRISE_EVENT_TYPES, SEVERITIES
from supervision.tagging import existing_firms, tags_by_firm
from supervision.trigger_policy import (
    ACTION_RANK,
    ACTIONS,
    SEVERITY_RANK,
    ClassDropRule,
    ComplaintSurgeRule,
    DigitalPolicy,
    NewEventRule,
)

CASE_COLUMNS: tuple[str, ...] = (
    "case_id",
    "uscc",
    "opened_on",
    "updated_on",
    "status",
    "closed_on",
    "rules_fired",
    "evidence",
    "action",
    "severity",
    "tolerated",
    "pending_corrections",
    "correct_by",
    "risk_class",
    "previous_class",
    "probability",
    "reasons",
    "tags",
)
_REQUIRED_CASE_COLUMNS: tuple[str, ...] = (
    "case_id",
    "uscc",
    "opened_on",
    "updated_on",
    "status",
    "closed_on",
    "rules_fired",
    "evidence",
    "action",
    "severity",
)
_DATE_CASE_COLUMNS: tuple[str, ...] = ("opened_on", "updated_on", "closed_on", "correct_by")
FIRING_COLUMNS: tuple[str, ...] = (
    "uscc",
    "rule",
    "kind",
    "severity",
    "action",
    "applied_action",
    "outcome",
    "case_id",
    "key",
    "event_ids",
    "zh",
    "en",
)
CASE_STATUSES: dict[str, str] = {"open": "办理中 / open", "closed": "已办结 / closed"}
OUTCOMES: dict[str, str] = {
    "opened": "新立案件 / case opened",
    "updated": "并入在办案件 / open case updated",
    "suppressed_cooldown": "冷静期内不重复立案 / suppressed by cool-down",
}
TOLERANCE_RULE = "tolerance"


class TriggerInputError(ValueError):
    """An input frame to the trigger engine lacks what the engine needs (message bilingual)."""


def member(values: pd.Series, allowed: Iterable[Any]) -> pd.Series:
    """Boolean `values.isin(allowed)`, missing → False.

    Arrow-backed string columns build one scalar per allowed value in `isin`; comparing as
    Python objects is several times faster when `allowed` is large (ids, firms).
    """
    pool = allowed if isinstance(allowed, pd.Index | pd.Series) else list(allowed)
    return values.astype(object).isin(pool).astype(bool)


def _zh(label: str) -> str:
    return label.split(" / ")[0]


def _en(label: str) -> str:
    return label.split(" / ")[-1]


def _iso(value: Any) -> str | None:
    return None if pd.isna(value) else pd.Timestamp(value).strftime("%Y-%m-%d")


def _max_severity(values: Iterable[Any]) -> str | None:
    known = [v for v in values if isinstance(v, str) and v in SEVERITY_RANK]
    return max(known, key=SEVERITY_RANK.__getitem__) if known else None


def _strongest_action(values: Iterable[str]) -> str:
    return max(values, key=ACTION_RANK.__getitem__)


@dataclass(frozen=True)
class Firing:
    """One rule firing for one firm: what was observed against which threshold, and why."""

    uscc: str
    rule: str
    kind: str
    severity: str
    action: str
    key: str
    event_ids: tuple[str, ...]
    event_types: tuple[str, ...]
    observed: dict[str, Any]
    threshold: dict[str, Any]
    zh: str
    en: str

    def evidence(self, as_of: pd.Timestamp, applied_action: str) -> dict[str, Any]:
        """The JSON-friendly evidence item a case stores for this firing."""
        return {
            "rule": self.rule,
            "kind": self.kind,
            "severity": self.severity,
            "action": self.action,
            "applied_action": applied_action,
            "key": self.key,
            "event_ids": list(self.event_ids),
            "event_types": list(self.event_types),
            "observed": dict(self.observed),
            "threshold": dict(self.threshold),
            "zh": self.zh,
            "en": self.en,
            "recorded_on": _iso(as_of),
        }


@dataclass(frozen=True)
class TriggerResult:
    """What one evaluation did: the cases it opened or updated and every rule firing."""

    as_of: pd.Timestamp
    cases: pd.DataFrame
    firings: pd.DataFrame
    opened: tuple[str, ...] = field(default_factory=tuple)
    updated: tuple[str, ...] = field(default_factory=tuple)


# --- inputs ------------------------------------------------------------------------------


_DATE_DTYPE = np.dtype("datetime64[ns]")
_STRING_CASE_COLUMNS: tuple[str, ...] = ("case_id", "uscc", "status", "action", "severity")


_EMPTY_CASE_BOOK: pd.DataFrame | None = None


def empty_case_book() -> pd.DataFrame:
    """A case book with no cases and the case columns typed."""
    global _EMPTY_CASE_BOOK
    if _EMPTY_CASE_BOOK is None:
        _EMPTY_CASE_BOOK = _typed_cases(
            pd.DataFrame({c: pd.Series([], dtype=object) for c in CASE_COLUMNS})
        )
    return _EMPTY_CASE_BOOK.copy()


def _already_typed(cases: pd.DataFrame) -> bool:
    index = cases.index
    if not isinstance(index, pd.RangeIndex) or index.start != 0 or index.step != 1:
        return False
    if list(cases.columns) != list(CASE_COLUMNS):
        return False
    dtypes = cases.dtypes
    return (
        all(dtypes[c] == _DATE_DTYPE for c in _DATE_CASE_COLUMNS)
        and all(isinstance(dtypes[c], pd.StringDtype) for c in _STRING_CASE_COLUMNS)
        and dtypes["tolerated"] == np.dtype(bool)
        and dtypes["probability"] == np.dtype("float64")
    )


def _typed_cases(cases: pd.DataFrame) -> pd.DataFrame:
    """Case columns in order with their dtypes (cheap when they already have them)."""
    if _already_typed(cases):
        return cases
    out = cases.loc[:, [c for c in cases.columns if c in CASE_COLUMNS]].copy()
    for column in CASE_COLUMNS:
        if column not in out.columns:
            out[column] = None
    for column in _DATE_CASE_COLUMNS:
        if out[column].dtype != _DATE_DTYPE:
            out[column] = pd.to_datetime(out[column]).astype(_DATE_DTYPE)
    for column in _STRING_CASE_COLUMNS:
        if not isinstance(out[column].dtype, pd.StringDtype):
            out[column] = out[column].astype("string")
    if out["tolerated"].dtype != np.dtype(bool):
        out["tolerated"] = out["tolerated"].fillna(False).astype(bool)
    if out["probability"].dtype != np.dtype("float64"):
        out["probability"] = pd.to_numeric(out["probability"], errors="coerce").astype("float64")
    return out.loc[:, list(CASE_COLUMNS)].reset_index(drop=True)


def _case_book_at(open_cases: pd.DataFrame | None, as_of: pd.Timestamp) -> pd.DataFrame:
    """The book as it stood at as_of: cases opened before it; later closings undone."""
    if open_cases is None:
        return empty_case_book()
    missing = [c for c in _REQUIRED_CASE_COLUMNS if c not in open_cases.columns]
    if missing:
        raise TriggerInputError(
            f"案件台账缺少列 {missing} / case book lacks columns {missing}"
        )
    book = _typed_cases(open_cases)
    unknown = sorted(set(book["status"].dropna().astype(str)) - set(CASE_STATUSES))
    if unknown or book["status"].isna().any():
        raise TriggerInputError(
            f"案件状态须为 open 或 closed, 实际有 {unknown or ['<空>']} / "
            f"case status must be open or closed, found {unknown or ['<missing>']}"
        )
    book = book.loc[(book["opened_on"] < as_of).fillna(False)].copy()
    closed_later = (book["closed_on"] >= as_of).fillna(False)
    book.loc[closed_later, "status"] = "open"
    book.loc[closed_later, "closed_on"] = pd.NaT
    return book.reset_index(drop=True)


def _classes_frame(classes: pd.DataFrame | None) -> pd.DataFrame | None:
    """Normalise the enterprise model's class frame (`class` accepted for `risk_class`)."""
    if classes is None:
        return None
    frame = classes.rename(columns={"class": "risk_class"})
    if "uscc" not in frame.columns or "risk_class" not in frame.columns:
        raise TriggerInputError(
            "分类结果须有 uscc 和 risk_class (或 class) 列 / "
            "classes need columns uscc and risk_class (or class)"
        )
    for optional in ("previous_class", "probability", "reasons", "classified_on"):
        if optional not in frame.columns:
            frame = frame.assign(**{optional: None})
    frame = frame.drop_duplicates("uscc", keep="last")
    return frame.set_index(frame["uscc"].astype("string"))


def _used_evidence(book: pd.DataFrame) -> tuple[set[str], set[tuple[str, str, str]]]:
    """Event ids and (uscc, rule, key) already cited by any case in the book."""
    event_ids: set[str] = set()
    keys: set[tuple[str, str, str]] = set()
    for uscc, items in zip(book["uscc"], book["evidence"], strict=True):
        for item in items if isinstance(items, list) else []:
            event_ids.update(str(e) for e in item.get("event_ids", []))
            keys.add((str(uscc), str(item.get("rule")), str(item.get("key"))))
    return event_ids, keys


# --- rule evaluation ---------------------------------------------------------------------


@dataclass
class _FirmRecords:
    event_ids: list[str] = field(default_factory=list)
    event_types: list[str] = field(default_factory=list)
    severities: list[Any] = field(default_factory=list)


def _records_by_firm(records: pd.DataFrame) -> dict[str, _FirmRecords]:
    """Records grouped per firm (ordered by event id), without a DataFrame per group."""
    grouped: dict[str, _FirmRecords] = {}
    if records.empty:
        return grouped
    columns = (records[c].tolist() for c in ("uscc", "event_id", "event_type", "severity"))
    for uscc, event_id, event_type, severity in sorted(
        zip(*columns, strict=True), key=lambda row: (str(row[0]), str(row[1]))
    ):
        entry = grouped.setdefault(str(uscc), _FirmRecords())
        entry.event_ids.append(str(event_id))
        entry.event_types.append(str(event_type))
        entry.severities.append(None if pd.isna(severity) else str(severity))
    return grouped


def _event_labels(event_types: Iterable[str]) -> tuple[str, str]:
    labels = [ENTERPRISE_EVENT_TYPES[t] for t in event_types]
    return "、".join(_zh(x) for x in labels), ", ".join(_en(x) for x in labels)


def _complaint_surge(
    rule: ComplaintSurgeRule,
    known: pd.DataFrame,
    firms: pd.DataFrame,
    as_of: pd.Timestamp,
    used_ids: set[str],
) -> list[Firing]:
    complaints = known.loc[known["event_type"] == "complaint"]
    window_start = as_of - pd.Timedelta(days=rule.window_days)
    in_window = complaints.loc[complaints["known_date"] >= window_start]
    counts = in_window.groupby("uscc").size()
    counts = counts[counts >= rule.min_count]
    if counts.empty:
        return []
    baseline_start = window_start - pd.Timedelta(days=rule.baseline_days)
    before = complaints.loc[
        (complaints["known_date"] >= baseline_start)
        & (complaints["known_date"] < window_start)
        & member(complaints["uscc"], counts.index.astype(object))
    ]
    baseline_counts = before.groupby("uscc").size().reindex(counts.index, fill_value=0)
    established = firms.drop_duplicates("uscc").set_index("uscc")["established_date"]
    history_days = (
        (window_start - established.reindex(counts.index)).dt.days.clip(0, rule.baseline_days)
    ).fillna(rule.baseline_days)
    baseline = (baseline_counts * rule.window_days / history_days.where(history_days > 0)).fillna(
        0.0
    )
    firing_firms = counts.index[counts >= rule.baseline_multiplier * baseline]
    firing_rows = member(in_window["uscc"], firing_firms.astype(object))
    by_firm = _records_by_firm(in_window.loc[firing_rows])
    baseline_by_firm = {str(k): float(v) for k, v in baseline.items()}
    firings = []
    for uscc, records in by_firm.items():
        ids = tuple(records.event_ids)
        if used_ids.issuperset(ids):
            continue
        n, base = len(ids), round(baseline_by_firm[uscc], 2)
        required = max(float(rule.min_count), rule.baseline_multiplier * base)
        firings.append(
            Firing(
                uscc=uscc,
                rule=rule.name,
                kind=rule.kind,
                severity=_max_severity([rule.severity, *records.severities]) or rule.severity,
                action=rule.action,
                key=",".join(ids),
                event_ids=ids,
                event_types=("complaint",) * n,
                observed={"count": n, "baseline": base},
                threshold={
                    "window_days": rule.window_days,
                    "min_count": rule.min_count,
                    "baseline_days": rule.baseline_days,
                    "baseline_multiplier": rule.baseline_multiplier,
                    "required": round(required, 2),
                },
                zh=f"{rule.window_days}天内投诉{n}次 (阈值{rule.min_count}次, 基线{base:g}次)",
                en=f"{n} complaints in {rule.window_days} days "
                f"(threshold {rule.min_count}, baseline {base:g})",
            )
        )
    return firings


def _new_events(
    rule: NewEventRule,
    known: pd.DataFrame,
    as_of: pd.Timestamp,
    default_lookback: int,
    used_ids: set[str],
) -> list[Firing]:
    lookback = rule.lookback_days or default_lookback
    recent = known.loc[
        known["event_type"].isin(rule.event_types)
        & (known["known_date"] >= as_of - pd.Timedelta(days=lookback))
    ]
    if rule.severities is not None:
        recent = recent.loc[recent["severity"].isin(rule.severities).fillna(False)]
    if used_ids:
        recent = recent.loc[~member(recent["event_id"], used_ids)]
    corroboration = _corroborating_records(rule, known, as_of)
    firings = []
    for uscc, records in _records_by_firm(recent).items():
        if len(records.event_ids) < rule.min_count:
            continue
        supporting: list[str] = []
        if corroboration is not None:
            own = set(records.event_ids)
            supporting = [e for e in corroboration.get(uscc, []) if e not in own]
            if not supporting:
                continue
        ids = tuple(records.event_ids)
        types = tuple(records.event_types)
        record_severity = _max_severity(records.severities)
        severity = _max_severity([rule.severity, record_severity]) or rule.severity
        types_zh, types_en = _event_labels(sorted(set(types)))
        label = SEVERITIES.get(record_severity or "", "")
        extra_zh = f", 最高严重程度{_zh(label)}" if label else ""
        extra_en = f", highest severity {_en(label)}" if label else ""
        firings.append(
            Firing(
                uscc=uscc,
                rule=rule.name,
                kind=rule.kind,
                severity=severity,
                action=rule.action,
                key=",".join(ids),
                event_ids=ids,
                event_types=types,
                observed=_new_event_observed(len(ids), record_severity, supporting),
                threshold=_new_event_threshold(rule, lookback),
                zh=f"近{lookback}天新增{types_zh}{len(ids)}条{extra_zh} ({', '.join(ids)})"
                + (f", 佐证记录 {', '.join(supporting)}" if supporting else ""),
                en=f"{len(ids)} new {types_en} record(s) in the last {lookback} days"
                f"{extra_en} ({', '.join(ids)})"
                + (f", corroborated by {', '.join(supporting)}" if supporting else ""),
            )
        )
    return firings


def _corroborating_records(
    rule: NewEventRule, known: pd.DataFrame, as_of: pd.Timestamp
) -> dict[str, list[str]] | None:
    """Per firm, ids of records that corroborate the rule (None: the rule needs none)."""
    if rule.corroborated_by is None or rule.corroboration_days is None:
        return None
    since = as_of - pd.Timedelta(days=rule.corroboration_days)
    rows = known.loc[known["event_type"].isin(rule.corroborated_by)
                     & (known["known_date"] >= since)]
    return {uscc: records.event_ids for uscc, records in _records_by_firm(rows).items()}


def _new_event_observed(count: int, severity: str | None, supporting: list[str]
                        ) -> dict[str, Any]:
    observed: dict[str, Any] = {"count": count, "max_severity": severity}
    if supporting:
        observed["corroborating_records"] = supporting
    return observed


def _new_event_threshold(rule: NewEventRule, lookback: int) -> dict[str, Any]:
    threshold: dict[str, Any] = {
        "lookback_days": lookback,
        "event_types": list(rule.event_types),
        "severities": list(rule.severities) if rule.severities else None,
    }
    if rule.min_count > 1:
        threshold["min_count"] = rule.min_count
    if rule.corroborated_by is not None:
        threshold["corroborated_by"] = list(rule.corroborated_by)
        threshold["corroboration_days"] = rule.corroboration_days
    return threshold


def _class_drops(
    rule: ClassDropRule,
    classes: pd.DataFrame | None,
    scope: pd.Index,
    used_keys: set[tuple[str, str, str]],
) -> list[Firing]:
    if classes is None:
        return []
    rank = {c: i for i, c in enumerate(rule.class_order)}
    frame = classes.loc[classes.index.isin(scope)]
    firings = []
    for uscc, row in frame.iterrows():
        current, previous = row["risk_class"], row["previous_class"]
        if not isinstance(current, str) or not isinstance(previous, str):
            continue
        if current not in rule.to_classes or previous not in rank:
            continue
        if rank[current] <= rank[previous]:
            continue
        key = f"{previous}->{current}"
        if not pd.isna(row["classified_on"]):
            key += f"@{_iso(row['classified_on'])}"
        if (str(uscc), rule.name, key) in used_keys:
            continue
        severity = _max_severity([rule.severity, rule.severity_by_class.get(current)])
        firings.append(
            Firing(
                uscc=str(uscc),
                rule=rule.name,
                kind=rule.kind,
                severity=severity or rule.severity,
                action=rule.action,
                key=key,
                event_ids=(),
                event_types=(),
                observed={"previous_class": previous, "current_class": current},
                threshold={"to_classes": list(rule.to_classes)},
                zh=f"信用风险分类由{previous}类降为{current}类",
                en=f"risk class fell from {previous} to {current}",
            )
        )
    return firings


def rule_firings(
    known: pd.DataFrame,
    firms: pd.DataFrame,
    classes: pd.DataFrame | None,
    policy: DigitalPolicy,
    as_of: pd.Timestamp,
    book: pd.DataFrame,
) -> list[Firing]:
    """Every rule firing at as_of for the firms in `firms`, skipping evidence already cited."""
    used_ids, used_keys = _used_evidence(book)
    scope = pd.Index(firms["uscc"].astype("string"))
    firings: list[Firing] = []
    for rule in policy.triggers:
        if isinstance(rule, ComplaintSurgeRule):
            firings += _complaint_surge(rule, known, firms, as_of, used_ids)
        elif isinstance(rule, NewEventRule):
            firings += _new_events(rule, known, as_of, policy.lookback_days, used_ids)
        else:
            firings += _class_drops(rule, classes, scope, used_keys)
    return firings


# --- cool-down and tolerance -------------------------------------------------------------


def _cooled_down(
    firing: Firing, closed: pd.DataFrame, policy: DigitalPolicy, as_of: pd.Timestamp
) -> bool:
    """True when a recent closed case already dealt with this rule at this severity or higher."""
    rule = policy.trigger(firing.rule)
    days = rule.cooldown_days if rule.cooldown_days is not None else policy.cooldown_days
    recent = closed.loc[(closed["closed_on"] >= as_of - pd.Timedelta(days=days)).fillna(False)]
    recorded = [
        item.get("severity")
        for items in recent["evidence"]
        for item in (items if isinstance(items, list) else [])
        if item.get("rule") == firing.rule
    ]
    highest = _max_severity(recorded)
    return highest is not None and SEVERITY_RANK[firing.severity] <= SEVERITY_RANK[highest]


@dataclass(frozen=True)
class _Corrections:
    """Where the records needing a correction stand at as_of."""

    pending: list[str]
    overdue: list[str]
    corrected: list[str]
    deadline: pd.Timestamp | None


def _correction_state(
    event_ids: Iterable[str], known: pd.DataFrame, policy: DigitalPolicy, as_of: pd.Timestamp
) -> _Corrections:
    """Records of a `corrected_by` type: corrected, still within the deadline, or overdue.

    A record not visible in `known` (e.g. the firm left the watched scope) stays pending.
    """
    rules = policy.tolerance.corrected_by
    wanted = [str(e) for e in event_ids]
    records = known.loc[member(known["event_id"], wanted)]
    seen = {str(e) for e in records["event_id"]}
    pending = [e for e in wanted if e not in seen]
    overdue: list[str] = []
    corrected: list[str] = []
    deadline: pd.Timestamp | None = None
    for _, record in records.iterrows():
        correcting_type = rules.get(str(record["event_type"]))
        if correcting_type is None:
            continue
        event_id = str(record["event_id"])
        corrections = known.loc[
            (known["uscc"] == record["uscc"])
            & (known["event_type"] == correcting_type)
            & (known["occurred_date"] >= record["occurred_date"])
        ]
        due = record["known_date"] + pd.Timedelta(days=policy.tolerance.correction_days)
        if not corrections.empty:
            corrected.append(event_id)
        elif due < as_of:
            overdue.append(event_id)
        else:
            pending.append(event_id)
            deadline = due if deadline is None else min(deadline, due)
    return _Corrections(sorted(pending), sorted(overdue), sorted(corrected), deadline)


def _tolerance_eligible_firms(
    firms: pd.DataFrame, tags: pd.DataFrame, policy: DigitalPolicy, as_of: pd.Timestamp
) -> set[str]:
    tolerance = policy.tolerance
    if not tolerance.enabled:
        return set()
    young = firms.loc[
        (as_of - firms["established_date"]).dt.days < tolerance.period_days, "uscc"
    ]
    new_industry = tags.loc[tags["tag"].isin(tolerance.tags), "uscc"]
    return set(young.astype(str)) & set(new_industry.astype(str))


def _tolerated(
    firm_firings: list[Firing],
    firm_known: pd.DataFrame,
    firm_has_case: bool,
    policy: DigitalPolicy,
    as_of: pd.Timestamp,
) -> tuple[bool, list[str], pd.Timestamp | None]:
    """Whether this firm's firings are a first, minor, promptly corrected lapse (see policy)."""
    tolerance = policy.tolerance
    if firm_has_case:
        return False, [], None
    if any(f.severity not in tolerance.tolerated_severities for f in firm_firings):
        return False, [], None
    cited = {e for f in firm_firings for e in f.event_ids}
    earlier_problems = firm_known.loc[
        firm_known["event_type"].isin(tolerance.prior_problem_event_types)
        & ~member(firm_known["event_id"], cited)
    ]
    if not earlier_problems.empty:
        return False, [], None
    state = _correction_state(cited, firm_known, policy, as_of)
    if state.overdue:
        return False, [], None
    pending = [e for e in state.pending if e in cited]
    return True, pending, state.deadline


# --- cases -------------------------------------------------------------------------------


def case_id_for(uscc: str, opened_on: pd.Timestamp) -> str:
    """Deterministic case id: one firm has at most one case opened per day."""
    return f"DT-{uscc}-{opened_on:%Y%m%d}"


def _case_action(evidence: list[dict[str, Any]], tolerated: bool) -> str:
    key = "applied_action" if tolerated else "action"
    return _strongest_action(str(item[key]) for item in evidence if item.get(key) in ACTION_RANK)


def _case_severity(evidence: list[dict[str, Any]]) -> str | None:
    return _max_severity(item.get("severity") for item in evidence)


def _class_fields(classes: pd.DataFrame | None, uscc: str) -> dict[str, Any]:
    if classes is None or uscc not in classes.index:
        return {}
    row = classes.loc[uscc]
    return {
        "risk_class": row["risk_class"],
        "previous_class": row["previous_class"],
        "probability": row["probability"],
        "reasons": row["reasons"],
    }


def _tolerance_evidence(
    kind: str, event_ids: list[str], policy: DigitalPolicy, as_of: pd.Timestamp
) -> dict[str, Any]:
    days = policy.tolerance.correction_days
    listed = ", ".join(event_ids)
    if kind == "tolerance_lapsed":
        zh = f"包容期内未在{days}天内改正 ({listed}), 恢复规则原处置方式"
        en = (
            f"not corrected within {days} days in the tolerance period ({listed}); "
            "the rules' own actions apply"
        )
    else:
        zh = f"包容期内已按期改正 ({listed})"
        en = f"corrected in time in the tolerance period ({listed})"
    return {
        "rule": TOLERANCE_RULE,
        "kind": kind,
        "severity": None,
        "action": None,
        "applied_action": None,
        "key": f"{kind}:{listed}",
        "event_ids": [],
        "event_types": [],
        "observed": {"records": event_ids},
        "threshold": {"correction_days": days},
        "zh": zh,
        "en": en,
        "recorded_on": _iso(as_of),
    }


def _review_tolerated_case(
    case: dict[str, Any], firm_known: pd.DataFrame, policy: DigitalPolicy, as_of: pd.Timestamp
) -> dict[str, Any] | None:
    """Clear corrected records or escalate an overdue tolerated case; None when unchanged."""
    pending = [str(e) for e in (case.get("pending_corrections") or [])]
    if not case.get("tolerated") or not pending:
        return None
    state = _correction_state(pending, firm_known, policy, as_of)
    still_pending, overdue, corrected, deadline = (
        state.pending, state.overdue, state.corrected, state.deadline
    )
    if not corrected and not overdue:
        return None
    updated = dict(case)
    evidence = list(case["evidence"])
    if corrected:
        evidence.append(_tolerance_evidence("tolerance_corrected", corrected, policy, as_of))
    if overdue:
        evidence.append(_tolerance_evidence("tolerance_lapsed", overdue, policy, as_of))
        updated["tolerated"] = False
    updated["evidence"] = evidence
    updated["pending_corrections"] = [] if overdue else still_pending
    updated["correct_by"] = pd.NaT if overdue or deadline is None else deadline
    updated["action"] = _case_action(evidence, bool(updated["tolerated"]))
    updated["updated_on"] = as_of
    return updated


def _new_case(uscc: str, as_of: pd.Timestamp) -> dict[str, Any]:
    return {
        "case_id": case_id_for(uscc, as_of),
        "uscc": uscc,
        "opened_on": as_of,
        "updated_on": as_of,
        "status": "open",
        "closed_on": pd.NaT,
        "rules_fired": [],
        "evidence": [],
        "action": None,
        "severity": None,
        "tolerated": False,
        "pending_corrections": [],
        "correct_by": pd.NaT,
    }


def _applied_action(firing: Firing, tolerated: bool, policy: DigitalPolicy) -> str:
    if not tolerated:
        return firing.action
    return policy.tolerance.action_map.get(firing.action, firing.action)


def _apply_firings(
    case: dict[str, Any],
    firings: list[Firing],
    tolerated: bool,
    pending: list[str],
    deadline: pd.Timestamp | None,
    as_of: pd.Timestamp,
    policy: DigitalPolicy,
) -> dict[str, Any]:
    evidence = list(case["evidence"])
    evidence += [f.evidence(as_of, _applied_action(f, tolerated, policy)) for f in firings]
    rules = list(case["rules_fired"])
    rules += [f.rule for f in firings if f.rule not in rules]
    updated = dict(case)
    updated.update(
        evidence=evidence,
        rules_fired=rules,
        tolerated=tolerated,
        pending_corrections=pending if tolerated else [],
        correct_by=deadline if tolerated and deadline is not None else pd.NaT,
        action=_case_action(evidence, tolerated),
        severity=_case_severity(evidence),
        updated_on=as_of,
    )
    return updated


def _firings_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in FIRING_COLUMNS})
    frame = pd.DataFrame(rows, columns=list(FIRING_COLUMNS))
    return frame.sort_values(["uscc", "rule"]).reset_index(drop=True)


def _as_timestamp(as_of: object) -> pd.Timestamp:
    stamp = pd.Timestamp(as_of)  # type: ignore[arg-type]
    if stamp is pd.NaT:
        raise TriggerInputError("as_of 不能为空 / as_of must be a date")
    return stamp.normalize()


def _require_tables(snapshot: Mapping[str, pd.DataFrame]) -> None:
    for name in ("enterprises", "enterprise_events"):
        if name not in snapshot:
            raise TriggerInputError(f"快照缺少表 {name} / snapshot lacks table {name}")


_RECORD_COLUMNS: tuple[str, ...] = (
    "event_id", "uscc", "event_type", "occurred_date", "known_date", "severity"
)


def _known_records(
    events: pd.DataFrame, firms: pd.DataFrame, as_of: pd.Timestamp
) -> pd.DataFrame:
    """Watched firms' records known before as_of, text as Python objects (faster to filter)."""
    known = events.loc[(events["known_date"] < as_of).fillna(False), list(_RECORD_COLUMNS)]
    known = known.loc[member(known["uscc"], firms["uscc"].astype(object))]
    return known.astype(
        {c: object for c in ("event_id", "uscc", "event_type", "severity")}
    ).reset_index(drop=True)


def evaluate_triggers(
    snapshot: Mapping[str, pd.DataFrame],
    as_of: object,
    *,
    tags: pd.DataFrame,
    classes: pd.DataFrame | None,
    open_cases: pd.DataFrame | None,
    policy: DigitalPolicy,
) -> TriggerResult:
    """Evaluate every trigger rule at `as_of` and open or update one case per firm.

    `snapshot` holds the typed contract tables (enterprises, enterprise_events); `tags` is
    `tag_enterprises(...)` at the same as_of; `classes` is the enterprise model's frame
    (uscc, risk_class or class, previous_class, probability, reasons, optional classified_on;
    None skips class-drop rules); `open_cases` is the case book (open and closed cases; the
    closed ones drive the cool-down; None when there are none).
    """
    _require_tables(snapshot)
    as_of_ts = _as_timestamp(as_of)
    firms = existing_firms(snapshot["enterprises"], as_of_ts)
    if not policy.apply_to_all_firms:
        firms = firms.loc[member(firms["uscc"], tags["uscc"].astype(object))]
    known = _known_records(snapshot["enterprise_events"], firms, as_of_ts)
    book = _case_book_at(open_cases, as_of_ts)
    class_frame = _classes_frame(classes)
    firings = rule_firings(known, firms, class_frame, policy, as_of_ts, book)

    is_open = (book["status"] == "open").fillna(False).astype(bool)
    # Should a firm have several open cases (a hand-edited book), the latest one is updated.
    open_by_firm: dict[str, dict[str, Any]] = {
        str(record["uscc"]): {str(k): v for k, v in record.items()}
        for record in book.loc[is_open].sort_values("opened_on").to_dict("records")
    }
    firms_with_case = set(book["uscc"].astype(str))
    closed = book.loc[~is_open]
    eligible = _tolerance_eligible_firms(firms, tags, policy, as_of_ts)

    by_firm: dict[str, list[Firing]] = {}
    for firing in firings:
        by_firm.setdefault(firing.uscc, []).append(firing)
    of_interest = known.loc[member(known["uscc"], set(by_firm) | set(open_by_firm))]
    known_by_firm = {str(u): rows for u, rows in of_interest.groupby("uscc")}

    changed: dict[str, dict[str, Any]] = {}
    firing_rows: list[dict[str, Any]] = []
    opened: list[str] = []
    updated: list[str] = []
    empty_known = known.iloc[0:0]
    for uscc in sorted(set(by_firm) | set(open_by_firm)):
        firm_known = known_by_firm.get(uscc, empty_known)
        case: dict[str, Any] | None = open_by_firm.get(uscc)
        if case is not None:
            reviewed = _review_tolerated_case(case, firm_known, policy, as_of_ts)
            if reviewed is not None:
                case = reviewed
                changed[uscc] = case
        active = by_firm.get(uscc, [])
        suppressed: list[Firing] = []
        if case is None:
            firm_closed = closed.loc[closed["uscc"] == uscc]
            suppressed = [f for f in active if _cooled_down(f, firm_closed, policy, as_of_ts)]
            active = [f for f in active if f not in suppressed]
        if active:
            tolerated, pending, deadline = (
                _tolerated(active, firm_known, uscc in firms_with_case, policy, as_of_ts)
                if uscc in eligible
                else (False, [], None)
            )
            is_new = case is None
            base = _new_case(uscc, as_of_ts) if case is None else case
            case = _apply_firings(base, active, tolerated, pending, deadline, as_of_ts, policy)
            changed[uscc] = case
            (opened if is_new else updated).append(str(case["case_id"]))
            outcome = "opened" if is_new else "updated"
            firing_rows += [
                _firing_row(f, _applied_action(f, tolerated, policy), outcome, case["case_id"])
                for f in active
            ]
        elif uscc in changed:
            updated.append(str(changed[uscc]["case_id"]))
        firing_rows += [
            _firing_row(f, None, "suppressed_cooldown", None) for f in suppressed
        ]

    firm_tags = tags_by_firm(tags.loc[member(tags["uscc"], changed)])
    records = []
    for uscc, case in sorted(changed.items()):
        record = dict(case)
        record.update(_class_fields(class_frame, uscc))
        record["tags"] = list(firm_tags.get(uscc, []))
        records.append(record)
    cases = _typed_cases(pd.DataFrame(records)) if records else empty_case_book()
    return TriggerResult(
        as_of=as_of_ts,
        cases=cases.sort_values("case_id").reset_index(drop=True),
        firings=_firings_frame(firing_rows),
        opened=tuple(sorted(opened)),
        updated=tuple(sorted(updated)),
    )


def _firing_row(
    firing: Firing, applied_action: str | None, outcome: str, case_id: Any
) -> dict[str, Any]:
    return {
        "uscc": firing.uscc,
        "rule": firing.rule,
        "kind": firing.kind,
        "severity": firing.severity,
        "action": firing.action,
        "applied_action": applied_action,
        "outcome": outcome,
        "case_id": None if case_id is None else str(case_id),
        "key": firing.key,
        "event_ids": list(firing.event_ids),
        "zh": firing.zh,
        "en": firing.en,
    }


# --- case book helpers -------------------------------------------------------------------


def merge_case_book(book: pd.DataFrame | None, result: TriggerResult) -> pd.DataFrame:
    """The case book after `result`: its cases replace same-id rows, new ones are appended."""
    base = empty_case_book() if book is None else _typed_cases(book)
    kept = base.loc[~member(base["case_id"], result.cases["case_id"].astype(object))]
    frames = [f for f in (kept, result.cases) if not f.empty]
    merged = pd.concat(frames, ignore_index=True) if frames else empty_case_book()
    return _typed_cases(merged).sort_values(["opened_on", "case_id"]).reset_index(drop=True)


def close_cases(book: pd.DataFrame, case_ids: Iterable[str], closed_on: object) -> pd.DataFrame:
    """Mark open cases closed on `closed_on` (what an inspector's finished visit records)."""
    out = _typed_cases(book).copy()
    when = _as_timestamp(closed_on)
    target = member(out["case_id"], case_ids) & (out["status"] == "open").fillna(False)
    out.loc[target, "status"] = "closed"
    out.loc[target, "closed_on"] = when
    return out


def open_cases_at(book: pd.DataFrame | None, as_of: object) -> pd.DataFrame:
    """Cases open at as_of: opened on or before it and not closed before it."""
    if book is None or book.empty:
        return empty_case_book()
    when = _as_timestamp(as_of)
    cases = _typed_cases(book)
    opened = (cases["opened_on"] <= when).fillna(False)
    open_now = ((cases["status"] == "open").fillna(False) & cases["closed_on"].isna()) | (
        cases["closed_on"] > when
    ).fillna(False)
    return cases.loc[opened & open_now].reset_index(drop=True)


def undisturbed_flags(
    tags: pd.DataFrame, open_cases: pd.DataFrame | None, as_of: object
) -> pd.Series:
    """"无事不扰": True for a tagged firm with no open trigger case at as_of.

    Indexed by uscc (every tagged firm), named `digital_undisturbed`. Such firms are left out of
    routine targeted checks and get only the random floor in campaigns; untagged firms are not
    in the index (a campaign treats them as not undisturbed).
    """
    firms = pd.Index(sorted(tags["uscc"].dropna().astype(str).unique()), dtype="string",
                     name="uscc")
    with_case = set(open_cases_at(open_cases, as_of)["uscc"].astype(str))
    flags = pd.Series(
        [u not in with_case for u in firms], index=firms, dtype=bool, name="digital_undisturbed"
    )
    return flags


def describe_case(case: Mapping[str, Any]) -> tuple[str, str]:
    """One-line bilingual summary of a case for lists and notifications."""
    action = ACTIONS.get(str(case.get("action")), str(case.get("action")))
    items = case.get("evidence") or []
    zh = "; ".join(str(i["zh"]) for i in items)
    en = "; ".join(str(i["en"]) for i in items)
    return f"{_zh(action)}: {zh}", f"{_en(action)}: {en}"

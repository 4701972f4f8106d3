"""How well a trigger policy serves tagged digital-economy firms, replayed against ground truth.

Replays `evaluate_triggers` over a series of as-of dates on a (simulated) district, closing each
case a fixed number of days after its last update, and compares the cases with the truth:

- trigger precision: share of opened cases whose firm had a true problem on the opening day,
  over all cases and over the cases opened for an on-site inspection (the ones that compare
  with a random check: advice, talks and correction notices check nothing), and per rule;
- random-check hit rate: share of tagged firms with a true problem on an evaluation day, i.e.
  what a random check of a tagged firm finds; the lift is precision over that rate;
- recall: share of tagged firms' true problems during which the firm's case was opened or
  updated; median days from a problem's start to that case;
- serious problems reaching a case within `catch_days` of first showing in the records (the
  first watched record known on or after the problem's start);
- inspections avoided: class-driven routine sampling of tagged firms against trigger
  inspections plus the random floor for undisturbed firms. The replay has no feedback (a
  trigger inspection does not end the simulated problem), so it also counts the inspection
  cases opened again on a problem an earlier inspection already hit, and the figure without
  them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd

from features.contract import TABLES
from features.snapshot import coerce_types
from supervision.tagging import tag_history, tags_at
from supervision.trigger_policy import ComplaintSurgeRule, DigitalPolicy, NewEventRule
from supervision.triggers import (
    empty_case_book,
    evaluate_triggers,
    member,
    merge_case_book,
    undisturbed_flags,
)


@dataclass(frozen=True)
class EvaluationSettings:
    """Assumptions of the replay (not district policy): how cases end and what counts as fast.

    `case_duration_days`: a case is closed this many days after its last update (the visit,
    advice or talk is done). `catch_days`: the "reached a case in time" window.
    `routine_ratio_by_class` / `routine_ratio`: annual sampling ratio a tagged firm would get
    without "无事不扰" (by class when classes are given, else one ratio); `floor_ratio`: the
    annual random floor undisturbed firms still get. Without a routine ratio the inspection
    figures are NaN.
    """

    case_duration_days: int = 30
    catch_days: int = 30
    routine_ratio_by_class: Mapping[str, float] | None = None
    routine_ratio: float | None = None
    floor_ratio: float = 0.0


def typed_tables(tables: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Contract tables cast to snapshot typing (the simulator writes strings and ISO dates)."""
    out: dict[str, pd.DataFrame] = {}
    for name, frame in tables.items():
        if name not in TABLES:
            continue
        table = TABLES[name]
        cleaned = frame.copy()
        for column in table.columns:
            if column.kind in ("int", "float", "bool", "date") and column.name in cleaned:
                values = cleaned[column.name].astype(object)
                blank = values.map(lambda v: isinstance(v, str) and not v.strip())
                cleaned[column.name] = values.where(~blank.astype(bool), None)
        out[name] = coerce_types(table, cleaned)
    return out


def _problems(truth: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    if "digital_problems" not in truth:
        raise ValueError(
            "真值缺少 digital_problems 表 / truth lacks the digital_problems table"
        )
    problems = truth["digital_problems"].copy()
    missing = [c for c in ("uscc", "problem_start", "problem_end", "serious")
               if c not in problems.columns]
    if missing:
        raise ValueError(f"digital_problems 缺少列 {missing} / digital_problems lacks {missing}")
    problems["uscc"] = problems["uscc"].astype(str)
    for column in ("problem_start", "problem_end"):
        problems[column] = pd.to_datetime(problems[column]).astype("datetime64[ns]")
    problems["serious"] = problems["serious"].astype(str).str.lower().isin(["true", "1"])
    return problems.reset_index(drop=True)


def _active(problems: pd.DataFrame, firms: pd.Series, day: pd.Timestamp) -> np.ndarray:
    """Per firm in `firms`: has a true problem active on `day`."""
    live = problems.loc[
        (problems["problem_start"] <= day)
        & (problems["problem_end"].isna() | (problems["problem_end"] >= day))
    ]
    return member(firms.astype(str), set(live["uscc"])).to_numpy()


def _had_problem_on(touches: pd.DataFrame, problems: pd.DataFrame) -> np.ndarray:
    """Per touch row: its firm had a true problem active on its date."""
    joined = touches[["uscc", "date"]].reset_index(names="touch").merge(
        problems[["uscc", "problem_start", "problem_end"]], on="uscc", how="inner"
    )
    live = (joined["problem_start"] <= joined["date"]) & (
        joined["problem_end"].isna() | (joined["problem_end"] >= joined["date"])
    )
    hit = set(joined.loc[live, "touch"])
    return np.array([i in hit for i in range(len(touches))], dtype=bool)


def _repeat_inspections(opened: pd.DataFrame, problems: pd.DataFrame) -> int:
    """Inspection cases opened on a true problem an earlier inspection case already hit.

    The replay does not feed back into the truth: a trigger inspection does not end the
    simulated problem, so a persistent problem fires again after the cool-down and is
    inspected again. A real inspection orders the correction; these repeats are what the
    replay over-counts.
    """
    visits = opened.loc[opened["action"].astype(str) == "inspection", ["uscc", "date"]]
    joined = visits.reset_index(names="touch").merge(
        problems.reset_index(names="episode")[["uscc", "episode", "problem_start",
                                               "problem_end"]], on="uscc", how="inner")
    live = (joined["problem_start"] <= joined["date"]) & (
        joined["problem_end"].isna() | (joined["problem_end"] >= joined["date"]))
    hits = joined.loc[live].sort_values(["date", "touch"]).drop_duplicates("touch")
    return int(hits.duplicated(["uscc", "episode"]).sum())


def _first_touch_between(
    problems: pd.DataFrame,
    touches: pd.DataFrame,
    since: pd.Series,
    until: pd.Series,
    *,
    inclusive_start: bool,
) -> pd.Series:
    """Per problem row: the first case touch of its firm in [since, until] (or (since, until])."""
    bounds = pd.DataFrame(
        {"problem": problems.index, "uscc": problems["uscc"].to_numpy(),
         "since": since.to_numpy(), "until": until.to_numpy()}
    )
    joined = bounds.merge(touches[["uscc", "date"]], on="uscc", how="inner")
    after = joined["date"] >= joined["since"] if inclusive_start else (
        joined["date"] > joined["since"]
    )
    inside = joined.loc[after & (joined["date"] <= joined["until"])]
    first = inside.groupby("problem")["date"].min()
    return first.reindex(problems.index).astype("datetime64[ns]")


def _precision_by_rule(book: pd.DataFrame, problems: pd.DataFrame) -> pd.DataFrame:
    """Per trigger rule: firings recorded in cases and the share on a day with a true problem."""
    rows = [
        {"uscc": str(uscc), "date": pd.Timestamp(item["recorded_on"]), "rule": item["rule"],
         "severity": item["severity"], "action": item["applied_action"]}
        for uscc, items in zip(book["uscc"], book["evidence"], strict=True)
        for item in (items if isinstance(items, list) else [])
        if item.get("action") is not None
    ]
    if not rows:
        return pd.DataFrame(columns=["rule", "firings", "precision"])
    firings = pd.DataFrame(rows)
    firings["hit"] = _had_problem_on(firings, problems)
    summary = firings.groupby("rule").agg(firings=("hit", "size"), precision=("hit", "mean"))
    return summary.reset_index().sort_values("rule").reset_index(drop=True)


def _watched_event_types(policy: DigitalPolicy) -> set[str]:
    types: set[str] = set()
    for rule in policy.triggers:
        if isinstance(rule, ComplaintSurgeRule):
            types.add("complaint")
        elif isinstance(rule, NewEventRule):
            types.update(rule.event_types)
    return types


def _first_records(
    problems: pd.DataFrame, events: pd.DataFrame, watched: set[str]
) -> pd.Series:
    """Per problem: known_date of the first watched record on or after its start (NaT if none)."""
    signals = events.loc[events["event_type"].isin(list(watched)), ["uscc", "known_date"]]
    signals = signals.assign(uscc=signals["uscc"].astype(str))
    joined = problems.reset_index(names="problem").merge(signals, on="uscc", how="inner")
    inside = (joined["known_date"] >= joined["problem_start"]) & (
        joined["problem_end"].isna() | (joined["known_date"] <= joined["problem_end"])
    )
    first = joined.loc[inside].groupby("problem")["known_date"].min()
    return first.reindex(problems.index)


def _routine_ratio(classes: pd.DataFrame | None, firms: pd.Series,
                   settings: EvaluationSettings) -> float:
    """Expected annual routine inspections of `firms` without trigger-based supervision."""
    if settings.routine_ratio_by_class is not None and classes is not None:
        frame = classes.rename(columns={"class": "risk_class"})
        by_firm = frame.set_index(frame["uscc"].astype(str))["risk_class"]
        ratios = by_firm.reindex(firms.astype(str)).map(settings.routine_ratio_by_class)
        fallback = settings.routine_ratio if settings.routine_ratio is not None else np.nan
        return float(ratios.astype(float).fillna(fallback).sum())
    if settings.routine_ratio is not None:
        return float(settings.routine_ratio * len(firms))
    return float("nan")


def _close_finished(book: pd.DataFrame, as_of: pd.Timestamp, days: int) -> pd.DataFrame:
    """Close open cases whose last update is `days` or more before as_of (on that day)."""
    if book.empty:
        return book
    finish = book["updated_on"] + pd.Timedelta(days=days)
    due = ((book["status"] == "open") & (finish <= as_of)).fillna(False)
    out = book.copy()
    out.loc[due, "status"] = "closed"
    out.loc[due, "closed_on"] = finish[due]
    return out


def _restricted_to(
    snapshot: Mapping[str, pd.DataFrame], firms: set[str]
) -> dict[str, pd.DataFrame]:
    return {
        name: frame.loc[member(frame["uscc"], firms)].reset_index(drop=True)
        if "uscc" in frame.columns
        else frame
        for name, frame in snapshot.items()
    }


def replay_triggers(
    snapshot: Mapping[str, pd.DataFrame],
    policy: DigitalPolicy,
    as_of_dates: Sequence[Any],
    classes_by_date: Mapping[Any, pd.DataFrame] | None,
    settings: EvaluationSettings,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Run the engine date by date: (final case book, case touches, tagged firms per date)."""
    book = empty_case_book()
    touches: list[dict[str, Any]] = []
    tagged_rows: list[pd.DataFrame] = []
    classes_lookup = {pd.Timestamp(k).normalize(): v for k, v in (classes_by_date or {}).items()}
    history = tag_history(snapshot["enterprises"], snapshot.get("digital_tags"), policy)
    if not policy.apply_to_all_firms:
        # Only ever-tagged firms can fire: hand the engine their rows only (same result, faster).
        snapshot = _restricted_to(snapshot, set(history["uscc"].astype(str)))
    for as_of in sorted(pd.Timestamp(d).normalize() for d in as_of_dates):
        book = _close_finished(book, as_of, settings.case_duration_days)
        tags = tags_at(history, as_of)
        classes = classes_lookup.get(as_of)
        result = evaluate_triggers(
            snapshot, as_of, tags=tags, classes=classes, open_cases=book, policy=policy
        )
        book = merge_case_book(book, result)
        for case in result.cases.itertuples():
            touches.append(
                {
                    "case_id": case.case_id,
                    "uscc": str(case.uscc),
                    "date": as_of,
                    "opened": case.case_id in result.opened,
                    "action": case.action,
                }
            )
        flags = undisturbed_flags(tags, book, as_of)
        tagged_rows.append(
            pd.DataFrame(
                {
                    "as_of": as_of,
                    "uscc": flags.index.astype(str),
                    "undisturbed": flags.to_numpy(),
                }
            ).assign(routine_total=_routine_ratio(classes, pd.Series(flags.index), settings))
        )
    touch_frame = pd.DataFrame(
        touches, columns=["case_id", "uscc", "date", "opened", "action"]
    )
    tagged = pd.concat(tagged_rows, ignore_index=True) if tagged_rows else pd.DataFrame(
        columns=["as_of", "uscc", "undisturbed", "routine_total"]
    )
    return book, touch_frame, tagged


def _interval_years(dates: list[pd.Timestamp]) -> list[float]:
    """Years each evaluation date stands for (gap to the next date; the last repeats)."""
    if len(dates) < 2:
        return [1.0 / 365.0] * len(dates)
    gaps = [(b - a).days / 365.0 for a, b in pairwise(dates)]
    return [*gaps, gaps[-1]]


def evaluate_trigger_policy(
    tables: Mapping[str, pd.DataFrame],
    truth: Mapping[str, pd.DataFrame],
    policy: DigitalPolicy,
    as_of_dates: Sequence[Any],
    classes_by_date: Mapping[Any, pd.DataFrame] | None = None,
    settings: EvaluationSettings | None = None,
) -> dict[str, Any]:
    """Replay the trigger policy over `as_of_dates` and score it against the truth.

    `tables` are contract tables (typed or as exported text); `truth` needs
    `digital_problems` (uscc, problem_start, problem_end, serious); `classes_by_date` maps an
    as-of date to the enterprise model's class frame for that date (class-drop rules and
    routine ratios by class). Returns {"metrics": {name: number}, "per_date": DataFrame,
    "problems": DataFrame (one row per tagged firm's true problem: case_date, caught,
    days_to_case, first_record, reached_in_time), "by_rule": DataFrame (firings, precision),
    "cases": the final case book}.
    """
    settings = settings or EvaluationSettings()
    snapshot = typed_tables(tables)
    problems = _problems(truth)
    dates = sorted(pd.Timestamp(d).normalize() for d in as_of_dates)
    if not dates:
        raise ValueError("至少需要一个评估日期 / at least one as-of date is needed")
    book, touches, tagged = replay_triggers(snapshot, policy, dates, classes_by_date, settings)
    start, end = dates[0], dates[-1]

    # Base rate: a random check of a tagged firm on an evaluation day.
    per_date_rows = []
    for as_of, years in zip(dates, _interval_years(dates), strict=True):
        firms = tagged.loc[tagged["as_of"] == as_of]
        active = _active(problems, firms["uscc"], as_of)
        opened = touches.loc[(touches["date"] == as_of) & touches["opened"]]
        per_date_rows.append(
            {
                "as_of": as_of,
                "tagged_firms": len(firms),
                "with_true_problem": int(active.sum()),
                "undisturbed": int(firms["undisturbed"].sum()),
                "cases_opened": len(opened),
                "routine_inspections": float(firms["routine_total"].iloc[0]) * years
                if len(firms) else 0.0,
                "floor_inspections": settings.floor_ratio * float(firms["undisturbed"].sum())
                * years,
            }
        )
    per_date = pd.DataFrame(per_date_rows)

    # Precision of opened cases.
    opened = touches.loc[touches["opened"]].reset_index(drop=True)
    hits = _had_problem_on(opened, problems)
    inspection_hits = hits[(opened["action"].astype(str) == "inspection").to_numpy()]
    repeats = _repeat_inspections(opened, problems)
    by_rule = _precision_by_rule(book, problems)
    tagged_firms = set(tagged["uscc"])
    firm_problems = problems.loc[member(problems["uscc"], tagged_firms)].copy()
    in_span = (firm_problems["problem_start"] <= end) & (
        firm_problems["problem_end"].isna() | (firm_problems["problem_end"] >= start)
    )
    firm_problems = firm_problems.loc[in_span].reset_index(drop=True)

    # Recall and time to case.
    firm_problems["case_date"] = _first_touch_between(
        firm_problems, touches, firm_problems["problem_start"],
        firm_problems["problem_end"].fillna(end), inclusive_start=True,
    )
    firm_problems["caught"] = firm_problems["case_date"].notna()
    firm_problems["days_to_case"] = (
        firm_problems["case_date"] - firm_problems["problem_start"]
    ).dt.days

    # Serious problems: reaching a case within catch_days of first showing in the records.
    events = snapshot["enterprise_events"]
    firm_problems["first_record"] = _first_records(
        firm_problems, events, _watched_event_types(policy)
    ).to_numpy()
    catch = pd.Timedelta(days=settings.catch_days)
    firm_problems["reached_in_time"] = _first_touch_between(
        firm_problems, touches, firm_problems["first_record"],
        firm_problems["first_record"] + catch, inclusive_start=False,
    ).notna()
    measurable = (
        firm_problems["serious"]
        & firm_problems["first_record"].notna()
        & (firm_problems["first_record"] >= start)
        & (firm_problems["first_record"] + catch <= end)
    )

    tagged_days = int(per_date["tagged_firms"].sum())
    base_rate = float(per_date["with_true_problem"].sum() / tagged_days) if tagged_days else np.nan
    precision = float(hits.mean()) if len(hits) else np.nan
    inspection_precision = float(inspection_hits.mean()) if len(inspection_hits) else np.nan
    inspection_cases = int(
        book.loc[book["action"] == "inspection", "case_id"].nunique()
    ) if not book.empty else 0
    routine = float(per_date["routine_inspections"].sum(min_count=1))
    floor = float(per_date["floor_inspections"].sum())
    serious = firm_problems.loc[firm_problems["serious"]]
    metrics: dict[str, Any] = {
        "as_of_dates": len(dates),
        "tagged_firms_mean": float(per_date["tagged_firms"].mean()),
        "cases_opened": len(opened),
        "inspection_cases": inspection_cases,
        "trigger_precision": precision,
        "random_check_hit_rate": base_rate,
        "precision_lift": precision / base_rate if base_rate else np.nan,
        "inspection_cases_opened": len(inspection_hits),
        "inspection_case_precision": inspection_precision,
        "inspection_precision_lift": inspection_precision / base_rate if base_rate else np.nan,
        "true_problems": len(firm_problems),
        "true_problems_caught": int(firm_problems["caught"].sum()),
        "recall": float(firm_problems["caught"].mean()) if len(firm_problems) else np.nan,
        "median_days_problem_start_to_case": float(firm_problems["days_to_case"].median())
        if firm_problems["caught"].any() else np.nan,
        "serious_problems": len(serious),
        "serious_problems_with_record": int(serious["first_record"].notna().sum()),
        "serious_measurable": int(measurable.sum()),
        "serious_reached_within_catch_days": float(
            firm_problems.loc[measurable, "reached_in_time"].mean()
        ) if measurable.any() else np.nan,
        "routine_inspections": routine,
        "trigger_regime_inspections": inspection_cases + floor,
        "inspections_avoided": routine - inspection_cases - floor,
        "repeat_inspections_of_a_problem": repeats,
        "inspections_avoided_without_repeats": routine - (inspection_cases - repeats) - floor,
        "problems_found_routine": routine * base_rate,
        "problems_found_by_trigger_inspections": float(inspection_hits.sum()),
        # visits to firms with no true problem: what "无事不扰" is meant to spare
        "routine_inspections_without_problem": routine * (1.0 - base_rate),
        "trigger_regime_inspections_without_problem": inspection_cases
        * (1.0 - inspection_precision) + floor * (1.0 - base_rate),
        "undisturbed_share_mean": float(
            per_date["undisturbed"].sum() / tagged_days
        ) if tagged_days else np.nan,
    }
    return {
        "metrics": metrics,
        "per_date": per_date,
        "problems": firm_problems,
        "by_rule": by_rule,
        "cases": book,
    }

"""Results of visits, their publication ("一公开") and its deadline.

"谁检查、谁录入、谁公开": outcomes are recorded per visit and check item; the public export
leaves out everything internal (credit class, model probability, reasons, strata, inclusion
probabilities — the class is "不公开") and masks personal data (legal representatives' and
inspectors' names, certificate numbers). Results are due for publication within a number of
working days of the check (20 by default), counted on the policy's holiday calendar.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable

import pandas as pd

from features.contract import DEPARTMENTS, INSPECTION_OUTCOMES, LIST_SEPARATOR
from supervision.campaigns import CampaignError, as_list
from supervision.sampling_policy import PublicationPolicy

# Columns that must never appear in anything published (classes are internal data).
INTERNAL_COLUMNS = frozenset({
    "class", "true_class", "stratum", "probability", "risk", "score", "top_reasons", "reasons",
    "inclusion_probability", "weight", "key", "legal_rep_id", "legal_rep_name",
    "certificate_no", "digital_undisturbed",
})
PUBLIC_COLUMNS = ["campaign_id", "department", "department_label", "uscc", "enterprise_name",
                  "legal_representative", "check_item", "outcome", "outcome_label",
                  "violation_code", "inspection_date", "inspectors"]
# Outcome severity follows the contract's order: no problem < … < case opened.
OUTCOME_RANK = {code: rank for rank, code in enumerate(INSPECTION_OUTCOMES)}


class ResultsError(CampaignError):
    """Recorded results break a rule; the message names row, column and rule for each."""


def is_working_day(day: dt.date, calendar: PublicationPolicy) -> bool:
    if day in calendar.adjusted_working_days:
        return True
    return day.weekday() < 5 and day not in calendar.holidays


def add_working_days(start: dt.date, days: int, calendar: PublicationPolicy) -> dt.date:
    """The `days`-th working day after `start` (start itself is not counted)."""
    holidays, adjusted = set(calendar.holidays), set(calendar.adjusted_working_days)
    day, left = start, days
    while left > 0:
        day += dt.timedelta(days=1)
        if day in adjusted or (day.weekday() < 5 and day not in holidays):
            left -= 1
    return day


def working_days_between(start: dt.date, end: dt.date, calendar: PublicationPolicy) -> int:
    """Working days after `start` up to and including `end` (negative when end < start)."""
    if end < start:
        return -working_days_between(end, start, calendar)
    return sum(is_working_day(start + dt.timedelta(days=i), calendar)
               for i in range(1, (end - start).days + 1))


def record_results(items: pd.DataFrame, outcomes: pd.DataFrame) -> pd.DataFrame:
    """Visit items (from `merge_joint_visits(...).items`) joined with their recorded outcomes.

    `outcomes`: visit_id, check_item, outcome, inspection_date, and optionally violation_code
    and published_date. Items without an outcome stay in the result with outcome missing
    (pending). Every broken rule is reported at once, naming row, column and rule.
    """
    required = ["visit_id", "check_item", "outcome", "inspection_date"]
    missing = [c for c in required if c not in outcomes.columns]
    if missing:
        raise ResultsError(f"检查结果缺少列 / results lack columns {missing}")
    problems: list[str] = []
    known = set(zip(items["visit_id"].astype(str), items["check_item"].astype(str), strict=True))
    seen: set[tuple[str, str]] = set()
    dates = pd.to_datetime(outcomes["inspection_date"], errors="coerce")
    for row, (visit, item, outcome, date) in enumerate(zip(
            outcomes["visit_id"].astype(str), outcomes["check_item"].astype(str),
            outcomes["outcome"].astype(str), dates, strict=True), start=1):
        where = f"第{row}行 / row {row}"
        if (visit, item) not in known:
            problems.append(f"{where}, visit_id/check_item: 检查中无此事项 / no such item "
                            f"{item!r} in visit {visit!r} (rule item_in_visit)")
        if (visit, item) in seen:
            problems.append(f"{where}, check_item: 重复录入 / recorded twice (rule unique_result)")
        seen.add((visit, item))
        if outcome not in INSPECTION_OUTCOMES:
            problems.append(f"{where}, outcome: 结果代码无效 / unknown outcome {outcome!r}; "
                            f"allowed {list(INSPECTION_OUTCOMES)} (rule outcome_allowed)")
        if pd.isna(date):
            problems.append(f"{where}, inspection_date: 日期无效 / not a date (rule date)")
    if problems:
        raise ResultsError("检查结果有误 / results rejected:\n" + "\n".join(problems))
    recorded = outcomes.assign(
        visit_id=outcomes["visit_id"].astype(str), check_item=outcomes["check_item"].astype(str),
        inspection_date=dates.dt.date,
    )
    for optional in ("violation_code", "published_date"):
        if optional not in recorded.columns:
            recorded[optional] = pd.NA
    keep = ["visit_id", "check_item", "outcome", "inspection_date", "violation_code",
            "published_date"]
    return items.merge(recorded[keep], on=["visit_id", "check_item"], how="left")


def publication_deadlines(
    results: pd.DataFrame, calendar: PublicationPolicy, today: dt.date
) -> pd.DataFrame:
    """Per visit and campaign: check date, publication deadline, working days left, status."""
    done = results.loc[results["outcome"].notna()]
    grouped = done.groupby(["campaign_id", "visit_id"], sort=True)
    frame = pd.DataFrame({
        "department": grouped["department"].first(),
        "uscc": grouped["uscc"].first(),
        "inspection_date": grouped["inspection_date"].max(),
        "published_date": grouped["published_date"].max(),
    }).reset_index()
    frame["deadline"] = [add_working_days(d, calendar.deadline_working_days, calendar)
                         for d in frame["inspection_date"]]
    frame["working_days_left"] = [working_days_between(today, d, calendar)
                                  for d in frame["deadline"]]
    published = pd.to_datetime(frame["published_date"], errors="coerce").dt.date
    frame["status"] = [
        ("published_late" if p > d else "published") if pd.notna(p)
        else ("overdue" if today > d else "due")
        for p, d in zip(published, frame["deadline"], strict=True)
    ]
    return frame


def mask_name(name: object) -> str:
    """Personal name → first character + one '*' per remaining character (张三丰 → 张**)."""
    if name is None or (isinstance(name, float) and pd.isna(name)) or name is pd.NA:
        return ""
    text = str(name).strip()
    if len(text) <= 1:
        return "*" * len(text)
    return text[0] + "*" * (len(text) - 1)


def mask_certificate(number: object) -> str:
    """Certificate number → first 4 and last 2 characters kept (44010019001234 → 4401********34)."""
    if number is None or (isinstance(number, float) and pd.isna(number)) or number is pd.NA:
        return ""
    text = str(number).strip()
    if len(text) <= 6:
        return text[:1] + "*" * max(len(text) - 1, 0)
    return text[:4] + "*" * (len(text) - 6) + text[-2:]


def assert_publishable(frame: pd.DataFrame) -> None:
    """Refuse to publish a frame carrying internal columns (classes, probabilities, ids)."""
    leaked = sorted(set(frame.columns) & INTERNAL_COLUMNS)
    if leaked:
        raise ResultsError(f"公开数据含内部字段, 拒绝导出 / refusing to publish internal columns "
                           f"{leaked}")


def _inspector_labels(inspectors: pd.DataFrame) -> dict[str, str]:
    return {
        str(i): f"{mask_name(n)}({mask_certificate(c)})"
        for i, n, c in zip(inspectors["inspector_id"], inspectors["name"],
                           inspectors["certificate_no"], strict=True)
    }


def publishable_results(
    results: pd.DataFrame, enterprises: pd.DataFrame, inspectors: pd.DataFrame
) -> pd.DataFrame:
    """The public export: recorded outcomes with names masked and no internal data."""
    done = results.loc[results["outcome"].notna()].copy()
    firms = enterprises.copy()
    if "uscc" not in firms.columns:
        firms = firms.rename_axis("uscc").reset_index()
    firms = firms.assign(uscc=firms["uscc"].astype(str))[["uscc", "name", "legal_rep_name"]]
    done = done.merge(firms, on="uscc", how="left")
    labels = _inspector_labels(inspectors)
    public = pd.DataFrame({
        "campaign_id": done["campaign_id"].astype(str),
        "department": done["department"].astype(str),
        "department_label": done["department"].map(DEPARTMENTS),
        "uscc": done["uscc"].astype(str),
        "enterprise_name": done["name"],
        "legal_representative": done["legal_rep_name"].map(mask_name),
        "check_item": done["check_item"].astype(str),
        "outcome": done["outcome"].astype(str),
        "outcome_label": done["outcome"].map(INSPECTION_OUTCOMES),
        "violation_code": done["violation_code"],
        "inspection_date": pd.to_datetime(done["inspection_date"]).dt.strftime("%Y-%m-%d"),
        "inspectors": done["inspectors"].map(
            lambda cell: LIST_SEPARATOR.join(labels.get(i, "*") for i in as_list(cell))),
    })
    public = public.sort_values(["campaign_id", "uscc", "check_item"], kind="mergesort")
    assert_publishable(public)
    return public[PUBLIC_COLUMNS].reset_index(drop=True)


def to_csv_text(public: pd.DataFrame) -> str:
    """CSV of a publishable frame (UTF-8 text; write it with a BOM for spreadsheet users)."""
    assert_publishable(public)
    return str(public.to_csv(index=False, lineterminator="\n"))


def to_json_text(public: pd.DataFrame) -> str:
    """JSON records of a publishable frame (missing values as null)."""
    assert_publishable(public)
    records = public.astype(object).where(public.notna(), None).to_dict(orient="records")
    return json.dumps(records, ensure_ascii=False, indent=1, default=str)


def results_as_inspections(results: pd.DataFrame, known_date: dt.date) -> pd.DataFrame:
    """Recorded results as rows of the contract's `inspections` table (one per visit × campaign).

    The outcome is the most severe across the campaign's items; these rows feed the next
    draws (no re-draw this year, no repeat inspector) and the next training set.
    """
    done = results.loc[results["outcome"].notna()].copy()
    done["rank"] = done["outcome"].map(OUTCOME_RANK)
    done = done.sort_values(["campaign_id", "visit_id", "rank"], ascending=[True, True, False],
                            kind="mergesort")
    grouped = done.groupby(["campaign_id", "visit_id"], sort=True)
    rows = pd.DataFrame({
        "uscc": grouped["uscc"].first(),
        "inspection_date": grouped["inspection_date"].max(),
        "known_date": known_date,
        "department": grouped["department"].first(),
        "check_items": grouped["check_item"].agg(lambda s: LIST_SEPARATOR.join(sorted(set(s)))),
        "source": "random_draw",
        "inclusion_probability": grouped["inclusion_probability"].first(),
        "outcome": grouped["outcome"].first(),
        "violation_code": grouped["violation_code"].first(),
        "inspectors": grouped["inspectors"].first(),
    }).reset_index()
    rows["inspection_id"] = rows["campaign_id"] + "-" + rows["visit_id"]
    return rows[["inspection_id", "uscc", "inspection_date", "known_date", "department",
                 "campaign_id", "check_items", "source", "inclusion_probability", "outcome",
                 "violation_code", "inspectors"]]


def outcome_counts(public: pd.DataFrame, by: Iterable[str] = ("department",)) -> pd.DataFrame:
    """Counts of published outcomes (for the summary line of a publication notice)."""
    return public.groupby([*by, "outcome"]).size().rename("count").reset_index()

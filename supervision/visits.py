"""Joint visits ("进一次门、查多项事") and the ranked inspection lists handed to inspector teams.

Every drawn target of every campaign is a task (one firm, one department, its check items,
a planned date and a team). Tasks on the same firm whose planned dates fall within the policy
window of the first task of a visit merge into that visit, which carries all their items and
all their inspectors; a task beyond the window starts a new visit (anchoring on the first task
stops chains of tasks from stretching one visit over months).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

from features.contract import LIST_SEPARATOR
from supervision.campaigns import CampaignError, as_list
from supervision.draw import DrawEvidence

TASK_COLUMNS = ["campaign_id", "department", "uscc", "check_items", "planned_date", "inspectors",
                "class", "stratum", "inclusion_probability"]


@dataclass(frozen=True)
class JointVisits:
    """`visits`: one row per visit; `items`: one row per visit × campaign × check item."""

    visits: pd.DataFrame
    items: pd.DataFrame
    tasks: int

    @property
    def visits_saved(self) -> int:
        return self.tasks - len(self.visits)

    def report(self) -> dict[str, int]:
        joint = int((self.visits["departments"].map(lambda c: len(as_list(c))) > 1).sum())
        return {"tasks": self.tasks, "visits": len(self.visits),
                "visits_saved": self.visits_saved, "joint_visits": joint}

    def summary(self) -> str:
        r = self.report()
        return (f"{r['tasks']}项任务合并为{r['visits']}次检查, 减少{r['visits_saved']}次进门, "
                f"其中{r['joint_visits']}次为多部门联合检查 / {r['tasks']} tasks merged into "
                f"{r['visits']} visits, {r['visits_saved']} visits saved, "
                f"{r['joint_visits']} joint visits across departments")


def tasks_from_draw(
    evidence: DrawEvidence, assignment: pd.DataFrame, planned_date: dt.date | None = None
) -> pd.DataFrame:
    """One task per drawn target with its team (`assignment`: uscc, inspectors)."""
    drawn = evidence.drawn_frame()
    teams = assignment.set_index(assignment["uscc"].astype(str))["inspectors"]
    missing = sorted(set(drawn["uscc"]) - set(teams.index))
    if missing:
        raise CampaignError(
            f"以下抽中对象未分配执法人员 / drawn targets without a team: {missing[:10]}"
        )
    drawn["inspectors"] = drawn["uscc"].map(teams)
    drawn["planned_date"] = planned_date or evidence.spec.period_start
    return drawn[TASK_COLUMNS]


def _joined(values: list[str]) -> str:
    return LIST_SEPARATOR.join(sorted(set(values)))


def merge_joint_visits(tasks: pd.DataFrame, window_days: int) -> JointVisits:
    """Merge tasks on the same firm within `window_days` of a visit's first task."""
    missing = [c for c in ("campaign_id", "department", "uscc", "check_items", "planned_date",
                           "inspectors") if c not in tasks.columns]
    if missing:
        raise CampaignError(f"检查任务缺少列 / tasks lack columns {missing}")
    frame = tasks.copy()
    frame["planned_date"] = pd.to_datetime(frame["planned_date"]).dt.date
    frame = frame.sort_values(["uscc", "planned_date", "campaign_id"], kind="mergesort")
    window = dt.timedelta(days=window_days)
    visit_ids: list[str] = []
    anchor_uscc, anchor_date = None, dt.date.min
    for uscc, date in zip(frame["uscc"].astype(str), frame["planned_date"], strict=True):
        if uscc != anchor_uscc or date > anchor_date + window:
            anchor_uscc, anchor_date = uscc, date
        visit_ids.append(f"V{anchor_date:%Y%m%d}-{uscc}")
    frame["visit_id"] = visit_ids
    items = frame.assign(check_item=frame["check_items"].map(as_list)).explode("check_item")
    keep = ["visit_id", "uscc", "campaign_id", "department", "check_item", "planned_date",
            "inspectors"] + [c for c in ("class", "stratum", "inclusion_probability")
                             if c in frame.columns]
    items = items[keep].reset_index(drop=True)
    grouped = frame.groupby("visit_id", sort=True)
    visits = pd.DataFrame({
        "uscc": grouped["uscc"].first(),
        "visit_date": grouped["planned_date"].min(),
        "departments": grouped["department"].agg(lambda s: _joined(list(s))),
        "campaign_ids": grouped["campaign_id"].agg(lambda s: _joined(list(s))),
        "check_items": grouped["check_items"].agg(
            lambda s: _joined([i for cell in s for i in as_list(cell)])),
        "inspectors": grouped["inspectors"].agg(
            lambda s: _joined([i for cell in s for i in as_list(cell)])),
        "n_tasks": grouped.size(),
    }).rename_axis("visit_id").reset_index()
    return JointVisits(visits=visits, items=items, tasks=len(frame))


def _reasons_text(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return "; ".join(str(v) for v in value)
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    return str(value)


def ranked_inspection_lists(visits: pd.DataFrame, roster: pd.DataFrame) -> pd.DataFrame:
    """Per inspector team, its visits ordered by risk (highest probability first).

    Internal working list: it shows each target's class, probability and top reasons so the
    team knows what to look at first; never publish it.
    """
    info = roster.copy()
    if "uscc" not in info.columns:
        info = info.rename_axis("uscc").reset_index()
    info["uscc"] = info["uscc"].astype(str)
    wanted = [c for c in ("name", "class", "probability", "top_reasons") if c in info.columns]
    merged = visits.merge(info[["uscc", *wanted]], on="uscc", how="left")
    for column in ("name", "class", "probability", "top_reasons"):
        if column not in merged.columns:
            merged[column] = pd.NA
    merged["probability"] = pd.to_numeric(merged["probability"], errors="coerce")
    merged["top_reasons"] = merged["top_reasons"].map(_reasons_text)
    merged["team_id"] = merged["inspectors"].astype(str)
    merged = merged.sort_values(["team_id", "probability", "uscc"],
                                ascending=[True, False, True], na_position="last",
                                kind="mergesort")
    merged["rank"] = merged.groupby("team_id").cumcount() + 1
    return merged[["team_id", "rank", "visit_id", "visit_date", "uscc", "name", "class",
                   "probability", "top_reasons", "departments", "check_items"]].reset_index(
        drop=True)

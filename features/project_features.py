"""Point-in-time features of construction projects for the management-risk model (M axis).

`build_project_features(snapshot, as_of)` gives one row per project under construction on
`as_of` (permit before it, not completed before it), using only what the regulator *knew*
before that day: project events and inspection results count only when their `known_date`
and their own date (occurred / inspected) are both before `as_of`, and enterprise events of
the participants likewise. Adding records known on or after `as_of` can therefore never
change a feature (a test proves it).

Two groups, as the domain model puts it:

* **project** (工程项目): permit attributes, the stage reached (from `stage_change` events),
  pace against plan, whether a dangerous-works phase is under way, and the project's own
  record — inspections, defects and hazards found, accidents, overdue rectifications;
* **participant** (参建单位): the credit-risk points and class of the developer, general
  contractor and supervising engineer (from a participant-credit frame, when given), their
  qualification grades, penalties, and the record of their *other* projects.

The participant credit must mean the same thing in training and at serving. The registered
enterprise champion cannot supply it for past as-of dates (it has seen later labels), so the
callers pass the policy point scorecard computed point in time from the enterprise features
of that very date (`training.project_backtest.participant_credit_at`): leak-free in the
backtest, and identical at serving. Live champion classes are deliberately not used here.

`project_state(snapshot, as_of)` returns the same projects with the raw attributes the
risk-source rules test (`models.risk_source.RULE_INPUTS`), and `last_inspection_dates` the
last visit before `as_of`, which the matrix schedules from.

Known limitation: `projects` is the current record, so without `stage_change` events a
project's stage on a past date is unknown; it is then taken as `preparation` (never today's
stage, which would leak the future into a backtest) and `stage_known` is 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Literal

import numpy as np
import pandas as pd

from features.catalogue import FeatureInfo, IndicatorGroup
from features.contract import (
    PROJECT_STAGES,
    PROJECT_TYPES,
    PROJECT_USES,
    QUALIFICATION_GRADES,
    STRUCTURES,
)
from features.enterprise_features import as_of_timestamp, snapshot_table

RECENT_DAYS = 365  # "recent" window of counts (feature definition, part of the names)
ENTERPRISE_RECORD_DAYS = 1095  # participants' penalties and other-project accidents
STAGE_PROGRESS: dict[str, float] = {
    # share of the works done when a stage starts; pace = elapsed share of plan − this
    "preparation": 0.0,
    "foundation": 0.15,
    "main_structure": 0.35,
    "decoration": 0.75,
    "completed": 1.0,
}
CLASS_RANK: dict[str, int] = {"A": 0, "B": 1, "C": 2, "D": 3, "E": 4}
PARTICIPANT_ROLES_SCORED: tuple[str, ...] = ("developer", "general_contractor", "supervisor")
_ROLE_SHORT = {"developer": "developer", "general_contractor": "contractor",
               "supervisor": "supervisor"}
_ROLE_ZH = {"developer": "建设单位", "general_contractor": "施工总承包单位",
            "supervisor": "监理单位"}
_ROLE_EN = {"developer": "developer", "general_contractor": "general contractor",
            "supervisor": "supervising engineer"}

_UNIT_COUNT = ("次", "times")
_UNIT_ITEMS = ("项", "items")
_UNIT_DAYS = ("天", "days")
_UNIT_FLAG = ("是/否 (1/0)", "yes/no (1/0)")
_UNIT_SHARE = ("", "")  # the label already says share (比例)
_CODES = {
    "project_type": pd.Index(list(PROJECT_TYPES)),
    "use": pd.Index(list(PROJECT_USES)),
    "structure": pd.Index(list(STRUCTURES)),
    "stage": pd.Index(list(PROJECT_STAGES)),
    "qualification_grade": pd.Index(list(QUALIFICATION_GRADES)),
}
STATE_COLUMNS: tuple[str, ...] = (
    "project_id", "name", "street", "project_type", "use", "structure", "floor_area_m2",
    "height_m", "storeys", "excavation_depth_m", "dangerous_works",
    "over_scale_dangerous_works", "crowded_surroundings", "stage", "stage_known",
    "dangerous_works_active", "permit_date", "planned_completion_date",
)


def _info(
    name: str,
    group: IndicatorGroup,
    zh: str,
    en: str,
    direction: Literal[-1, 0, 1] = 0,
    unit: tuple[str, str] = ("", ""),
) -> FeatureInfo:
    return FeatureInfo(name, group, zh, en, direction, True, unit[0], unit[1])


def _participant_entries(role: str) -> list[FeatureInfo]:
    s, zh, en = _ROLE_SHORT[role], _ROLE_ZH[role], _ROLE_EN[role]
    return [
        _info(f"{s}_credit_points", "participant", f"{zh}信用风险记分 (记分卡, 基准日)",
              f"{en}'s credit-risk points (policy scorecard, as of the date)", 1,
              ("分", "points")),
        _info(f"{s}_class_rank", "participant", f"{zh}信用风险分类 (记分卡, A=0 … D=3)",
              f"{en}'s credit-risk class (policy scorecard, A=0 … D=3)", 1),
    ]


def project_feature_catalogue() -> dict[str, FeatureInfo]:
    """The catalogue in output-column order; every entry is a model input."""
    recent, record = RECENT_DAYS, ENTERPRISE_RECORD_DAYS
    entries: list[FeatureInfo] = [
        # project 工程项目: permit attributes and state
        _info("project_type_code", "project", "工程类别 (类别代码)",
              "project type (category code)"),
        _info("use_code", "project", "使用功能 (类别代码)", "intended use (category code)"),
        _info("structure_code", "project", "结构形式 (类别代码)", "structure (category code)"),
        _info("floor_area_m2", "project", "建筑面积", "floor area", 0, ("平方米", "m²")),
        _info("height_m", "project", "建筑高度", "building height", 0, ("米", "m")),
        _info("storeys", "project", "地上层数", "storeys above ground", 0, ("层", "storeys")),
        _info("excavation_depth_m", "project", "基坑开挖深度", "excavation depth", 0, ("米", "m")),
        _info("dangerous_works", "project", "危大工程数量", "dangerous sub-works", 1,
              ("项", "works")),
        _info("over_scale_dangerous_works", "project", "超危大工程数量",
              "over-scale dangerous sub-works", 1, ("项", "works")),
        _info("crowded_surroundings", "project", "周边人员密集", "crowded surroundings", 0,
              _UNIT_FLAG),
        _info("stage_code", "project", "施工阶段 (类别代码)", "construction stage (category code)"),
        _info("stage_known", "project", "施工阶段有记录", "stage known from stage-change records",
              0, _UNIT_FLAG),
        _info("dangerous_works_active", "project", "危大工程正在施工",
              "a dangerous-works phase is under way", 1, _UNIT_FLAG),
        _info("days_since_permit", "project", "距施工许可天数", "days since the permit", 0,
              _UNIT_DAYS),
        _info("plan_elapsed_share", "project", "计划工期已用比例",
              "share of the planned duration elapsed", 0, _UNIT_SHARE),
        _info("behind_plan", "project", "进度落后于计划 (工期比例−阶段进度)",
              "behind plan (elapsed share minus stage progress)", 0, _UNIT_SHARE),
        _info("past_planned_completion", "project", "已超过计划竣工日期",
              "past the planned completion date", 0, _UNIT_FLAG),
        # project 工程项目: record
        _info("inspections_total", "project", "历史监督检查次数", "inspections on record", 0,
              _UNIT_COUNT),
        _info(f"inspections_{recent}d", "project", f"近{recent}天监督检查次数",
              f"inspections in the last {recent} days", 0, _UNIT_COUNT),
        _info("problem_inspections_total", "project", "发现问题的检查次数",
              "inspections that found problems", 1, _UNIT_COUNT),
        _info("problem_inspection_share", "project", "检查发现问题比例",
              "share of inspections that found problems", 1, _UNIT_SHARE),
        _info("defects_found_total", "project", "历史检查发现质量问题数",
              "quality defects found by inspections", 1, _UNIT_ITEMS),
        _info("hazards_found_total", "project", "历史检查发现安全隐患数",
              "safety hazards found by inspections", 1, _UNIT_ITEMS),
        _info(f"problems_found_{recent}d", "project", f"近{recent}天检查发现问题数",
              f"defects and hazards found in the last {recent} days", 1, _UNIT_ITEMS),
        _info("last_inspection_problems", "project", "最近一次检查发现问题数",
              "defects and hazards found by the last inspection", 1, _UNIT_ITEMS),
        _info("days_since_last_inspection", "project", "距最近一次检查天数",
              "days since the last inspection", 0, _UNIT_DAYS),
        _info("days_since_last_problem", "project", "距最近一次发现问题天数",
              "days since problems were last found", -1, _UNIT_DAYS),
        _info(f"quality_defects_{recent}d", "project", f"近{recent}天质量问题记录数",
              f"quality-defect records in the last {recent} days", 1, _UNIT_COUNT),
        _info(f"safety_hazards_{recent}d", "project", f"近{recent}天安全隐患记录数",
              f"safety-hazard records in the last {recent} days", 1, _UNIT_COUNT),
        _info(f"serious_problems_{recent}d", "project", f"近{recent}天严重问题记录数",
              f"serious defect or hazard records in the last {recent} days", 1, _UNIT_COUNT),
        _info("accidents_total", "project", "历史安全事故次数", "accidents on record", 1,
              _UNIT_COUNT),
        _info("days_since_accident", "project", "距最近一次事故天数",
              "days since the last accident", -1, _UNIT_DAYS),
        _info("overdue_rectifications_total", "project", "逾期未整改次数",
              "overdue rectifications on record", 1, _UNIT_COUNT),
        _info(f"overdue_rectifications_{recent}d", "project", f"近{recent}天逾期未整改次数",
              f"overdue rectifications in the last {recent} days", 1, _UNIT_COUNT),
        # participant 参建单位
        *[entry for role in PARTICIPANT_ROLES_SCORED for entry in _participant_entries(role)],
        _info("participants_max_credit_points", "participant", "参建单位最高信用风险记分",
              "highest credit-risk points among participants", 1, ("分", "points")),
        _info("contractor_qualification_rank", "participant",
              "施工总承包资质等级 (特级=0 … 三级=3)",
              "general contractor's qualification (special=0 … grade 3=3)", 1),
        _info("supervisor_qualification_rank", "participant", "监理单位资质等级 (特级=0 … 三级=3)",
              "supervising engineer's qualification (special=0 … grade 3=3)", 1),
        _info("subcontractors", "participant", "专业分包单位数", "specialist subcontractors", 0,
              ("家", "firms")),
        _info(f"contractor_penalties_{record}d", "participant",
              f"施工总承包单位近{record}天行政处罚次数",
              f"general contractor's penalties in the last {record} days", 1, _UNIT_COUNT),
        _info("contractor_other_projects", "participant", "施工总承包单位在建其他项目数",
              "general contractor's other projects under construction", 0, ("个", "projects")),
        _info("contractor_other_problem_share", "participant",
              "施工总承包单位其他项目检查发现问题比例",
              "share of the general contractor's other-project inspections finding problems",
              1, _UNIT_SHARE),
        _info(f"contractor_other_accidents_{record}d", "participant",
              f"施工总承包单位其他项目近{record}天事故数",
              f"accidents on the general contractor's other projects in the last {record} days",
              1, _UNIT_COUNT),
        _info("supervisor_other_problem_share", "participant",
              "监理单位其他项目检查发现问题比例",
              "share of the supervising engineer's other-project inspections finding problems",
              1, _UNIT_SHARE),
    ]
    return {entry.name: entry for entry in entries}


PROJECT_FEATURES: dict[str, FeatureInfo] = project_feature_catalogue()


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _dates(column: pd.Series) -> pd.Series:
    return pd.to_datetime(column).astype("datetime64[ns]")


def _known(frame: pd.DataFrame, date_column: str, as_of: pd.Timestamp) -> pd.DataFrame:
    """Rows known before `as_of` whose own dated fact also lies before it."""
    known = _dates(frame["known_date"])
    happened = _dates(frame[date_column])
    keep = (known < as_of) & (happened < as_of)
    return frame.loc[keep.to_numpy(dtype=bool, na_value=False)]


def _age_days(column: pd.Series, as_of: pd.Timestamp) -> pd.Series:
    return (as_of - _dates(column)).dt.days


def _code(values: pd.Series, categories: pd.Index) -> np.ndarray:
    """Position of each value in `categories` as float; NaN for missing or unknown."""
    positions = categories.get_indexer(pd.Index(values.astype(object).where(values.notna(), None)))
    return np.where(positions >= 0, positions, np.nan).astype(float)


def _floats(values: pd.Series | np.ndarray) -> np.ndarray:
    return pd.Series(values).to_numpy(dtype=float, na_value=np.nan)


def _count_by(frame: pd.DataFrame, index: pd.Index, key: str = "project_id") -> np.ndarray:
    counts = frame.groupby(key, sort=False).size()
    return counts.reindex(index, fill_value=0).to_numpy(dtype=np.int64)


def _sum_by(frame: pd.DataFrame, column: str, index: pd.Index) -> np.ndarray:
    sums = frame.groupby("project_id", sort=False)[column].sum()
    return sums.reindex(index, fill_value=0).to_numpy(dtype=float)


def _latest_by(frame: pd.DataFrame, order: list[str], index: pd.Index) -> pd.DataFrame:
    """The latest row per project (by `order`), reindexed to `index`."""
    latest = frame.sort_values(["project_id", *order], kind="stable").groupby(
        "project_id", sort=False
    ).tail(1)
    return latest.set_index("project_id").reindex(index)


# --------------------------------------------------------------------------------------------
# project state (risk-source inputs)
# --------------------------------------------------------------------------------------------


def active_projects(
    snapshot: Mapping[str, pd.DataFrame], as_of: date | pd.Timestamp | str
) -> pd.DataFrame:
    """Projects under construction on `as_of`: permitted before it, not completed before it.

    Sorted by project_id; duplicate project ids are an error (the contract keys on them).
    """
    stamp = as_of_timestamp(as_of)
    projects = snapshot_table(snapshot, "projects")
    if projects["project_id"].isna().any() or projects["project_id"].duplicated().any():
        raise ValueError("项目编号缺失或重复 / projects.project_id has missing or duplicate ids")
    permit = _dates(projects["permit_date"])
    completed = _dates(projects["completion_date"])
    active = (permit < stamp) & (completed.isna() | (completed >= stamp))
    chosen = projects.loc[active.to_numpy(dtype=bool, na_value=False)]
    return chosen.sort_values("project_id", kind="stable").reset_index(drop=True)


def _stage_on(
    events: pd.DataFrame, index: pd.Index, as_of: pd.Timestamp
) -> tuple[pd.Series, np.ndarray]:
    """Stage reached by `as_of` from known stage-change events; `preparation` when none."""
    changes = events[(events["event_type"] == "stage_change").to_numpy(dtype=bool,
                                                                         na_value=False)]
    changes = changes[changes["stage"].notna().to_numpy(dtype=bool)]
    latest = _latest_by(changes, ["occurred_date", "known_date", "event_id"], index)
    known = latest["stage"].notna().to_numpy(dtype=bool)
    stage = latest["stage"].astype("string").fillna("preparation")
    return stage.reset_index(drop=True), known


def _dangerous_works_active(events: pd.DataFrame, index: pd.Index) -> np.ndarray:
    """A dangerous-works phase started and not ended (latest start/end event is a start)."""
    kinds = ("dangerous_works_start", "dangerous_works_end")
    phases = events[events["event_type"].isin(kinds).to_numpy(dtype=bool, na_value=False)]
    latest = _latest_by(phases, ["occurred_date", "known_date", "event_id"], index)
    return (latest["event_type"] == "dangerous_works_start").to_numpy(dtype=bool, na_value=False)


def project_state(
    snapshot: Mapping[str, pd.DataFrame], as_of: date | pd.Timestamp | str
) -> pd.DataFrame:
    """Active projects with the attributes the risk-source rules test, point in time.

    Columns `STATE_COLUMNS`: permit attributes as typed in the snapshot, plus `stage` (from
    stage-change events known before `as_of`), `stage_known` and `dangerous_works_active`.
    """
    stamp = as_of_timestamp(as_of)
    projects = active_projects(snapshot, stamp)
    index = pd.Index(projects["project_id"], name="project_id")
    events = _known(snapshot_table(snapshot, "project_events"), "occurred_date", stamp)
    stage, stage_known = _stage_on(events, index, stamp)
    state = projects.assign(
        stage=stage.to_numpy(),
        stage_known=stage_known,
        dangerous_works_active=_dangerous_works_active(events, index),
    )
    state["stage"] = state["stage"].astype("string")
    return state[list(STATE_COLUMNS)].reset_index(drop=True)


def last_inspection_dates(
    snapshot: Mapping[str, pd.DataFrame], as_of: date | pd.Timestamp | str
) -> pd.Series:
    """project_id → date of the last inspection visit before `as_of` (the visit itself is the
    regulator's own act, so it counts from its date even before its result is recorded)."""
    stamp = as_of_timestamp(as_of)
    inspections = snapshot_table(snapshot, "project_inspections")
    visited = _dates(inspections["inspection_date"])
    past = inspections.loc[(visited < stamp).to_numpy(dtype=bool, na_value=False)]
    last = past.assign(inspection_date=_dates(past["inspection_date"])).groupby(
        "project_id"
    )["inspection_date"].max()
    last.index = last.index.astype(str)
    last.index.name = "project_id"
    return last.rename("last_inspection_date")


# --------------------------------------------------------------------------------------------
# features
# --------------------------------------------------------------------------------------------


def _attribute_features(state: pd.DataFrame, stamp: pd.Timestamp) -> dict[str, np.ndarray]:
    permit = _dates(state["permit_date"])
    planned = _dates(state["planned_completion_date"])
    elapsed = (stamp - permit).dt.days.to_numpy(dtype=float, na_value=np.nan)
    planned_days = (planned - permit).dt.days.to_numpy(dtype=float, na_value=np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(planned_days > 0, elapsed / planned_days, np.nan)
    progress = state["stage"].astype(object).map(STAGE_PROGRESS).to_numpy(dtype=float)
    past_plan = (stamp > planned).to_numpy(dtype=bool, na_value=False)
    return {
        "project_type_code": _code(state["project_type"], _CODES["project_type"]),
        "use_code": _code(state["use"], _CODES["use"]),
        "structure_code": _code(state["structure"], _CODES["structure"]),
        "floor_area_m2": _floats(state["floor_area_m2"]),
        "height_m": _floats(state["height_m"]),
        "storeys": _floats(state["storeys"]),
        "excavation_depth_m": _floats(state["excavation_depth_m"]),
        "dangerous_works": _floats(state["dangerous_works"]),
        "over_scale_dangerous_works": _floats(state["over_scale_dangerous_works"]),
        "crowded_surroundings": _floats(state["crowded_surroundings"].astype("Float64")),
        "stage_code": _code(state["stage"], _CODES["stage"]),
        "stage_known": state["stage_known"].to_numpy(dtype=float),
        "dangerous_works_active": state["dangerous_works_active"].to_numpy(dtype=float),
        "days_since_permit": elapsed,
        "plan_elapsed_share": share,
        "behind_plan": share - progress,
        "past_planned_completion": past_plan.astype(float),
    }


def _inspection_records(
    snapshot: Mapping[str, pd.DataFrame], stamp: pd.Timestamp
) -> pd.DataFrame:
    """Inspection results known before `as_of`, with problems and age in days."""
    known = _known(snapshot_table(snapshot, "project_inspections"), "inspection_date", stamp)
    defects = known["defects_found"].astype("Float64").fillna(0).to_numpy(dtype=float)
    hazards = known["hazards_found"].astype("Float64").fillna(0).to_numpy(dtype=float)
    return pd.DataFrame({
        "project_id": known["project_id"].astype(str).to_numpy(),
        "inspection_date": _dates(known["inspection_date"]).to_numpy(),
        "inspection_id": known["inspection_id"].astype(str).to_numpy(),
        "defects": defects,
        "hazards": hazards,
        "problems": defects + hazards,
        "age": _age_days(known["inspection_date"], stamp).to_numpy(dtype=float),
    })


def _record_features(
    records: pd.DataFrame, events: pd.DataFrame, index: pd.Index
) -> dict[str, np.ndarray]:
    recent = RECENT_DAYS
    found = records[records["problems"] > 0]
    last = _latest_by(records, ["inspection_date", "inspection_id"], index)
    total = _count_by(records, index)
    problem_total = _count_by(found, index)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(total > 0, problem_total / np.maximum(total, 1), np.nan)
    last_problem_age = found.groupby("project_id")["age"].min().reindex(index)

    def of_type(kind: str) -> pd.DataFrame:
        return events[(events["event_type"] == kind).to_numpy(dtype=bool, na_value=False)]

    problems = events[events["event_type"].isin(["quality_defect", "safety_hazard"]).to_numpy(
        dtype=bool, na_value=False)]
    serious = problems[(problems["severity"] == "serious").to_numpy(dtype=bool, na_value=False)]
    accidents = of_type("accident")
    overdue = of_type("overdue_rectification")
    return {
        "inspections_total": total,
        f"inspections_{recent}d": _count_by(records[records["age"] <= recent], index),
        "problem_inspections_total": problem_total,
        "problem_inspection_share": share,
        "defects_found_total": _sum_by(records, "defects", index),
        "hazards_found_total": _sum_by(records, "hazards", index),
        f"problems_found_{recent}d": _sum_by(records[records["age"] <= recent], "problems",
                                             index),
        "last_inspection_problems": last["problems"].to_numpy(dtype=float),
        "days_since_last_inspection": last["age"].to_numpy(dtype=float),
        "days_since_last_problem": last_problem_age.to_numpy(dtype=float),
        f"quality_defects_{recent}d": _count_by(
            of_type("quality_defect").query(f"age <= {recent}"), index),
        f"safety_hazards_{recent}d": _count_by(
            of_type("safety_hazard").query(f"age <= {recent}"), index),
        f"serious_problems_{recent}d": _count_by(serious.query(f"age <= {recent}"), index),
        "accidents_total": _count_by(accidents, index),
        "days_since_accident": accidents.groupby("project_id")["age"].min().reindex(
            index).to_numpy(dtype=float),
        "overdue_rectifications_total": _count_by(overdue, index),
        f"overdue_rectifications_{recent}d": _count_by(overdue.query(f"age <= {recent}"), index),
    }


def _credit_by_uscc(participant_credit: pd.DataFrame | None) -> pd.DataFrame:
    """uscc → credit_points, class_rank from a participant-credit frame (uscc as index or
    column; `credit_points`, optional `credit_class` A–D)."""
    if participant_credit is None:
        return pd.DataFrame({"credit_points": pd.Series(dtype=float),
                             "class_rank": pd.Series(dtype=float)})
    credit = participant_credit
    if "uscc" in credit.columns:
        credit = credit.set_index("uscc")
    if "credit_points" not in credit.columns:
        raise ValueError(
            "参建单位信用表缺少 credit_points 列 / participant_credit lacks a credit_points column"
        )
    ranks = (
        credit["credit_class"].astype(object).map(CLASS_RANK).to_numpy(dtype=float)
        if "credit_class" in credit.columns else np.full(len(credit), np.nan)
    )
    frame = pd.DataFrame(
        {"credit_points": _floats(credit["credit_points"]), "class_rank": ranks},
        index=credit.index.astype(str),
    )
    return frame[~frame.index.duplicated(keep="last")]


def _participant_features(
    snapshot: Mapping[str, pd.DataFrame],
    index: pd.Index,
    records: pd.DataFrame,
    events: pd.DataFrame,
    participant_credit: pd.DataFrame | None,
    stamp: pd.Timestamp,
) -> dict[str, np.ndarray]:
    record_days = ENTERPRISE_RECORD_DAYS
    participants = snapshot_table(snapshot, "project_participants")
    links = pd.DataFrame({
        "project_id": participants["project_id"].astype(str).to_numpy(),
        "uscc": participants["uscc"].astype(str).to_numpy(),
        "role": participants["role"].astype(str).to_numpy(),
        "qualification": _code(participants["qualification_grade"],
                               _CODES["qualification_grade"]),
    })
    links = links.join(_credit_by_uscc(participant_credit), on="uscc")
    mine = links[links["project_id"].isin(index)]

    # Other projects' record, per enterprise: all its projects' counts minus this one's.
    all_ids = pd.Index(sorted(set(index) | set(links["project_id"])), name="project_id")
    accidents = events[(events["event_type"] == "accident").to_numpy(dtype=bool, na_value=False)]
    per_project = pd.DataFrame(
        {
            "inspections": _count_by(records, all_ids),
            "problem_inspections": _count_by(records[records["problems"] > 0], all_ids),
            "accidents": _count_by(accidents[accidents["age"] <= record_days], all_ids),
        },
        index=all_ids,
    )
    active = set(index)
    pairs = links[["project_id", "uscc"]].drop_duplicates()
    pairs = pairs.join(per_project, on="project_id").fillna(
        {"inspections": 0, "problem_inspections": 0, "accidents": 0})
    pairs["active"] = pairs["project_id"].isin(active).astype(int)
    totals = pairs.groupby("uscc")[["inspections", "problem_inspections", "accidents",
                                    "active"]].sum()
    mine = mine.join(per_project, on="project_id").fillna(
        {"inspections": 0, "problem_inspections": 0, "accidents": 0})
    mine = mine.join(totals.add_suffix("_all"), on="uscc")
    other_inspections = mine["inspections_all"] - mine["inspections"]
    mine = mine.assign(
        other_projects=mine["active_all"] - 1,
        other_problem_share=np.where(
            other_inspections > 0,
            (mine["problem_inspections_all"] - mine["problem_inspections"])
            / other_inspections.where(other_inspections > 0, 1),
            np.nan,
        ),
        other_accidents=mine["accidents_all"] - mine["accidents"],
    )

    enterprise_events = snapshot_table(snapshot, "enterprise_events")
    penalty_rows = (enterprise_events["event_type"] == "penalty").to_numpy(
        dtype=bool, na_value=False) & enterprise_events["uscc"].isin(
        mine["uscc"].unique()).to_numpy(dtype=bool, na_value=False)
    penalties = _known(enterprise_events.loc[penalty_rows], "occurred_date", stamp)
    recent_penalties = penalties[(_age_days(penalties["occurred_date"], stamp) <= record_days)
                                 .to_numpy(dtype=bool, na_value=False)]
    penalty_counts = recent_penalties.groupby(recent_penalties["uscc"].astype(str)).size()
    mine = mine.assign(penalties=mine["uscc"].map(penalty_counts).fillna(0).to_numpy(float))

    numeric = ["credit_points", "class_rank", "qualification", "penalties", "other_projects",
               "other_problem_share", "other_accidents"]
    by_role = {
        str(role): group.groupby("project_id")[numeric].max()
        for role, group in mine.groupby("role", sort=False)
    }

    def role_max(role: str, column: str, empty: float = np.nan) -> np.ndarray:
        """Largest value among the project's participants in `role` (`empty` if none)."""
        table = by_role.get(role)
        if table is None:
            return np.full(len(index), empty)
        values = table[column].reindex(index).to_numpy(dtype=float, na_value=np.nan)
        return values if np.isnan(empty) else np.where(np.isnan(values), empty, values)

    columns: dict[str, np.ndarray] = {}
    for role in PARTICIPANT_ROLES_SCORED:
        short = _ROLE_SHORT[role]
        columns[f"{short}_credit_points"] = role_max(role, "credit_points")
        columns[f"{short}_class_rank"] = role_max(role, "class_rank")
    scored = mine[mine["role"].isin(PARTICIPANT_ROLES_SCORED)]
    columns["participants_max_credit_points"] = scored.groupby("project_id")[
        "credit_points"].max().reindex(index).to_numpy(dtype=float, na_value=np.nan)
    columns["contractor_qualification_rank"] = role_max("general_contractor", "qualification")
    columns["supervisor_qualification_rank"] = role_max("supervisor", "qualification")
    columns["subcontractors"] = _count_by(mine[mine["role"] == "subcontractor"], index)
    columns[f"contractor_penalties_{record_days}d"] = role_max(
        "general_contractor", "penalties", 0.0)
    columns["contractor_other_projects"] = role_max("general_contractor", "other_projects", 0.0)
    columns["contractor_other_problem_share"] = role_max(
        "general_contractor", "other_problem_share")
    columns[f"contractor_other_accidents_{record_days}d"] = role_max(
        "general_contractor", "other_accidents", 0.0)
    columns["supervisor_other_problem_share"] = role_max("supervisor", "other_problem_share")
    return columns


def build_project_features(
    snapshot: Mapping[str, pd.DataFrame],
    as_of: date | pd.Timestamp | str,
    *,
    participant_credit: pd.DataFrame | None = None,
    enterprise_scores: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per project under construction on `as_of` (index `project_id`, sorted).

    Columns follow `PROJECT_FEATURES`, all float64 (NaN = unknown: never inspected, no
    score, …). `participant_credit` (uscc as index or column, `credit_points`, optional
    `credit_class`) must be known on `as_of` itself — the policy scorecard computed from that
    date's enterprise features; without it the participants' points and class columns are
    NaN and the model leans on their records. `enterprise_scores` is the former name of
    `participant_credit`, kept for callers not yet migrated.
    """
    if participant_credit is None:
        participant_credit = enterprise_scores
    stamp = as_of_timestamp(as_of)
    state = project_state(snapshot, stamp)
    index = pd.Index(state["project_id"].astype(str), name="project_id")
    records = _inspection_records(snapshot, stamp)
    raw_events = _known(snapshot_table(snapshot, "project_events"), "occurred_date", stamp)
    events = pd.DataFrame({
        "project_id": raw_events["project_id"].astype(str).to_numpy(),
        "event_type": raw_events["event_type"].astype(str).to_numpy(),
        "severity": raw_events["severity"].astype(object).to_numpy(),
        "age": _age_days(raw_events["occurred_date"], stamp).to_numpy(dtype=float),
    })
    columns = {
        **_attribute_features(state, stamp),
        **_record_features(records[records["project_id"].isin(index)],
                           events[events["project_id"].isin(index)], index),
        **_participant_features(snapshot, index, records, events, participant_credit, stamp),
    }
    result = pd.DataFrame(
        {name: np.asarray(columns[name], dtype=float) for name in PROJECT_FEATURES},
        index=index,
    )
    return result

"""The construction risk matrix: risk-source grade × management grade → supervision level.

Each project's cell (R1–R4 × M1–M4) picks a supervision level (e.g. 红/橙/黄/蓝) and the level
its inspection interval; events then override the table: an accident forces a level for a
period (Hangzhou keeps a fatal-accident site at the top grade for three months), and the start
or end of a dangerous-works phase forces a re-grade visit at once. Every number and every cell
comes from the policy (`MatrixRules`, built and validated by `supervision.matrix_policy`); this
module only evaluates them, so two districts with different tables run the same code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features.catalogue import FeatureInfo
from features.contract import PROJECT_EVENT_TYPES
from features.project_features import (
    PROJECT_FEATURES,
    build_project_features,
    last_inspection_dates,
    project_state,
)
from models.risk_source import RISK_SOURCE_GRADES, RiskSourceRules, grade_risk_source

MANAGEMENT_GRADES: tuple[str, ...] = ("M1", "M2", "M3", "M4")
MANAGEMENT_GRADE_LABELS: dict[str, tuple[str, str]] = {
    "M1": ("管理风险低", "low management risk"),
    "M2": ("管理风险一般", "moderate management risk"),
    "M3": ("管理风险较高", "higher management risk"),
    "M4": ("管理风险高", "high management risk"),
}

OVERRIDE_ACCIDENT = "accident"
OVERRIDE_REGRADE = "regrade"
OVERRIDE_NEVER_INSPECTED = "never_inspected"


@dataclass(frozen=True)
class SupervisionLevel:
    """A supervision level and the days between two scheduled inspections at that level."""

    code: str
    zh: str
    en: str
    interval_days: int


@dataclass(frozen=True)
class AccidentOverride:
    """An accident keeps the project at `level` or above for `days` after it occurred.

    `severities` limits the override to accidents of those severities; empty means any.
    """

    level: str
    days: int
    severities: tuple[str, ...] = ()


@dataclass(frozen=True)
class MatrixRules:
    """Everything the matrix needs from the policy.

    `levels` run from the most intensive (rank 1) to the least; `cells` maps every
    (R grade, M grade) pair to a level code; `management_cutoffs` are the lowest calibrated
    probabilities of M2, M3 and M4; `regrade_events` are project event types that make the
    next inspection due on the day the regulator learns of them.
    """

    levels: tuple[SupervisionLevel, ...]
    cells: Mapping[tuple[str, str], str]
    management_cutoffs: tuple[float, float, float]
    accident: AccidentOverride | None = None
    regrade_events: tuple[str, ...] = field(default_factory=tuple)

    def level(self, code: str) -> SupervisionLevel:
        for level in self.levels:
            if level.code == code:
                return level
        raise KeyError(f"未知监管等级 {code!r} / unknown supervision level {code!r}")

    def rank(self, code: str) -> int:
        """1 for the most intensive level."""
        return [level.code for level in self.levels].index(code) + 1


PLACEMENT_COLUMNS: tuple[str, ...] = (
    "project_id",
    "risk_source_grade",
    "risk_source_points",
    "management_grade",
    "probability",
    "cell",
    "cell_level",
    "level",
    "level_zh",
    "level_en",
    "level_rank",
    "interval_days",
    "last_inspection_date",
    "next_due_date",
    "override_until",
    "overrides",
    "risk_source_rules",
    "risk_source_reasons",
    "management_reasons",
    "override_reasons",
    "reasons",
)


def management_grades(
    probability: pd.Series | np.ndarray, cutoffs: tuple[float, ...]
) -> np.ndarray:
    """M1–M4 from calibrated probabilities: one step up per cut-off reached."""
    p = np.asarray(pd.to_numeric(pd.Series(probability), errors="coerce"), dtype=float)
    if np.isnan(p).any():
        raise ValueError("管理风险概率缺失 / a management probability is missing (NaN)")
    steps = np.zeros(len(p), dtype=int)
    for cutoff in cutoffs:
        steps += (p >= cutoff).astype(int)
    return np.array([MANAGEMENT_GRADES[s] for s in steps], dtype=object)


def _unique_projects(frame: pd.DataFrame, name: str, required: tuple[str, ...]) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} 缺少列 / {name} lacks columns: {missing}")
    duplicated = frame["project_id"][frame["project_id"].duplicated()]
    if len(duplicated):
        raise ValueError(
            f"{name} 中项目重复 / {name} lists a project more than once: "
            f"{list(duplicated.astype(str).unique()[:5])}"
        )


def _known_events(
    events: pd.DataFrame | None, as_of: pd.Timestamp, types: tuple[str, ...]
) -> pd.DataFrame:
    """Events of `types` the regulator knew of before `as_of` (point in time), typed."""
    if events is None:
        events = pd.DataFrame(columns=["project_id", "event_type", "occurred_date",
                                       "known_date"])
    frame = pd.DataFrame({
        "project_id": events["project_id"].astype(str).to_numpy(),
        "event_type": events["event_type"].astype(str).to_numpy(),
        "occurred_date": pd.to_datetime(events["occurred_date"]).astype("datetime64[ns]"),
        "known_date": pd.to_datetime(events["known_date"]).astype("datetime64[ns]"),
        "severity": (events["severity"].astype("string") if "severity" in events.columns
                     else pd.Series(pd.NA, index=events.index, dtype="string")).to_numpy(),
    })
    keep = (frame["known_date"] < as_of).to_numpy(dtype=bool, na_value=False) & frame[
        "event_type"].isin(types).to_numpy(dtype=bool)
    return frame.loc[keep].reset_index(drop=True)


def _accident_overrides(
    events: pd.DataFrame, rules: MatrixRules, as_of: pd.Timestamp
) -> pd.DataFrame:
    """Per project under an accident override: the accident date and the end of the period."""
    accident = rules.accident
    if accident is None:
        return pd.DataFrame(columns=["project_id", "accident_date", "override_until"])
    frame = _known_events(events, as_of, ("accident",))
    if accident.severities:
        frame = frame[frame["severity"].isin(accident.severities).to_numpy(dtype=bool,
                                                                          na_value=False)]
    until = frame["occurred_date"] + pd.to_timedelta(accident.days, unit="D")
    frame = frame.assign(accident_date=frame["occurred_date"], override_until=until)
    frame = frame[(frame["occurred_date"] < as_of) & (frame["override_until"] > as_of)]
    latest = frame.sort_values(["project_id", "override_until"]).groupby("project_id").tail(1)
    return latest[["project_id", "accident_date", "override_until"]]


def _regrade_dates(
    events: pd.DataFrame,
    rules: MatrixRules,
    as_of: pd.Timestamp,
    last_inspection: pd.Series,
) -> pd.DataFrame:
    """First re-grade event learned of after each project's last inspection, if any."""
    frame = _known_events(events, as_of, rules.regrade_events)
    last = pd.Series(
        last_inspection.reindex(frame["project_id"].to_numpy()).to_numpy(),
        index=frame.index, dtype="datetime64[ns]",
    )
    pending = frame[last.isna().to_numpy() | (frame["known_date"] > last).fillna(False).to_numpy()]
    first = pending.sort_values(["project_id", "known_date", "event_type"]).groupby(
        "project_id"
    ).head(1)
    return first[["project_id", "known_date", "event_type"]].rename(
        columns={"known_date": "regrade_date", "event_type": "regrade_event"}
    )


def _last_inspection_series(last_inspection_dates: pd.Series | pd.DataFrame) -> pd.Series:
    if isinstance(last_inspection_dates, pd.DataFrame):
        frame = last_inspection_dates
        if not {"project_id", "last_inspection_date"} <= set(frame.columns):
            raise ValueError(
                "last_inspection_dates 需要列 project_id, last_inspection_date / "
                "last_inspection_dates needs columns project_id, last_inspection_date"
            )
        series = pd.Series(
            pd.to_datetime(frame["last_inspection_date"]).to_numpy(),
            index=frame["project_id"].astype(str).to_numpy(),
        )
    else:
        series = pd.Series(
            pd.to_datetime(last_inspection_dates).to_numpy(),
            index=last_inspection_dates.index.astype(str),
        )
    series = series.astype("datetime64[ns]")
    return series[~series.index.duplicated(keep="last")]


def _format_date(value: pd.Timestamp) -> str:
    return pd.Timestamp(value).strftime("%Y-%m-%d")


def place_projects(
    risk_source: pd.DataFrame,
    management: pd.DataFrame,
    policy_matrix: MatrixRules,
    events: pd.DataFrame,
    as_of: pd.Timestamp | str,
    last_inspection_dates: pd.Series | pd.DataFrame,
) -> pd.DataFrame:
    """Place each project on the matrix and say when it is next due, and why.

    `risk_source` is `models.risk_source.grade_risk_source` output; `management` has
    `project_id`, `probability` (calibrated) and optionally `management_reasons` (top SHAP
    reasons); `events` are project events (only those known before `as_of` are used);
    `last_inspection_dates` maps project_id → date of the last inspection before `as_of`
    (a Series, or a frame with project_id and last_inspection_date; absent = never).

    The next due date is the last inspection plus the level's interval; a project never
    inspected is due on `as_of`; a re-grade event learned of after the last inspection makes
    it due on the day it was learned of (so a late re-grade shows as overdue). An accident
    override can only raise the level, never lower it. Returns `PLACEMENT_COLUMNS`.
    """
    as_of = pd.Timestamp(as_of)
    rules = policy_matrix
    _unique_projects(risk_source, "risk_source", ("project_id", "risk_source_grade"))
    _unique_projects(management, "management", ("project_id", "probability"))
    frame = risk_source.assign(project_id=risk_source["project_id"].astype(str))
    scores = management.assign(project_id=management["project_id"].astype(str))
    unscored = sorted(set(frame["project_id"]) - set(scores["project_id"]))
    if unscored:
        raise ValueError(
            f"{len(unscored)} 个项目缺少管理风险评分 / projects without a management score: "
            f"{unscored[:5]}"
        )
    keep = ["project_id", "probability"] + (
        ["management_reasons"] if "management_reasons" in scores.columns else []
    )
    frame = frame.merge(scores[keep], on="project_id", how="left", validate="one_to_one")
    if "management_reasons" not in frame.columns:
        frame["management_reasons"] = ""
    for column in ("risk_source_points", "risk_source_reasons"):
        if column not in frame.columns:
            frame[column] = pd.NA
    if "risk_source_rules" not in frame.columns:
        frame["risk_source_rules"] = [() for _ in range(len(frame))]

    r_grades = frame["risk_source_grade"].astype(str).to_numpy()
    unknown = sorted(set(r_grades) - set(RISK_SOURCE_GRADES))
    if unknown:
        raise ValueError(f"未知风险源等级 / unknown risk-source grades: {unknown}")
    m_grades = management_grades(frame["probability"], rules.management_cutoffs)
    cell_levels = np.array(
        [rules.cells[(r, m)] for r, m in zip(r_grades, m_grades, strict=True)], dtype=object
    )
    rank = np.array([rules.rank(code) for code in cell_levels], dtype=int)

    last_inspection = _last_inspection_series(last_inspection_dates)
    last = pd.Series(
        last_inspection.reindex(frame["project_id"].to_numpy()).to_numpy(), dtype="datetime64[ns]"
    )
    accidents = _accident_overrides(events, rules, as_of).set_index("project_id")
    regrades = _regrade_dates(events, rules, as_of, last_inspection).set_index("project_id")

    levels: list[SupervisionLevel] = []
    override_until: list[pd.Timestamp] = []
    override_codes: list[tuple[str, ...]] = []
    override_text: list[str] = []
    due: list[pd.Timestamp] = []
    for i, project in enumerate(frame["project_id"]):
        code, codes, notes = cell_levels[i], [], []
        until = pd.NaT
        if project in accidents.index and rules.accident is not None:
            row = accidents.loc[project]
            until = row["override_until"]
            forced = rules.accident.level
            if rules.rank(forced) < rank[i]:
                code, rank[i] = forced, rules.rank(forced)
            codes.append(OVERRIDE_ACCIDENT)
            level = rules.level(forced)
            notes.append(
                f"{_format_date(row['accident_date'])} 发生事故, {_format_date(until)} 前不低于"
                f"{level.zh}监管 / accident on {_format_date(row['accident_date'])}: at least "
                f"{level.en} until {_format_date(until)}"
            )
        level = rules.level(code)
        last_date = last.iloc[i]
        if pd.isna(last_date):
            next_due = as_of
            codes.append(OVERRIDE_NEVER_INSPECTED)
            notes.append("从未检查, 即时到期 / never inspected: due now")
        else:
            next_due = pd.Timestamp(last_date) + pd.Timedelta(days=level.interval_days)
        if project in regrades.index:
            row = regrades.loc[project]
            regrade_date = pd.Timestamp(row["regrade_date"])
            if regrade_date < next_due:
                next_due = regrade_date
            codes.append(OVERRIDE_REGRADE)
            notes.append(
                f"{_format_date(regrade_date)} 获知{_event_zh(row['regrade_event'])}, 需重新定级 / "
                f"{_event_en(row['regrade_event'])} learned of on {_format_date(regrade_date)}: "
                "re-grade due"
            )
        levels.append(level)
        override_until.append(until)
        override_codes.append(tuple(codes))
        override_text.append("; ".join(notes))
        due.append(next_due)

    def text(values: Any) -> pd.Series:
        return pd.Series(values, dtype="string").fillna("").reset_index(drop=True)

    def datetimes(values: Any) -> pd.Series:
        return pd.Series(pd.to_datetime(pd.Series(values, dtype=object)), dtype="datetime64[ns]")

    overrides = np.empty(len(frame), dtype=object)
    overrides[:] = override_codes
    result = pd.DataFrame({
        "project_id": text(frame["project_id"].to_numpy()),
        "risk_source_grade": text(r_grades),
        "risk_source_points": pd.Series(frame["risk_source_points"].to_numpy(), dtype="Int64"),
        "management_grade": text(m_grades),
        "probability": frame["probability"].astype(float).to_numpy(),
        "cell": text([f"{r}×{m}" for r, m in zip(r_grades, m_grades, strict=True)]),
        "cell_level": text(cell_levels),
        "level": text([lv.code for lv in levels]),
        "level_zh": text([lv.zh for lv in levels]),
        "level_en": text([lv.en for lv in levels]),
        "level_rank": pd.Series(rank, dtype="Int64"),
        "interval_days": pd.Series([lv.interval_days for lv in levels], dtype="Int64"),
        "last_inspection_date": datetimes(last.to_numpy()),
        "next_due_date": datetimes(due),
        "override_until": datetimes(override_until),
        "overrides": overrides,
        "risk_source_rules": frame["risk_source_rules"].to_numpy(),
        "risk_source_reasons": text(frame["risk_source_reasons"].to_numpy()),
        "management_reasons": text(frame["management_reasons"].to_numpy()),
        "override_reasons": text(override_text),
    })
    result["reasons"] = text(_combined_reasons(result))
    return result[list(PLACEMENT_COLUMNS)]


def _event_zh(event_type: str) -> str:
    return PROJECT_EVENT_TYPES.get(str(event_type), str(event_type)).split(" / ")[0]


def _event_en(event_type: str) -> str:
    label = PROJECT_EVENT_TYPES.get(str(event_type), str(event_type))
    return label.split(" / ")[-1]


def _combined_reasons(placed: pd.DataFrame) -> list[str]:
    """One readable line per project: both grades with their reasons, then the overrides."""
    lines = []
    for row in placed.to_dict(orient="records"):
        rules_text = str(row["risk_source_reasons"]) or "无规则触发 / no rule fired"
        management_text = str(row["management_reasons"])
        parts = [
            f"风险源 / risk source {row['risk_source_grade']!s}: {rules_text}",
            f"管理风险 / management {row['management_grade']!s} (p={row['probability']:.2f})"
            + (f": {management_text}" if management_text else ""),
            f"矩阵 / cell {row['cell']!s} → {row['level_zh']!s} / {row['level_en']!s}",
        ]
        if row["override_reasons"]:
            parts.append(f"调整 / overrides: {row['override_reasons']!s}")
        lines.append(" | ".join(parts))
    return lines


# --------------------------------------------------------------------------------------------
# scoring a date end to end (what `riskmatrix matrix --as-of DATE` runs)
# --------------------------------------------------------------------------------------------


def management_scores(
    model: Any,
    features: pd.DataFrame,
    catalogue: Mapping[str, FeatureInfo],
    top_reasons_k: int,
) -> pd.DataFrame:
    """Calibrated probability and the top SHAP reasons (bilingual) for each project.

    `model` is a fitted `CalibratedRiskModel` (or `RiskClassifier`); `features` is
    `features.project_features.build_project_features` output (index project_id).
    Returns project_id, probability, management_reasons ('zh / en; …', risk-raising first).
    """
    from models.explain import shap_contributions, top_reasons  # lightgbm: import on use

    probability = np.asarray(model.predict_proba(features)[:, 1], dtype=float)
    reasons_text = pd.Series("", index=features.index, dtype=object)
    if len(features):
        contributions = shap_contributions(model, features)
        reasons = top_reasons(contributions, features, catalogue, k=top_reasons_k)
        joined = (reasons["text_zh"].astype(str) + " / " + reasons["text_en"].astype(str)).groupby(
            reasons["entity"], sort=False).agg("; ".join)
        reasons_text = joined.reindex(features.index).fillna("")
    return pd.DataFrame({
        "project_id": pd.Series(features.index.astype(str), dtype="string"),
        "probability": probability,
        "management_reasons": pd.Series(reasons_text.to_numpy(), dtype="string"),
    })


def placements_on(
    snapshot: Mapping[str, pd.DataFrame],
    as_of: pd.Timestamp | str,
    model: Any,
    risk_rules: RiskSourceRules,
    matrix_rules: MatrixRules,
    *,
    top_reasons_k: int,
    participant_credit: pd.DataFrame | None = None,
    features: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Every project under construction on `as_of`, placed on the matrix with its reasons.

    Point in time throughout: state, features, events and last inspections are those known
    before `as_of`. `participant_credit` must have the meaning the model was trained with
    (see `features.project_features`); `features` may be passed when already built (with
    that credit) for `as_of`. Feed the result to `supervision.schedule.due_list`.
    """
    stamp = pd.Timestamp(as_of).normalize()
    graded = grade_risk_source(project_state(snapshot, stamp), risk_rules)
    if features is None:
        features = build_project_features(snapshot, stamp, participant_credit=participant_credit)
    scores = management_scores(model, features, PROJECT_FEATURES, top_reasons_k)
    return place_projects(graded, scores, matrix_rules, snapshot["project_events"], stamp,
                          last_inspection_dates(snapshot, stamp))


def rank_due(placements: pd.DataFrame, as_of: pd.Timestamp | str) -> pd.DataFrame:
    """Placements due on or before `as_of`, in visiting order, with `rank` and `days_overdue`.

    Order: most intensive level first, then highest probability, then longest overdue, then
    project id (so the order never depends on input order). The working list
    (`supervision.schedule.due_list`) and the backtest replay share this one ordering.
    """
    missing = [c for c in ("project_id", "level_rank", "probability", "next_due_date")
               if c not in placements.columns]
    if missing:
        raise ValueError(
            f"矩阵定级结果缺少列 {missing} / placements lack columns {missing} "
            "(pass models.matrix.place_projects output)"
        )
    stamp = pd.Timestamp(as_of).normalize()
    due_dates = pd.to_datetime(placements["next_due_date"]).astype("datetime64[ns]")
    due = placements.loc[(due_dates <= stamp).to_numpy(dtype=bool, na_value=False)].copy()
    due["next_due_date"] = pd.to_datetime(due["next_due_date"]).astype("datetime64[ns]")
    due["days_overdue"] = pd.Series(
        (stamp - due["next_due_date"]).dt.days.to_numpy(), index=due.index, dtype="Int64"
    )
    keys = pd.DataFrame({
        "level_rank": due["level_rank"].astype("Int64"),
        "probability": due["probability"].astype(float),
        "days_overdue": due["days_overdue"],
        "project": due["project_id"].astype(str),
    }, index=due.index)
    order = keys.sort_values(
        ["level_rank", "probability", "days_overdue", "project"],
        ascending=[True, False, False, True],
        kind="stable",
    ).index
    ranked = due.loc[order].reset_index(drop=True).drop(columns="rank", errors="ignore")
    ranked.insert(0, "rank", pd.Series(range(1, len(ranked) + 1), dtype="Int64"))
    return ranked

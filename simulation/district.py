"""Simulate a whole district: the source tables a district would export, plus hidden truth.

`simulate_district(DistrictConfig(...))` returns the ten contract tables (text exactly as a
department's CSV export would carry it: ISO dates, ';'-joined lists, True/False) and the
ground truth (`truth`) that scoring code must never read:

* `enterprise_monthly` (uscc, month, risk, violating): `risk` is the firm's violation
  propensity that month (the share of months it would be violating absent enforcement);
  `violating` is the realised state, lowered for a while after a finding is corrected.
* `enterprise_class` (uscc, true_class, true_risk, digital) for firms active at the end date.
  The true class is a fixed cut-off on `risk` (`class_thresholds`, default 0.30/0.58/0.85),
  not a quantile, so the A/B/C/D shares are a measurement the calibration report checks.
* `project_monthly` (project_id, month, risk, defective): `risk` is the chance an inspection
  that month finds a defect or hazard (detection x defect propensity).
* `digital_problems` (uscc, problem_start, problem_end, serious): violation episodes of
  digital-economy firms, the events triggers should catch.
* `class_thresholds` and `campaigns` (every random draw's stratum, frame size, draws and
  inclusion probability, per chunk), so calibration and HT checks need only the files.

The export is what the district knows on `end_date`: records known later are absent; the
only records older than the window are abnormal-list entries still open when it starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
from tqdm import tqdm

from features.contract import ENTERPRISE_STATUSES, TABLES
from simulation.columns import (
    NO_DAY,
    Timeline,
    date_strings,
    day_number,
    days_to_dates,
    numbered,
    take_text,
)
from simulation.enterprises import (
    CHECK_ITEM_COMBOS,
    CampaignCell,
    ChunkResult,
    EnterpriseChunk,
    campaign_id,
    campaign_number,
)
from simulation.inspectors import (
    Roster,
    assign_inspectors,
    build_roster,
    inspector_list_column,
    roster_tables,
)
from simulation.parameters import WorldParameters
from simulation.projects import simulate_projects
from simulation.records import (
    DEPARTMENT_LIST,
    DETAIL_LIST,
    EVENT_TYPE_LIST,
    ITEM_CODE_LIST,
    OUTCOME_LIST,
    SEVERITY_LIST,
    SOURCE_LIST,
    TAX_GRADE_LIST,
    concatenate_logs,
    select,
)
from simulation.registry import (
    ALL_INDUSTRIES,
    DIGITAL_TAG_LIST,
    ENTITY_TYPE_LIST,
    OWNERSHIP_LIST,
    STREET_LIST,
    Registry,
    address_column,
    build_registry,
    legal_rep_columns,
    name_column,
    scope_column,
    uscc_column,
)

CLASS_NAMES = ("A", "B", "C", "D")
STATUS_LIST = list(ENTERPRISE_STATUSES)


@dataclass(frozen=True)
class DistrictConfig:
    """What to simulate. Same config, same bytes: every random draw derives from `seed`."""

    enterprises: int = 20_000
    years: int = 4
    seed: int = 7
    end_date: date = date(2026, 9, 30)
    projects: int | None = None  # default enterprises // 40
    digital_share: float = 0.06
    chunk_size: int = 100_000
    world: WorldParameters = field(default_factory=WorldParameters)

    @property
    def project_count(self) -> int:
        return self.enterprises // 40 if self.projects is None else self.projects

    def validate(self) -> None:
        if self.enterprises < 100:
            raise ValueError("至少模拟100家企业 / simulate at least 100 enterprises")
        if not 1 <= self.years <= 20:
            raise ValueError("模拟年数须在1到20之间 / years must be between 1 and 20")
        if not 0.0 <= self.digital_share < 0.5:
            raise ValueError("数字经济企业占比须在0到0.5之间 / digital_share must be in [0, 0.5)")
        if self.chunk_size < 1_000:
            raise ValueError("分块大小至少1000 / chunk_size must be at least 1000")
        if self.project_count < 0:
            raise ValueError("项目数不能为负 / projects must not be negative")


@dataclass
class SimulatedDistrict:
    """The source tables (`tables`, keyed by contract table name) and the hidden truth."""

    config: DistrictConfig
    tables: dict[str, pd.DataFrame]
    truth: dict[str, pd.DataFrame]


def simulate_district(config: DistrictConfig, progress: bool = False) -> SimulatedDistrict:
    """Simulate `config.enterprises` firms and their projects over `config.years` years."""
    config.validate()
    timeline = Timeline.ending(config.end_date, config.years)
    root = np.random.SeedSequence(config.seed)
    registry_seed, roster_seed, chunk_seed, project_seed, assembly_seed = root.spawn(5)
    world = config.world
    registry = build_registry(config.enterprises, timeline, config.digital_share, world.risk,
                              world.registry, np.random.default_rng(registry_seed))
    roster = build_roster(registry.established, timeline, world.inspectors,
                          np.random.default_rng(roster_seed))
    bounds = [*range(0, config.enterprises, config.chunk_size), config.enterprises]
    chunk_seeds = chunk_seed.spawn(len(bounds) - 1)
    results: list[ChunkResult] = []
    steps = zip(bounds[:-1], bounds[1:], chunk_seeds, strict=True)
    with tqdm(total=len(chunk_seeds) * timeline.months, desc="模拟企业 / firms",
              unit="chunk-month", disable=not progress) as bar:
        for i, (lo, hi, seed) in enumerate(steps):
            chunk = EnterpriseChunk(registry, lo, hi, i, timeline, world,
                                    np.random.default_rng(seed))
            results.append(chunk.run(on_month=lambda: bar.update(1)))

    closed = np.concatenate([r.closed_day for r in results])
    revoked = np.concatenate([r.revoked for r in results])
    mean_logit = np.concatenate([r.mean_logit for r in results])
    final_risk = np.concatenate([r.final_risk for r in results])
    uscc = uscc_column(registry)
    assembly_rng = np.random.default_rng(assembly_seed)

    tables: dict[str, pd.DataFrame] = {}
    tables["enterprises"] = _enterprise_table(registry, uscc, closed, revoked)
    tables["enterprise_events"] = _event_table(results, uscc, registry, closed, timeline)
    tables["inspections"] = _inspection_table(
        _drain(results, "inspections"), uscc, registry, closed, timeline, roster, world,
        assembly_rng)
    tables["inspectors"], tables["inspector_conflicts"] = roster_tables(roster, uscc)
    tables["digital_tags"] = _digital_tag_table(registry, uscc, closed, assembly_rng)
    projects = simulate_projects(config.project_count, registry, mean_logit, closed, uscc,
                                 timeline, roster, world.projects,
                                 np.random.default_rng(project_seed))
    tables.update(projects.tables)
    tables = {name: _conform(tables[name], name) for name in TABLES}

    truth = {
        "enterprise_monthly": _monthly_truth(results, uscc, timeline),
        "enterprise_class": _class_truth(registry, uscc, closed, final_risk, timeline,
                                         world.risk.class_thresholds),
        "project_monthly": projects.monthly,
        "digital_problems": _problem_truth(_drain(results, "problems"), uscc, closed, timeline),
        "class_thresholds": class_threshold_table(world.risk.class_thresholds),
        "campaigns": _campaign_truth([c for r in results for c in r.campaign_cells]),
    }
    return SimulatedDistrict(config=config, tables=tables, truth=truth)


def _drain(results: list[ChunkResult], name: str) -> dict[str, np.ndarray]:
    """Concatenate one log across chunks and release the chunks' copies (peak memory)."""
    joined = concatenate_logs([getattr(r, name) for r in results])
    for r in results:
        setattr(r, name, {})
    return joined


def class_threshold_table(thresholds: tuple[float, float, float]) -> pd.DataFrame:
    """True class by fixed cut-offs on the monthly violation propensity."""
    edges = [0.0, *thresholds, 1.0]
    return pd.DataFrame({"true_class": list(CLASS_NAMES), "risk_low": edges[:-1],
                         "risk_high": edges[1:]})


def classify(risk: np.ndarray, thresholds: tuple[float, float, float]) -> np.ndarray:
    return np.array(CLASS_NAMES)[np.searchsorted(np.array(thresholds), risk, side="right")]


def _conform(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """Columns exactly as the contract lists them, in its order."""
    return frame[TABLES[name].column_names].reset_index(drop=True)


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)


def _enterprise_table(registry: Registry, uscc: pa.Array, closed: np.ndarray,
                      revoked: np.ndarray) -> pd.DataFrame:
    status = np.where(closed < NO_DAY, np.where(revoked, 1, 2), 0)
    rep_id, rep_name = legal_rep_columns(registry)
    table = pa.table({
        "uscc": uscc,
        "name": name_column(registry),
        "industry_code": take_text([ind.code for ind in ALL_INDUSTRIES], registry.industry),
        "entity_type": take_text(ENTITY_TYPE_LIST, registry.entity_type),
        "ownership_type": take_text(OWNERSHIP_LIST, registry.ownership),
        "registered_capital": pa.array(registry.capital, type=pa.float64()),
        "employees": pa.array(registry.employees, type=pa.int64(),
                              mask=registry.employees_missing),
        "established_date": date_strings(registry.established),
        "street": take_text(STREET_LIST, registry.street),
        "registered_address": address_column(registry),
        "legal_rep_id": rep_id,
        "legal_rep_name": rep_name,
        "business_scope": scope_column(registry),
        "status": take_text(STATUS_LIST, status),
        "status_date": date_strings(np.minimum(closed, 2**31 - 1), missing=closed == NO_DAY),
    })
    return _to_pandas(table)


def _visible(firm: np.ndarray, occurred: np.ndarray, known: np.ndarray, closed: np.ndarray,
             timeline: Timeline) -> np.ndarray:
    """What an export at the end date contains: known by then, nothing after closure."""
    return (known <= timeline.end_day) & (occurred <= closed[firm])


def _event_table(results: list[ChunkResult], uscc: pa.Array, registry: Registry,
                 closed: np.ndarray, timeline: Timeline) -> pd.DataFrame:
    """Chunk by chunk (each chunk's numeric log is released as soon as it is text)."""
    parts, first_id = [], 1
    for result in results:
        ev, result.events = result.events, {}
        ev = select(ev, _visible(ev["firm"], ev["occurred"], ev["known"], closed, timeline)
                    & (ev["occurred"] >= registry.established[ev["firm"]]))
        ev = select(ev, np.lexsort((ev["kind"], ev["firm"], ev["occurred"])))
        parts.append(_event_part(ev, uscc, first_id))
        first_id += len(ev["firm"])
    return _to_pandas(pa.concat_tables(parts))


def _event_part(ev: dict[str, np.ndarray], uscc: pa.Array, first_id: int) -> pa.Table:
    n = len(ev["firm"])
    return pa.table({
        "event_id": numbered("QYSJ", np.arange(first_id, first_id + n), 10),
        "uscc": uscc.take(pa.array(ev["firm"])),
        "event_type": take_text(EVENT_TYPE_LIST, ev["kind"]),
        "occurred_date": date_strings(ev["occurred"]),
        "known_date": date_strings(ev["known"]),
        "item_code": take_text(ITEM_CODE_LIST, ev["item"]),
        "severity": take_text(SEVERITY_LIST, ev["severity"]),
        "amount": pa.array(ev["amount"], type=pa.float64(), from_pandas=True),
        "grade": take_text(TAX_GRADE_LIST, ev["grade"]),
        "report_year": pa.array(ev["report_year"].astype(np.int64), mask=ev["report_year"] < 0),
        "detail": take_text(DETAIL_LIST, ev["detail"]),
    })


def _inspection_table(ins: dict[str, np.ndarray], uscc: pa.Array, registry: Registry,
                      closed: np.ndarray, timeline: Timeline, roster: Roster,
                      world: WorldParameters, rng: np.random.Generator) -> pd.DataFrame:
    ins = select(ins, _visible(ins["firm"], ins["day"], ins["known"], closed, timeline))
    ins = select(ins, np.lexsort((ins["firm"], ins["day"])))
    n = len(ins["firm"])
    first, second = assign_inspectors(roster, ins["department"], ins["firm"], registry.size, rng)
    combo_list: list[str] = []
    offsets = np.zeros(len(DEPARTMENT_LIST), dtype=np.int64)
    for d, dept in enumerate(DEPARTMENT_LIST):
        offsets[d] = len(combo_list)
        combo_list.extend(CHECK_ITEM_COMBOS[dept])
    codes = sorted({int(c) for c in np.unique(ins["campaign"]) if c >= 0})
    names = [campaign_id(world.campaigns[c // 10_000], c % 10_000) for c in codes]
    assert all(campaign_number(c // 10_000, c % 10_000) == c for c in codes)
    campaign_index = np.searchsorted(np.array(codes, dtype=np.int64), ins["campaign"])
    campaign_index = np.where(ins["campaign"] >= 0, campaign_index, -1)
    table = pa.table({
        "inspection_id": numbered("JC", np.arange(1, n + 1), 10),
        "uscc": uscc.take(pa.array(ins["firm"])),
        "inspection_date": date_strings(ins["day"]),
        "known_date": date_strings(ins["known"]),
        "department": take_text(DEPARTMENT_LIST, ins["department"]),
        "campaign_id": take_text(names or [""], campaign_index),
        "check_items": take_text(combo_list, offsets[ins["department"]] + ins["items"]),
        "source": take_text(SOURCE_LIST, ins["source"]),
        "inclusion_probability": pa.array(ins["probability"], type=pa.float64(),
                                          from_pandas=True),
        "outcome": take_text(OUTCOME_LIST, ins["outcome"]),
        "violation_code": take_text(ITEM_CODE_LIST, ins["violation"]),
        "inspectors": inspector_list_column(roster, first, second),
    })
    return _to_pandas(table)


def _digital_tag_table(registry: Registry, uscc: pa.Array, closed: np.ndarray,
                       rng: np.random.Generator) -> pd.DataFrame:
    firm = np.flatnonzero((registry.manual_tag_day >= 0)
                          & (registry.manual_tag_day <= closed))
    tag = registry.digital_tag[firm].astype(np.int64)
    second = rng.random(len(firm)) < 0.1
    extra_tag = (tag[second] + rng.integers(1, len(DIGITAL_TAG_LIST), int(second.sum()))) % len(
        DIGITAL_TAG_LIST)
    firms = np.concatenate([firm, firm[second]])
    tags = np.concatenate([tag, extra_tag])
    order = np.lexsort((tags, firms))
    firms, tags = firms[order], tags[order]
    table = pa.table({
        "uscc": uscc.take(pa.array(firms)),
        "tag": take_text(DIGITAL_TAG_LIST, tags),
        "tagged_date": date_strings(registry.manual_tag_day[firms]),
        "source": pa.array(["manual"] * len(firms), type=pa.string()),
    })
    return _to_pandas(table)


def _monthly_truth(results: list[ChunkResult], uscc: pa.Array,
                   timeline: Timeline) -> pd.DataFrame:
    """Ordered by firm then month (each chunk sorted, chunks in firm order)."""
    months = pa.array(timeline.month_dates().astype("datetime64[ms]"))
    parts = []
    for result in results:
        mon, result.monthly = result.monthly, {}
        parts.append(pa.table({
            "uscc": uscc.take(pa.array(mon["firm"])),
            "month": months.take(pa.array(mon["month"].astype(np.int32))),
            "risk": pa.array(mon["risk"]),
            "violating": pa.array(mon["violating"]),
        }))
    return pa.concat_tables(parts).to_pandas()


def _class_truth(registry: Registry, uscc: pa.Array, closed: np.ndarray, final_risk: np.ndarray,
                 timeline: Timeline, thresholds: tuple[float, float, float]) -> pd.DataFrame:
    active = (closed > timeline.end_day) & (registry.established <= timeline.end_day)
    firm = np.flatnonzero(active)
    return pd.DataFrame({
        "uscc": uscc.take(pa.array(firm)).to_pandas(),
        "true_class": classify(final_risk[firm], thresholds),
        "true_risk": final_risk[firm],
        "digital": registry.digital[firm],
    })


def _problem_truth(prob: dict[str, np.ndarray], uscc: pa.Array, closed: np.ndarray,
                   timeline: Timeline) -> pd.DataFrame:
    firm = prob["firm"]
    keep = (prob["start"] <= timeline.end_day) & (prob["start"] <= closed[firm])
    prob = select(prob, keep)
    end = np.minimum(prob["end"], closed[prob["firm"]])
    open_ = end > timeline.end_day
    order = np.lexsort((prob["start"], prob["firm"]))
    end_dates = days_to_dates(np.where(open_, 0, end))[order].astype("datetime64[ms]")
    end_dates[open_[order]] = np.datetime64("NaT")
    return pd.DataFrame({
        "uscc": uscc.take(pa.array(prob["firm"][order])).to_pandas(),
        "problem_start": days_to_dates(prob["start"][order]).astype("datetime64[ms]"),
        "problem_end": end_dates,
        "serious": prob["serious"][order],
    })


def _campaign_truth(cells: list[CampaignCell]) -> pd.DataFrame:
    frame = pd.DataFrame([c.__dict__ for c in cells], columns=list(CampaignCell.__annotations__))
    frame["draw_date"] = days_to_dates(frame["draw_day"].to_numpy(np.int64)).astype(
        "datetime64[ms]")
    return frame.drop(columns="draw_day")


__all__ = [
    "DistrictConfig",
    "SimulatedDistrict",
    "class_threshold_table",
    "classify",
    "day_number",
    "simulate_district",
]

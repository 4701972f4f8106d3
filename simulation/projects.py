"""Construction projects: permits, participants, stages, hazards and site inspections.

Each project's monthly chance of being in a defective state (quality defect or safety hazard
on site) rises with its inherent hazards (excavation depth, over-scale dangerous works,
height, crowded surroundings), its stage (foundation and main structure are the dangerous
ones), its own site-management latent, and the latent risk of the firms building it. Site
inspections find the state with high probability; accidents are rare and likelier on risky
sites. Truth (`project_monthly`) records the risk and the state per project-month.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.contract import (
    PARTICIPANT_ROLES,
    PROJECT_EVENT_TYPES,
    PROJECT_INSPECTION_SOURCES,
    PROJECT_STAGES,
    PROJECT_TYPES,
    PROJECT_USES,
    QUALIFICATION_GRADES,
    SEVERITIES,
    STRUCTURES,
)
from simulation.columns import Timeline, concat_text, date_strings, numbered, take_text
from simulation.inspectors import Roster, assign_inspectors, inspector_list_column
from simulation.parameters import ProjectParameters
from simulation.records import DEPARTMENT, ColumnLog
from simulation.registry import INDIVIDUAL, INDUSTRY_INDEX, INDUSTRY_SECTION, STREET_LIST, Registry
from simulation.vocabulary import (
    CONSTRUCTION_SECTION,
    DESIGNER_INDUSTRIES,
    DEVELOPER_INDUSTRIES,
    PROJECT_PLACE_WORDS,
    PROJECT_USE_WORDS,
    SUPERVISOR_INDUSTRIES,
)

TYPE_LIST = list(PROJECT_TYPES)
USE_LIST = list(PROJECT_USES)
STRUCTURE_LIST = list(STRUCTURES)
STAGE_LIST = list(PROJECT_STAGES)
ROLE_LIST = list(PARTICIPANT_ROLES)
GRADE_LIST = list(QUALIFICATION_GRADES)
PEVENT = {name: i for i, name in enumerate(PROJECT_EVENT_TYPES)}
PSOURCE = {name: i for i, name in enumerate(PROJECT_INSPECTION_SOURCES)}
SEVERITY_LIST = list(SEVERITIES)

TYPE_SHARES = (0.4, 0.12, 0.15, 0.05, 0.18, 0.1)
TYPE_USES = {  # type -> (uses, weights)
    "residential": (("housing",), (1.0,)),
    "public_building": (("school", "hospital", "office"), (0.45, 0.25, 0.3)),
    "commercial": (("mall", "office"), (0.5, 0.5)),
    "industrial": (("factory",), (1.0,)),
    "municipal": (("pipeline", "road_bridge"), (0.6, 0.4)),
    "transport": (("road_bridge",), (1.0,)),
}
TYPE_STRUCTURES = {
    "residential": (("shear_wall", "frame_shear_wall"), (0.7, 0.3)),
    "public_building": (("frame", "frame_shear_wall", "steel"), (0.5, 0.35, 0.15)),
    "commercial": (("frame_shear_wall", "frame", "steel"), (0.5, 0.3, 0.2)),
    "industrial": (("steel", "frame", "masonry"), (0.6, 0.3, 0.1)),
    "municipal": (("other",), (1.0,)),
    "transport": (("other", "steel"), (0.8, 0.2)),
}
# Median floor area (m2), storeys range, excavation depth range (m), duration range (months).
TYPE_SCALE = {
    "residential": (60_000.0, (10, 40), (4.0, 18.0), (24, 40)),
    "public_building": (20_000.0, (3, 15), (2.0, 12.0), (18, 30)),
    "commercial": (80_000.0, (5, 45), (6.0, 22.0), (24, 42)),
    "industrial": (15_000.0, (1, 5), (0.0, 4.0), (10, 18)),
    "municipal": (0.0, (0, 0), (2.0, 15.0), (8, 20)),
    "transport": (0.0, (0, 0), (3.0, 25.0), (18, 36)),
}
STAGE_BOUNDS = (0.0, 0.06, 0.3, 0.7, 1.0)  # preparation, foundation, main, decoration


@dataclass
class ProjectOutput:
    tables: dict[str, pd.DataFrame]
    monthly: pd.DataFrame


def _choice_by_type(rng: np.random.Generator, types: np.ndarray,
                    table: dict[str, tuple[tuple[str, ...], tuple[float, ...]]],
                    vocabulary: list[str]) -> np.ndarray:
    out = np.zeros(len(types), dtype=np.int64)
    for t, name in enumerate(TYPE_LIST):
        rows = np.flatnonzero(types == t)
        options, weights = table[name]
        picks = rng.choice(len(options), size=len(rows), p=np.array(weights) / sum(weights))
        out[rows] = np.array([vocabulary.index(o) for o in options])[picks]
    return out


def _pool(registry: Registry, codes: tuple[str, ...] | None, section: str | None) -> np.ndarray:
    company = registry.entity_type != INDIVIDUAL
    if section is not None:
        mask = (INDUSTRY_SECTION[registry.industry] == section) & company
    else:
        wanted = np.array([INDUSTRY_INDEX[c] for c in codes or ()])
        mask = np.isin(registry.industry, wanted) & company
    pool = np.flatnonzero(mask)
    return pool if len(pool) else np.flatnonzero(company)


def _pick(rng: np.random.Generator, pool: np.ndarray, registry: Registry, closed: np.ndarray,
          permit: np.ndarray) -> np.ndarray:
    """A firm per project, bigger firms likelier, existing at the permit date when possible."""
    weight = np.sqrt(1.0 + registry.employees[pool])
    chosen = pool[rng.choice(len(pool), size=len(permit), p=weight / weight.sum())]
    for _ in range(20):
        bad = (registry.established[chosen] >= permit) | (closed[chosen] <= permit)
        if not bad.any():
            break
        chosen[bad] = pool[rng.choice(len(pool), size=int(bad.sum()), p=weight / weight.sum())]
    return chosen


def simulate_projects(n_projects: int, registry: Registry, mean_logit: np.ndarray,
                      closed: np.ndarray, uscc: pa.Array, timeline: Timeline, roster: Roster,
                      params: ProjectParameters, rng: np.random.Generator) -> ProjectOutput:
    """Projects, participants, site inspections, project events and monthly truth."""
    n = n_projects
    ptype = rng.choice(len(TYPE_LIST), size=n, p=np.array(TYPE_SHARES) / sum(TYPE_SHARES))
    use = _choice_by_type(rng, ptype, TYPE_USES, USE_LIST)
    structure = _choice_by_type(rng, ptype, TYPE_STRUCTURES, STRUCTURE_LIST)
    scale = [TYPE_SCALE[TYPE_LIST[t]] for t in ptype]
    median_area = np.array([s[0] for s in scale])
    area = np.round(median_area * np.exp(rng.normal(0.0, 0.7, n)), 1)
    storey_low = np.array([s[1][0] for s in scale])
    storey_high = np.array([s[1][1] for s in scale])
    storeys = storey_low + np.floor(rng.random(n) * (storey_high - storey_low + 1)).astype(np.int64)
    height = np.round(storeys * rng.uniform(2.9, 3.8, n), 1)
    depth_low = np.array([s[2][0] for s in scale])
    depth_high = np.array([s[2][1] for s in scale])
    depth = np.round(depth_low + rng.random(n) ** 1.5 * (depth_high - depth_low), 1)
    dangerous = rng.poisson(1.0 + depth / 4.0 + storeys / 12.0)
    over_p = np.clip(0.05 + 0.3 * (depth >= 5) + 0.2 * (height >= 50), 0, 1)
    over_scale = rng.binomial(dangerous, over_p)
    crowded_use = np.isin(use, [USE_LIST.index(u) for u in ("school", "hospital", "mall")])
    crowded = rng.random(n) < 0.2 + 0.35 * crowded_use

    start, end = timeline.start_day, timeline.end_day
    permit = rng.integers(start - 30 * 30, end - 60, n)
    duration_low = np.array([s[3][0] for s in scale])
    duration_high = np.array([s[3][1] for s in scale])
    planned_months = duration_low + np.floor(rng.random(n) * (duration_high - duration_low + 1))
    planned = permit + (planned_months * 30.4).astype(np.int64)

    developer = _pick(rng, _pool(registry, DEVELOPER_INDUSTRIES, None), registry, closed, permit)
    builders = _pool(registry, None, CONSTRUCTION_SECTION)
    contractor = _pick(rng, builders, registry, closed, permit)
    supervisor = _pick(rng, _pool(registry, SUPERVISOR_INDUSTRIES, None), registry, closed, permit)
    designer = _pick(rng, _pool(registry, DESIGNER_INDUSTRIES, None), registry, closed, permit)
    n_sub = rng.integers(0, 4, n)
    sub_project = np.repeat(np.arange(n), n_sub)
    subcontractor = _pick(rng, builders, registry, closed, permit[sub_project])

    sub_logit = np.bincount(sub_project, weights=mean_logit[subcontractor], minlength=n)
    sub_mean = np.where(n_sub > 0, sub_logit / np.maximum(n_sub, 1), mean_logit[contractor])
    participants_logit = (0.5 * mean_logit[contractor] + 0.2 * sub_mean
                          + 0.15 * mean_logit[supervisor] + 0.15 * mean_logit[developer])
    hazard = (0.08 * depth + 0.25 * np.minimum(over_scale, 4) + 0.05 * np.minimum(dangerous, 10)
              + 0.01 * np.minimum(height, 150) + 0.3 * crowded)
    management = rng.normal(0.0, params.management_sd, n)
    delay = rng.exponential(45.0 * (1.0 + np.exp(management)), n).astype(np.int64)
    completion = planned + delay
    bounds = permit[:, None] + (np.array(STAGE_BOUNDS)[None, :]
                                * (completion - permit)[:, None]).astype(np.int64)

    base_logit = (params.intercept + params.participant_weight * (participants_logit + 2.0)
                  + params.hazard_weight * (hazard - 1.5) + management)
    log = _simulate_sites(n, base_logit, bounds, hazard, timeline, params, rng)
    return _assemble(
        n=n, ptype=ptype, use=use, structure=structure, area=area, height=height,
        storeys=storeys, depth=depth, dangerous=dangerous, over_scale=over_scale,
        crowded=crowded, permit=permit, planned=planned, completion=completion, bounds=bounds,
        participants={"developer": developer, "general_contractor": contractor,
                      "supervisor": supervisor, "designer": designer},
        sub_project=sub_project, subcontractor=subcontractor, log=log, uscc=uscc,
        registry=registry, roster=roster, timeline=timeline, rng=rng)


@dataclass
class _SiteLog:
    inspections: dict[str, np.ndarray]
    events: dict[str, np.ndarray]
    monthly: dict[str, np.ndarray]


def _stage_at(bounds: np.ndarray, day: int) -> np.ndarray:
    """Stage index per project at `day` (4 = completed; -1 before the permit)."""
    stage = (bounds <= day).sum(axis=1) - 1
    return np.where(day < bounds[:, 0], -1, np.minimum(stage, 4))


def _simulate_sites(n: int, base_logit: np.ndarray, bounds: np.ndarray, hazard: np.ndarray,
                    timeline: Timeline, params: ProjectParameters,
                    rng: np.random.Generator) -> _SiteLog:
    inspections = ColumnLog({"project": (np.int64, 0), "day": (np.int64, 0), "known": (np.int64, 0),
                             "source": (np.int8, 0), "defects": (np.int64, 0),
                             "hazards": (np.int64, 0)})
    events = ColumnLog({"project": (np.int64, 0), "kind": (np.int8, 0), "occurred": (np.int64, 0),
                        "known": (np.int64, 0), "severity": (np.int8, -1), "stage": (np.int8, -1),
                        "inspection": (np.int64, -1)})
    monthly = ColumnLog({"project": (np.int64, 0), "month": (np.int16, 0),
                         "risk": (np.float32, 0), "defective": (np.bool_, False)})
    stage_effects = np.array([*params.stage_effects, 0.0])
    interval = np.select([(hazard >= 2.5), (hazard >= 1.5)],
                         [params.scheduled_interval_months[0], params.scheduled_interval_months[1]],
                         params.scheduled_interval_months[2])
    offset = rng.integers(0, 3, n)
    drift = np.zeros(n)
    defective = np.zeros(n, dtype=bool)
    rho = params.drift_autocorrelation
    inspection_count = 0
    for t in range(timeline.months):
        m0, m1 = int(timeline.month_start[t]), int(timeline.month_start[t + 1])
        mid = (m0 + m1) // 2
        stage = _stage_at(bounds, mid)
        active = (bounds[:, 0] < m1) & (bounds[:, 4] >= m0)
        drift = rho * drift + np.sqrt(1 - rho**2) * rng.normal(0.0, params.drift_sd, n)
        logit = base_logit + stage_effects[np.maximum(stage, 0)] + drift
        propensity = 1.0 / (1.0 + np.exp(-logit))
        fresh = rng.random(n) < propensity
        switch = rng.random(n) < params.switch_rate
        defective = np.where(switch | (t == 0), fresh, defective) & active
        idx = np.flatnonzero(active)
        monthly.add(project=idx, month=t, risk=params.detection * propensity[idx],
                    defective=defective[idx])

        scheduled = active & ((t + offset) % interval == 0)
        drawn = active & (t % 3 == 0) & (rng.random(n) < params.random_draw_ratio)
        complaint = active & (rng.random(n) < params.complaint_rate
                              + params.complaint_rate_defective * defective)
        accident = active & (rng.random(n) < params.accident_rate * (1 + hazard / 2)
                             + params.accident_rate_defective * defective)
        acc = np.flatnonzero(accident)
        acc_day = rng.integers(m0, m1, len(acc))
        acc_day = np.clip(acc_day, bounds[acc, 0], bounds[acc, 4])
        severity = rng.choice(3, size=len(acc), p=[0.2, 0.5, 0.3])
        events.add(project=acc, kind=PEVENT["accident"], occurred=acc_day,
                   known=acc_day + rng.integers(0, 2, len(acc)), severity=severity)
        batches = [
            (np.flatnonzero(scheduled), PSOURCE["scheduled"], None),
            (np.flatnonzero(drawn), PSOURCE["random_draw"], None),
            (np.flatnonzero(complaint), PSOURCE["complaint"], None),
            (acc, PSOURCE["accident"], acc_day),
        ]
        for proj, source, after in batches:
            if len(proj) == 0:
                continue
            day = (rng.integers(m0, m1, len(proj)) if after is None
                   else after + rng.integers(1, 4, len(proj)))
            day = np.clip(day, bounds[proj, 0], bounds[proj, 4])
            found = defective[proj] & (rng.random(len(proj)) < params.detection)
            kind = rng.integers(0, 3, len(proj))  # quality only, safety only, both
            defects = np.where(found & (kind != 1), 1 + rng.poisson(1.2, len(proj)), 0)
            hazards = np.where(found & (kind != 0), 1 + rng.poisson(1.5, len(proj)), 0)
            known = day + rng.integers(1, 11, len(proj))
            number = inspection_count + np.arange(len(proj))
            inspection_count += len(proj)
            inspections.add(project=proj, day=day, known=known, source=source,
                            defects=defects, hazards=hazards)
            for count, kind_name in ((defects, "quality_defect"), (hazards, "safety_hazard")):
                hit = count > 0
                events.add(project=proj[hit], kind=PEVENT[kind_name], occurred=day[hit],
                           known=known[hit], inspection=number[hit],
                           severity=np.where(count[hit] >= 4, 2, np.where(count[hit] >= 2, 1, 0)))
            overdue = found & (rng.random(len(proj)) < params.overdue_rectification_base
                               + params.overdue_rectification_risk * propensity[proj])
            due = day[overdue] + rng.integers(*params.rectification_days, int(overdue.sum()))
            events.add(project=proj[overdue], kind=PEVENT["overdue_rectification"],
                       occurred=due, known=due + rng.integers(0, 6, len(due)),
                       inspection=number[overdue])
            defective[proj[found & ~overdue]] = False
    return _SiteLog(inspections.columns(), events.columns(), monthly.columns())


def _milestone_events(bounds: np.ndarray, dangerous: np.ndarray) -> dict[str, np.ndarray]:
    """Stage changes at each boundary; dangerous-works phase from foundation to fit-out."""
    n = len(bounds)
    project = np.repeat(np.arange(n), 4)
    day = bounds[:, 1:].ravel()
    stage = np.tile(np.arange(1, 5), n)
    kind = np.full(len(day), PEVENT["stage_change"])
    has = np.flatnonzero(dangerous > 0)
    project = np.concatenate([project, has, has])
    day = np.concatenate([day, bounds[has, 1], bounds[has, 3]])
    stage = np.concatenate([stage, np.full(2 * len(has), -1)])
    kind = np.concatenate([kind, np.full(len(has), PEVENT["dangerous_works_start"]),
                           np.full(len(has), PEVENT["dangerous_works_end"])])
    return {"project": project, "occurred": day, "known": day, "stage": stage, "kind": kind}


def _assemble(*, n: int, ptype: np.ndarray, use: np.ndarray, structure: np.ndarray,
              area: np.ndarray, height: np.ndarray, storeys: np.ndarray, depth: np.ndarray,
              dangerous: np.ndarray, over_scale: np.ndarray, crowded: np.ndarray,
              permit: np.ndarray, planned: np.ndarray, completion: np.ndarray,
              bounds: np.ndarray, participants: dict[str, np.ndarray], sub_project: np.ndarray,
              subcontractor: np.ndarray, log: _SiteLog, uscc: pa.Array, registry: Registry,
              roster: Roster, timeline: Timeline, rng: np.random.Generator) -> ProjectOutput:
    start, end = timeline.start_day, timeline.end_day
    permit_text = pc.utf8_replace_slice(date_strings(permit), 4, 5, "")
    permit_text = pc.utf8_replace_slice(permit_text, 6, 7, "")
    project_id = concat_text("440105", permit_text, numbered("", np.arange(n), 5))
    stage_now = _stage_at(bounds, end)
    place = rng.integers(0, len(PROJECT_PLACE_WORDS), n)
    plot = rng.integers(1, 40, n)
    names = concat_text(take_text(PROJECT_PLACE_WORDS, place),
                        pa.array(plot).cast(pa.string()), "号地块",
                        take_text([PROJECT_USE_WORDS[u] for u in USE_LIST], use))
    street = rng.integers(0, len(STREET_LIST), n)
    done = completion <= end
    projects = pa.table({
        "project_id": project_id,
        "name": names,
        "project_type": take_text(TYPE_LIST, ptype),
        "use": take_text(USE_LIST, use),
        "structure": take_text(STRUCTURE_LIST, structure),
        "floor_area_m2": pa.array(area, type=pa.float64()),
        "height_m": pa.array(height, type=pa.float64()),
        "storeys": pa.array(storeys, type=pa.int64()),
        "excavation_depth_m": pa.array(depth, type=pa.float64()),
        "dangerous_works": pa.array(dangerous, type=pa.int64()),
        "over_scale_dangerous_works": pa.array(over_scale, type=pa.int64()),
        "crowded_surroundings": pa.array(crowded),
        "stage": take_text(STAGE_LIST, np.maximum(stage_now, 0)),
        "street": take_text(STREET_LIST, street),
        "permit_date": date_strings(permit),
        "planned_completion_date": date_strings(planned),
        "completion_date": date_strings(completion, missing=~done),
    })

    role_rows = [(participants[r], np.arange(n), r) for r in
                 ("developer", "general_contractor", "supervisor", "designer")]
    role_rows.append((subcontractor, sub_project, "subcontractor"))
    firm = np.concatenate([r[0] for r in role_rows])
    proj = np.concatenate([r[1] for r in role_rows])
    role = np.concatenate([np.full(len(r[0]), ROLE_LIST.index(r[2])) for r in role_rows])
    key = np.unique(np.stack([proj, firm, role], axis=1), axis=0)
    proj, firm, role = key[:, 0], key[:, 1], key[:, 2]
    big = np.log10(1 + registry.employees[firm])
    grade = np.clip(3 - np.floor(big + rng.normal(0.0, 0.6, len(firm))), 0, 3).astype(np.int64)
    grade = np.where(rng.random(len(firm)) < 0.1, -1, grade)
    participants_table = pa.table({
        "project_id": project_id.take(pa.array(proj)),
        "uscc": uscc.take(pa.array(firm)),
        "role": take_text(ROLE_LIST, role),
        "qualification_grade": take_text(GRADE_LIST, grade),
    })

    ins = log.inspections
    keep = ins["known"] <= end
    number = np.cumsum(keep) - 1  # renumber kept inspections contiguously
    ins = {k: v[keep] for k, v in ins.items()}
    inspection_id = numbered("GCJC", np.arange(len(ins["day"])), 9)
    housing = np.full(len(ins["day"]), DEPARTMENT["housing"])
    first, second = assign_inspectors(roster, housing, participants["general_contractor"][
        ins["project"]], registry.size, rng)
    site_inspections = pa.table({
        "inspection_id": inspection_id,
        "project_id": project_id.take(pa.array(ins["project"])),
        "inspection_date": date_strings(ins["day"]),
        "known_date": date_strings(ins["known"]),
        "source": take_text(list(PROJECT_INSPECTION_SOURCES), ins["source"]),
        "defects_found": pa.array(ins["defects"], type=pa.int64()),
        "hazards_found": pa.array(ins["hazards"], type=pa.int64()),
        "inspectors": inspector_list_column(roster, first, second),
    })

    ev = log.events
    milestones = _milestone_events(bounds, dangerous)
    cols = {k: np.concatenate([ev[k], milestones.get(k, np.full(len(milestones["project"]), -1))])
            for k in ev}
    linked = cols["inspection"] >= 0
    inspection_kept = np.zeros(len(linked), dtype=bool)
    inspection_kept[linked] = keep[cols["inspection"][linked]]
    visible = ((cols["occurred"] >= start) & (cols["known"] <= end)
               & (~linked | inspection_kept))
    cols = {k: v[visible] for k, v in cols.items()}
    order = np.lexsort((cols["kind"], cols["project"], cols["occurred"]))
    cols = {k: v[order] for k, v in cols.items()}
    new_number = np.where(cols["inspection"] >= 0, number[np.maximum(cols["inspection"], 0)], -1)
    events = pa.table({
        "event_id": numbered("GCSJ", np.arange(len(order)), 9),
        "project_id": project_id.take(pa.array(cols["project"])),
        "event_type": take_text(list(PROJECT_EVENT_TYPES), cols["kind"]),
        "occurred_date": date_strings(cols["occurred"]),
        "known_date": date_strings(cols["known"]),
        "severity": take_text(SEVERITY_LIST, cols["severity"]),
        "stage": take_text(STAGE_LIST, cols["stage"]),
        "inspection_id": pc.if_else(pa.array(new_number >= 0),
                                    numbered("GCJC", np.maximum(new_number, 0), 9),
                                    pa.nulls(len(new_number), pa.string())),
        "detail": pa.nulls(len(new_number), pa.string()),
    })

    mon = log.monthly
    monthly = pd.DataFrame({
        "project_id": project_id.take(pa.array(mon["project"])).to_pandas(),
        "month": timeline.month_dates()[mon["month"]].astype("datetime64[ms]"),
        "risk": mon["risk"].astype(np.float64),
        "defective": mon["defective"],
    })
    return ProjectOutput(
        tables={"projects": projects.to_pandas(),
                "project_participants": participants_table.to_pandas(),
                "project_inspections": site_inspections.to_pandas(),
                "project_events": events.to_pandas()},
        monthly=monthly,
    )

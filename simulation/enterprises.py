"""Monthly life of a chunk of firms: latent risk, true violations and the records they leave.

The truth is a latent logit per firm (risky type, persistent effect, related-party effect,
slow AR(1) drift, age) whose sigmoid is the monthly violation propensity `risk`; the true
state `violating` is a persistent two-state chain around it. Regulators never see either:
they see complaints, inspection results, penalties, list entries, annual reports, tax
grades, registration changes, public opinion, leads and monitoring hits — each a noisy,
delayed, partial function of the truth. Every record carries the day it occurred and the day
the regulator knew it; nothing is known before it occurs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from simulation.columns import NO_DAY, Timeline, day_of_year
from simulation.parameters import CampaignDesign, CrudeClassRule, WorldParameters
from simulation.records import (
    ABNORMAL_ITEMS,
    CASE_LEAD_DETAIL_OFFSET,
    CHANGE_ITEMS,
    COMPLAINT_ITEMS,
    DEPARTMENT,
    EVENT,
    EVENT_FIELDS,
    EXEMPT_ITEMS,
    GRADE,
    INSPECTION_FIELDS,
    ITEM,
    MONITORING_DETAIL_OFFSET,
    MONITORING_ITEMS,
    OPINION_DETAIL_OFFSET,
    OUTCOME,
    SEVERITY,
    SOURCE,
    VIOLATION_ITEMS,
    ColumnLog,
)
from simulation.registry import INDIVIDUAL, INDUSTRY_SECTION, Registry
from simulation.vocabulary import (
    ABNORMAL_REASONS,
    CHECK_ITEMS,
    DEPARTMENT_CODES,
    SERIOUS_DISHONESTY_CODES,
)

REASONS = ("no_annual_report", "unreachable", "disclosure_failure")
NAR, UNR, DSC = 0, 1, 2
YEAR = 365
FOUND_OUTCOMES = np.array([OUTCOME["order_to_correct"], OUTCOME["case_opened"],
                           OUTCOME["disclosure_failure"], OUTCOME["unreachable"]])
CHECK_ITEM_COMBOS: dict[str, list[str]] = {
    dept: [a for a in items] + [f"{a};{b}" for i, a in enumerate(items) for b in items[i + 1:]]
    for dept, items in CHECK_ITEMS.items()
}


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def violation_rates(risk: np.ndarray, switch_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Monthly entry and exit rates of the violation chain whose stationary share is `risk`.

    exit = k * sqrt(1 - p), entry = k * p / sqrt(1 - p): entry / (entry + exit) = p, risky
    firms stay in violation long and relapse fast after a correction, safe firms the reverse.
    """
    root = np.sqrt(1.0 - risk)
    return np.minimum(switch_rate * risk / root, 1.0), switch_rate * root


@dataclass
class CampaignCell:
    """One stratum of one campaign within one chunk: the frame and the draw."""

    campaign: str
    department: str
    draw_day: int
    stratum: str
    chunk: int
    population: int
    drawn: int
    inclusion_probability: float


@dataclass
class ChunkResult:
    """Everything one chunk produced, still as numeric codes (global firm indices)."""

    events: dict[str, np.ndarray]
    inspections: dict[str, np.ndarray]
    monthly: dict[str, np.ndarray]
    problems: dict[str, np.ndarray]
    campaign_cells: list[CampaignCell]
    closed_day: np.ndarray
    revoked: np.ndarray
    final_risk: np.ndarray
    mean_logit: np.ndarray


@dataclass
class _Queue:
    """Inspections scheduled for later months (by month index)."""

    by_month: dict[int, list[dict[str, np.ndarray]]] = field(default_factory=dict)

    def push(self, month: np.ndarray, **columns: np.ndarray) -> None:
        for t in np.unique(month):
            sel = month == t
            self.by_month.setdefault(int(t), []).append({k: v[sel] for k, v in columns.items()})

    def pop(self, t: int) -> dict[str, np.ndarray] | None:
        batches = self.by_month.pop(t, [])
        if not batches:
            return None
        return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


def campaign_id(design: CampaignDesign, year: int) -> str:
    """Published campaign id, e.g. SJ-SC-2025-03 (market, drawn March 2025)."""
    return f"SJ-{DEPARTMENT_CODES[design.department]}-{year}-{design.month:02d}"


def campaign_number(design_index: int, year: int) -> int:
    """Integer code of a campaign inside the simulator (design index and year)."""
    return design_index * 10_000 + year


class EnterpriseChunk:
    """Simulates firms [lo, hi) of the register month by month."""

    def __init__(self, registry: Registry, lo: int, hi: int, chunk: int, timeline: Timeline,
                 world: WorldParameters, rng: np.random.Generator) -> None:
        self.lo, self.hi, self.chunk = lo, hi, chunk
        self.n = hi - lo
        self.timeline = timeline
        self.world = world
        self.rng = rng
        sl = slice(lo, hi)
        self.static_logit = registry.static_logit[sl].astype(np.float64)
        self.type_logit = registry.risky_type_logit[sl].astype(np.float64)
        self.established = registry.established[sl]
        self.consumer = registry.consumer_facing[sl]
        self.digital = registry.digital[sl]
        self.section = INDUSTRY_SECTION[registry.industry[sl]]
        self.individual = registry.entity_type[sl] == INDIVIDUAL
        self.employees = registry.employees[sl]
        self.no_revenue = registry.shell[sl] | (registry.employees[sl] == 0)

        risk = world.risk
        n = self.n
        self.firm_type = self._draw_type(self.type_logit)
        self.persistent = rng.normal(0.0, risk.persistent_sd, n)
        self.drift = rng.normal(0.0, risk.drift_sd, n)
        self.violating = np.zeros(n, dtype=bool)
        self.corrected = np.zeros(n, dtype=bool)
        self.correction_day = np.full(n, NO_DAY, dtype=np.int64)
        self.closed_day = np.full(n, NO_DAY, dtype=np.int64)
        self.revoked = np.zeros(n, dtype=bool)
        self.pending_until = np.full(n, -1, dtype=np.int64)
        self.entry = np.full((3, n), NO_DAY, dtype=np.int64)
        self.exit = np.full((3, n), NO_DAY, dtype=np.int64)
        self.serious_day = np.full(n, NO_DAY, dtype=np.int64)
        self.problem_open = np.zeros(n, dtype=bool)
        self.problem_start = np.zeros(n, dtype=np.int64)
        self.problem_serious = np.zeros(n, dtype=bool)
        self.logit_sum = np.zeros(n)
        self.logit_months = np.zeros(n)
        self.events = ColumnLog(EVENT_FIELDS)
        self.inspections = ColumnLog(INSPECTION_FIELDS)
        self.monthly = ColumnLog({"firm": (np.int32, 0), "month": (np.int16, 0),
                                  "risk": (np.float32, 0), "violating": (np.bool_, False)})
        self.problems = ColumnLog({"firm": (np.int64, 0), "start": (np.int64, 0),
                                   "end": (np.int64, NO_DAY), "serious": (np.bool_, False)})
        self.cells: list[CampaignCell] = []
        self.queue = _Queue()
        self.risk = np.zeros(n)
        self.logit = np.zeros(n)

    # ------------------------------------------------------------------ helpers
    @property
    def type_shift(self) -> np.ndarray:
        return np.array([0.0, *self.world.risk.type_shifts])

    def _draw_type(self, type_logit: np.ndarray) -> np.ndarray:
        """Ordered logit: 0 compliant, 1 risky, 2 chronic offender."""
        latent = type_logit + self.rng.logistic(0.0, 1.0, len(type_logit))
        return (latent > 0).astype(np.int64) + (latent > self.world.risk.chronic_cutoff)

    def _days_in(self, t: int, idx: np.ndarray) -> np.ndarray:
        """Random days of month t for firms `idx`, never before their establishment."""
        m0, m1 = int(self.timeline.month_start[t]), int(self.timeline.month_start[t + 1])
        days = self.rng.integers(m0, m1, len(idx))
        return np.maximum(days, self.established[idx])

    def _between(self, low: int, high: int, size: int) -> np.ndarray:
        return self.rng.integers(low, high + 1, size)

    def _event(self, kind: str, local: np.ndarray, occurred: np.ndarray, known: np.ndarray,
               **extra: np.ndarray | float | int) -> None:
        if len(local) == 0:
            return
        self.events.add(firm=local + self.lo, kind=EVENT[kind], occurred=occurred,
                        known=known, **extra)

    # ------------------------------------------------------------------ main loop
    def run(self, on_month: Callable[[], object] | None = None) -> ChunkResult:
        self._legacy_listings()
        for t in range(self.timeline.months):
            self._month(t)
            if on_month is not None:
                on_month()
        return self._finish()

    def _month(self, t: int) -> None:
        m0, m1 = int(self.timeline.month_start[t]), int(self.timeline.month_start[t + 1])
        year, month = self.timeline.calendar_month(t)
        exists = (self.established < m1) & (self.closed_day >= m0)
        self._update_latent(t, m0)
        self._update_violations(t, m0, m1)
        for design in self.world.campaigns:
            if design.month == month:
                self._draw_campaign(design, year, t, m0)
        if month == 1:
            self._annual_reports(t, year, exists)
        if month == 4:
            self._tax_grades(t, year, exists)
        self._complaints(t, exists)
        self._leads_and_opinion(t, exists)
        self._registration_changes(t, exists)
        self._unreachable_checks(t, exists)
        self._inspect(t)
        self._list_transitions(t, m0, m1)
        self._closures(t, m0, m1, exists)
        idx = np.flatnonzero(exists)
        self.monthly.add(firm=idx + self.lo, month=t, risk=self.risk[idx],
                         violating=self.violating[idx])
        self.logit_sum[idx] += self.logit[idx]
        self.logit_months[idx] += 1

    def _update_latent(self, t: int, m0: int) -> None:
        risk, rng, n = self.world.risk, self.rng, self.n
        rho = risk.drift_autocorrelation
        self.drift = rho * self.drift + np.sqrt(1 - rho**2) * rng.normal(0.0, risk.drift_sd, n)
        regime = rng.random(n) < risk.regime_change_rate
        if t > 0 and regime.any():
            k = int(regime.sum())
            self.persistent[regime] = rng.normal(0.0, risk.persistent_sd, k)
            self.firm_type[regime] = self._draw_type(self.type_logit[regime])
        age_years = np.maximum(m0 - self.established, 0) / 365.25
        self.logit = (self.static_logit + self.type_shift[self.firm_type] + self.persistent
                      + self.drift
                      + risk.young_firm_effect * np.exp(-age_years / risk.young_firm_scale_years))
        self.risk = np.minimum(sigmoid(self.logit), risk.max_risk)

    def _update_violations(self, t: int, m0: int, m1: int) -> None:
        rng, n = self.rng, self.n
        u = rng.random(n)
        if t == 0:
            self.violating = u < self.risk
        else:
            entry, exit_ = violation_rates(self.risk, self.world.risk.switch_rate)
            kept = self.violating & ~self.corrected
            self.violating = np.where(kept, u >= exit_, u < entry)
        # Digital-economy problems are the violation episodes of digital firms.
        ended_by_fix = self.problem_open & self.corrected
        ended = self.problem_open & (ended_by_fix | ~self.violating)
        if ended.any():
            idx = np.flatnonzero(ended)
            natural = self._days_in(t, idx)
            end = np.where(ended_by_fix[idx], self.correction_day[idx], natural)
            end = np.maximum(end, self.problem_start[idx])
            self.problems.add(firm=idx + self.lo, start=self.problem_start[idx], end=end,
                              serious=self.problem_serious[idx])
            self.problem_open[idx] = False
        exists = (self.established < m1) & (self.closed_day >= m0)
        starting = self.digital & self.violating & ~self.problem_open & exists
        if starting.any():
            idx = np.flatnonzero(starting)
            s = self.world.signals
            self.problem_open[idx] = True
            self.problem_start[idx] = self._days_in(t, idx)
            self.problem_serious[idx] = rng.random(len(idx)) < (
                s.digital_serious_problem_base + s.digital_serious_problem_risk * self.risk[idx])
        self.corrected[:] = False

    # ------------------------------------------------------------------ campaigns
    def _draw_campaign(self, design: CampaignDesign, year: int, t: int, m0: int) -> None:
        """Stratified draw with randomised rounding: every frame member of stratum s is
        drawn with probability exactly ratio_s, which is what the row records."""
        first_year, _ = self.timeline.calendar_month(0)
        window_start_year = first_year if self.timeline.calendar_month(0)[1] <= design.month \
            else first_year + 1
        class_driven = (design.class_ratios is not None
                        and year - window_start_year >= design.uniform_years)
        frame = (self.established <= m0) & (self.closed_day > m0)
        if design.frame_sections:
            frame &= np.isin(self.section, np.array(design.frame_sections))
        if design.exclude_individual:
            frame &= ~self.individual
        ratios: tuple[float, ...] = (design.uniform_ratio,)
        names: tuple[str, ...] = ("all",)
        strata = np.zeros(self.n, dtype=np.int64)
        if class_driven and design.class_ratios is not None:
            strata = self._crude_class(m0)
            ratios = design.class_ratios
            names = ("A", "B", "C", "D")
        cid = campaign_id(design, year)
        campaign_code = campaign_number(self.world.campaigns.index(design), year)
        dept = DEPARTMENT[design.department]
        combos = CHECK_ITEM_COMBOS[design.department]
        for s, (ratio, name) in enumerate(zip(ratios, names, strict=True)):
            members = np.flatnonzero(frame & (strata == s))
            expected = ratio * len(members)
            size = int(np.floor(expected)) + int(self.rng.random() < expected - np.floor(expected))
            chosen = np.sort(self.rng.choice(members, size=size, replace=False)) if size else \
                np.zeros(0, dtype=np.int64)
            self.cells.append(CampaignCell(cid, design.department, m0, name, self.chunk,
                                           len(members), size, ratio))
            if size == 0:
                continue
            day = m0 + self._between(5, 75, size)
            self.pending_until[chosen] = np.maximum(self.pending_until[chosen], day)
            self.queue.push(
                self.timeline.month_index(day), firm=chosen, day=day,
                department=np.full(size, dept), campaign=np.full(size, campaign_code),
                items=self.rng.integers(0, len(combos), size),
                source=np.full(size, SOURCE["random_draw"]), probability=np.full(size, ratio))

    def _crude_class(self, day: int) -> np.ndarray:
        """The district's pre-model points rule, from records known before `day`."""
        rule: CrudeClassRule = self.world.crude_class
        ev = self.events.columns()
        known = ev["known"] < day
        firm = ev["firm"] - self.lo
        kind = ev["kind"]

        def has(mask: np.ndarray) -> np.ndarray:
            return np.bincount(firm[mask], minlength=self.n) > 0

        penalty = has(known & (kind == EVENT["penalty"]) & (ev["known"] >= day - 2 * YEAR))
        complaint = has(known & (kind == EVENT["complaint"]) & (ev["known"] >= day - YEAR))
        bad_tax = has(known & (kind == EVENT["tax_grade"]) & (ev["known"] >= day - 13 * 31)
                      & np.isin(ev["grade"], [GRADE["C"], GRADE["D"]]))
        late = has(known & (kind == EVENT["abnormal_list_in"]) & (ev["known"] >= day - YEAR)
                   & (ev["item"] == ITEM[_reason_code(NAR)]))
        listed = ((self.entry + 4 <= day) & (self.exit > day)).any(axis=0)
        serious = self.serious_day + 10 <= day
        points = (rule.abnormal * listed + rule.penalty * penalty + rule.complaint * complaint
                  + rule.bad_tax_grade * bad_tax + rule.serious * serious
                  + rule.late_report * late)
        return np.searchsorted(np.array(rule.cutoffs), points, side="right")

    # ------------------------------------------------------------------ yearly records
    def _annual_reports(self, t: int, year: int, exists: np.ndarray) -> None:
        s, rng = self.world.signals, self.rng
        jan1 = day_of_year(year, 1, 1)
        jul1 = day_of_year(year, 7, 1)
        idx = np.flatnonzero(exists & (self.established < jan1) & (self.closed_day > jan1))
        p = self.risk[idx]
        on_time = rng.random(len(idx)) < sigmoid(
            s.annual_report_on_time_intercept + s.annual_report_on_time_risk * p)
        timely_day = jan1 + np.floor(rng.beta(1.2 + 2.0 * p, 1.8) * 180).astype(np.int64)
        late_day = jul1 + 20 + rng.exponential(s.annual_report_late_mean_days, len(idx)).astype(
            np.int64)
        files_late = rng.random(len(idx)) < s.annual_report_late_filing
        filed = np.where(on_time, timely_day, np.where(files_late, late_day, NO_DAY))
        has_report = filed < NO_DAY
        rep = idx[has_report]
        self._event("annual_report", rep, filed[has_report],
                    filed[has_report] + self._between(0, 3, len(rep)), report_year=year - 1)
        # Not filed by 30 June: listed within 10 working days, removed after filing.
        currently = (self.entry[NAR, idx] < NO_DAY) & (self.exit[NAR, idx] > jan1)
        newly = ~on_time & ~currently
        entry_day = jul1 + self._between(1, 14, int(newly.sum()))
        self.entry[NAR, idx[newly]] = entry_day
        self.exit[NAR, idx[newly]] = np.where(
            has_report[newly], filed[newly] + self._between(3, 20, int(newly.sum())), NO_DAY)
        cleared = currently & has_report
        self.exit[NAR, idx[cleared]] = np.minimum(
            self.exit[NAR, idx[cleared]], filed[cleared] + self._between(3, 20, int(cleared.sum())))

    def _tax_grades(self, t: int, year: int, exists: np.ndarray) -> None:
        s, rng = self.world.signals, self.rng
        m0 = int(self.timeline.month_start[t])
        idx = np.flatnonzero(exists & ~self.individual & (self.established < m0)
                             & (self.closed_day > m0 + 25))
        score = (s.tax_score_mean + s.tax_score_risk * self.risk[idx]
                 + s.tax_score_sd * rng.normal(size=len(idx))
                 + s.tax_score_size * np.log10(1.0 + self.employees[idx]))
        grade = np.select([score >= 90, score >= 70, score >= 40],
                          [GRADE["A"], GRADE["B"], GRADE["C"]], GRADE["D"])
        new_or_idle = (self.established[idx] >= day_of_year(year - 1, 1, 1)) | self.no_revenue[idx]
        grade = np.where(new_or_idle, GRADE["M"], grade)
        day = m0 + self._between(0, 20, len(idx))
        self._event("tax_grade", idx, day, day, grade=grade)

    # ------------------------------------------------------------------ monthly signals
    def _complaints(self, t: int, exists: np.ndarray) -> None:
        s, rng = self.world.signals, self.rng
        rate = np.where(self.consumer, s.complaint_base_consumer, s.complaint_base_other) + \
            self.violating * np.where(self.consumer, s.complaint_violating_consumer,
                                      s.complaint_violating_other)
        count = np.where(exists, rng.poisson(rate), 0)
        idx = np.repeat(np.arange(self.n), count)
        if len(idx) == 0:
            return
        day = self._days_in(t, idx)
        known = day + self._between(*s.complaint_known_days, len(idx))
        kind = rng.integers(0, len(COMPLAINT_ITEMS), len(idx))
        self._event("complaint", idx, day, known, item=COMPLAINT_ITEMS[kind], detail=kind)
        first = np.unique(idx, return_index=True)[1]
        checked = first[rng.random(len(first)) < s.complaint_inspection_share]
        self._schedule(idx[checked], known[checked], s.complaint_inspection_days, "complaint")

    def _schedule(self, idx: np.ndarray, after: np.ndarray, delay: tuple[int, int],
                  source: str) -> None:
        if len(idx) == 0:
            return
        day = after + self._between(*delay, len(idx))
        combos = CHECK_ITEM_COMBOS["market"]
        self.queue.push(self.timeline.month_index(day), firm=idx, day=day,
                        department=np.full(len(idx), DEPARTMENT["market"]),
                        campaign=np.full(len(idx), -1),
                        items=self.rng.integers(0, len(combos), len(idx)),
                        source=np.full(len(idx), SOURCE[source]),
                        probability=np.full(len(idx), np.nan))

    def _leads_and_opinion(self, t: int, exists: np.ndarray) -> None:
        s, rng, n = self.world.signals, self.rng, self.n
        lead = exists & (rng.random(n) < s.case_lead_base + s.case_lead_violating * self.violating)
        idx = np.flatnonzero(lead)
        day = self._days_in(t, idx)
        known = day + self._between(0, 15, len(idx))
        self._event("case_lead", idx, day, known,
                    detail=CASE_LEAD_DETAIL_OFFSET + rng.integers(0, 3, len(idx)))
        followed = rng.random(len(idx)) < s.case_lead_inspection_share
        self._schedule(idx[followed], known[followed], (3, 20), "targeted")

        problem = self.problem_open & self.digital
        opinion_rate = np.where(
            self.digital,
            s.digital_opinion_base + problem * s.digital_opinion_problem
            * np.where(self.problem_serious, 1.5, 1.0),
            np.where(self.consumer, s.opinion_base + s.opinion_violating * self.violating, 0.0))
        idx = np.flatnonzero(exists & (rng.random(n) < opinion_rate))
        day = self._days_in(t, idx)
        from_problem = problem[idx]
        day = np.where(from_problem, np.maximum(day, self.problem_start[idx]), day)
        severity = np.where(
            from_problem & self.problem_serious[idx] & (rng.random(len(idx)) < 0.6),
            SEVERITY["serious"],
            np.where(rng.random(len(idx)) < 0.5, SEVERITY["general"], SEVERITY["minor"]))
        self._event("public_opinion", idx, day, day + self._between(0, 2, len(idx)),
                    severity=severity, detail=OPINION_DETAIL_OFFSET + rng.integers(0, 3, len(idx)))

        hits = np.where(exists & self.digital,
                        rng.poisson(s.digital_monitoring_base
                                    + problem * s.digital_monitoring_problem), 0)
        idx = np.repeat(np.arange(n), hits)
        if len(idx) == 0:
            return
        day = self._days_in(t, idx)
        from_problem = problem[idx] & (rng.random(len(idx)) < s.digital_monitoring_problem / (
            s.digital_monitoring_problem + s.digital_monitoring_base))
        day = np.where(from_problem, np.maximum(day, self.problem_start[idx]), day)
        u = rng.random(len(idx))
        severity = np.where(
            from_problem,
            np.where(self.problem_serious[idx] & (u < 0.6), SEVERITY["serious"],
                     np.where(u < 0.85, SEVERITY["general"], SEVERITY["minor"])),
            np.where(u < 0.8, SEVERITY["minor"], SEVERITY["general"]))
        code = rng.integers(0, len(MONITORING_ITEMS), len(idx))
        known = day + self._between(0, 2, len(idx))
        self._event("monitoring_hit", idx, day, known, severity=severity,
                    item=MONITORING_ITEMS[code], detail=MONITORING_DETAIL_OFFSET + code)
        serious = severity == SEVERITY["serious"]
        triggered = serious & (rng.random(len(idx)) < s.digital_trigger_inspection_share)
        self._schedule(idx[triggered], known[triggered], (3, 15), "trigger")

    def _registration_changes(self, t: int, exists: np.ndarray) -> None:
        s, rng, n = self.world.signals, self.rng, self.n
        change = exists & (rng.random(n) < s.registration_change_base
                           + s.registration_change_risk * self.risk)
        idx = np.flatnonzero(change)
        if len(idx) == 0:
            return
        day = self._days_in(t, idx)
        # Risky firms change legal representative and address; others mostly scope/capital.
        risky_change = rng.random(len(idx)) < 0.3 + 0.6 * self.risk[idx]
        code = np.where(risky_change, rng.integers(0, 2, len(idx)), rng.integers(2, 5, len(idx)))
        self._event("registration_change", idx, day, day + self._between(0, 10, len(idx)),
                    item=CHANGE_ITEMS[code])

    def _unreachable_checks(self, t: int, exists: np.ndarray) -> None:
        s, rng, n = self.world.signals, self.rng, self.n
        m0 = int(self.timeline.month_start[t])
        free = self.exit[UNR] <= m0
        free |= self.entry[UNR] == NO_DAY
        hit = exists & free & (rng.random(n) < s.unreachable_base + s.unreachable_risk * self.risk)
        idx = np.flatnonzero(hit)
        self._list(UNR, idx, self._days_in(t, idx))

    def _list(self, reason: int, idx: np.ndarray, day: np.ndarray) -> None:
        """Schedule an abnormal-list entry (and its eventual removal) for firms `idx`."""
        if len(idx) == 0:
            return
        s, rng = self.world.signals, self.rng
        free = (self.entry[reason, idx] == NO_DAY) | (self.exit[reason, idx] <= day)
        idx, day = idx[free], day[free]
        rate = s.unreachable_exit_rate if reason == UNR else s.disclosure_exit_rate
        leaves = rng.random(len(idx)) < (0.6 if reason == UNR else 0.85)
        stay = rng.geometric(rate, len(idx)) * 30 + rng.integers(0, 30, len(idx))
        self.entry[reason, idx] = day
        self.exit[reason, idx] = np.where(leaves, day + stay, NO_DAY)

    # ------------------------------------------------------------------ inspections
    def _inspect(self, t: int) -> None:
        batch = self.queue.pop(t)
        if batch is None:
            return
        s, rng = self.world.signals, self.rng
        firm, day = batch["firm"], batch["day"]
        alive = self.closed_day[firm] > day
        batch = {k: v[alive] for k, v in batch.items()}
        firm, day = batch["firm"], batch["day"]
        k = len(firm)
        found = self.violating[firm] & (rng.random(k) < s.detection)
        found_kind = rng.choice(4, size=k, p=np.array(s.found_outcome_shares))
        minor = ~found & (rng.random(k) < s.minor_lapse)
        outcome = np.where(found, FOUND_OUTCOMES[found_kind],
                           np.where(minor, OUTCOME["order_to_correct"], OUTCOME["no_problem"]))
        violation = np.where(found, VIOLATION_ITEMS[rng.integers(0, len(VIOLATION_ITEMS), k)],
                             np.where(minor, EXEMPT_ITEMS[rng.integers(0, len(EXEMPT_ITEMS), k)],
                                      -1))
        known = day + self._between(*s.result_recording_days, k)
        self.inspections.add(firm=firm + self.lo, day=day, known=known,
                             department=batch["department"], campaign=batch["campaign"],
                             items=batch["items"], source=batch["source"],
                             probability=batch["probability"], outcome=outcome,
                             violation=violation)
        self.corrected[firm[found]] = True
        self.correction_day[firm[found]] = day[found]
        self._penalties(firm, day, found, outcome, violation)
        unreachable = found & (outcome == OUTCOME["unreachable"])
        self._list(UNR, firm[unreachable], known[unreachable] + self._between(
            1, 10, int(unreachable.sum())))
        disclosure = found & (outcome == OUTCOME["disclosure_failure"])
        self._list(DSC, firm[disclosure], known[disclosure] + self._between(
            1, 10, int(disclosure.sum())))

    def _penalties(self, firm: np.ndarray, day: np.ndarray, found: np.ndarray,
                   outcome: np.ndarray, violation: np.ndarray) -> None:
        s, rng = self.world.signals, self.rng
        k = len(firm)
        chance = np.where(outcome == OUTCOME["case_opened"], s.penalty_after_case,
                          np.where(outcome == OUTCOME["order_to_correct"],
                                   s.penalty_after_order, 0.0))
        penalised = found & (rng.random(k) < chance)
        idx = np.flatnonzero(penalised)
        if len(idx) == 0:
            return
        decided = day[idx] + self._between(*s.penalty_decision_days, len(idx))
        known = decided + self._between(*s.publication_days, len(idx))
        serious = rng.random(len(idx)) < s.serious_penalty_share
        amount = np.round(np.exp(rng.normal(np.log(5000.0), 1.1, len(idx)))
                          * np.where(serious, 10.0, 1.0), -1)
        self._event("penalty", firm[idx], decided, known, item=violation[idx],
                    severity=np.where(serious, SEVERITY["serious"], SEVERITY["general"]),
                    amount=amount)
        listed = serious & (rng.random(len(idx)) < s.serious_case_listing)
        listed &= self.serious_day[firm[idx]] == NO_DAY
        who = firm[idx][listed]
        who, first = np.unique(who, return_index=True)
        when = decided[listed][first] + self._between(10, 40, len(who))
        self.serious_day[who] = when
        self._event("serious_dishonesty_in", who, when, when + self._between(0, 5, len(who)),
                    item=ITEM[SERIOUS_DISHONESTY_CODES["serious_case"]])

    # ------------------------------------------------------------------ lists, closures
    def _legacy_listings(self) -> None:
        """Firms already on the abnormal list when the export window opens."""
        p = self.world.registry
        start = self.timeline.start_day
        old = self.established < start - 2 * YEAR
        chance = p.legacy_listing_rate + p.legacy_listing_rate_risk * sigmoid(
            self.static_logit + self.type_shift[self.firm_type])
        idx = np.flatnonzero(old & (self.rng.random(self.n) < chance))
        entry = start - self._between(30, 4 * YEAR, len(idx))
        entry = np.maximum(entry, self.established[idx] + YEAR)
        leaves = self.rng.random(len(idx)) < 0.5
        self.entry[NAR, idx] = entry
        self.exit[NAR, idx] = np.where(
            leaves, start + self.rng.exponential(300.0, len(idx)).astype(np.int64), NO_DAY)
        before = entry < start
        self._event("abnormal_list_in", idx[before], entry[before], entry[before],
                    item=ABNORMAL_ITEMS[NAR])
        mark = entry + 3 * YEAR
        early = (mark < start) & (self.exit[NAR, idx] > mark)
        self.serious_day[idx[early]] = mark[early]
        self._event("serious_dishonesty_in", idx[early], mark[early], mark[early],
                    item=ITEM[SERIOUS_DISHONESTY_CODES["abnormal_three_years"]])

    def _list_transitions(self, t: int, m0: int, m1: int) -> None:
        for reason in range(3):
            entry, exit_ = self.entry[reason], self.exit[reason]
            entering = np.flatnonzero((entry >= m0) & (entry < m1))
            self._event("abnormal_list_in", entering, entry[entering],
                        entry[entering] + self._between(0, 3, len(entering)),
                        item=ABNORMAL_ITEMS[reason])
            leaving = np.flatnonzero((exit_ >= m0) & (exit_ < m1) & (entry < exit_))
            self._event("abnormal_list_out", leaving, exit_[leaving],
                        exit_[leaving] + self._between(0, 3, len(leaving)),
                        item=ABNORMAL_ITEMS[reason])
            mark = entry + 3 * YEAR
            due = np.flatnonzero((entry < NO_DAY) & (mark >= m0) & (mark < m1)
                                 & (exit_ > mark) & (self.serious_day == NO_DAY))
            when = mark[due] + self._between(0, 10, len(due))
            self.serious_day[due] = when
            self._event("serious_dishonesty_in", due, when, when + self._between(0, 5, len(due)),
                        item=ITEM[SERIOUS_DISHONESTY_CODES["abnormal_three_years"]])
        # Removal from the serious list follows removal from the abnormal list.
        out = np.flatnonzero((self.serious_day < m0) & self._just_cleared(m0, m1))
        when = m1 + self._between(30, 120, len(out))
        self._event("serious_dishonesty_out", out, when, when)
        self.serious_day[out] = NO_DAY - 1

    def _just_cleared(self, m0: int, m1: int) -> np.ndarray:
        left = ((self.exit >= m0) & (self.exit < m1)).any(axis=0)
        still = ((self.entry <= m1) & (self.exit >= m1)).any(axis=0)
        return np.asarray(left & ~still, dtype=bool)

    def _closures(self, t: int, m0: int, m1: int, exists: np.ndarray) -> None:
        p, rng, n = self.world.registry, self.rng, self.n
        listed = (self.entry <= m0) & (self.exit > m0)
        listed_since = np.where(listed, self.entry, NO_DAY).min(axis=0)
        long_listed = m0 - listed_since >= p.revoke_after_listed_days
        candidates = (exists & (self.closed_day == NO_DAY) & (self.pending_until < m0)
                      & (self.established < m0 - 90))
        cancel = rng.random(n) < p.cancel_rate + p.cancel_rate_risk * self.risk
        revoke = long_listed & (rng.random(n) < p.revoke_rate_long_listed)
        closing = np.flatnonzero(candidates & (cancel | revoke))
        self.closed_day[closing] = rng.integers(m0 + 1, m1, len(closing))
        self.revoked[closing] = revoke[closing]

    def _finish(self) -> ChunkResult:
        open_ = np.flatnonzero(self.problem_open)
        self.problems.add(firm=open_ + self.lo, start=self.problem_start[open_],
                          end=np.full(len(open_), NO_DAY), serious=self.problem_serious[open_])
        mean_logit = np.where(self.logit_months > 0,
                              self.logit_sum / np.maximum(self.logit_months, 1), self.logit)
        return ChunkResult(
            events=self.events.columns(), inspections=self.inspections.columns(),
            monthly=_firm_major(self.monthly.columns()), problems=self.problems.columns(),
            campaign_cells=self.cells, closed_day=self.closed_day, revoked=self.revoked,
            final_risk=self.risk.copy(), mean_logit=mean_logit.astype(np.float32),
        )


def _firm_major(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Monthly rows ordered by firm then month (chunks then concatenate in global order)."""
    order = np.lexsort((columns["month"], columns["firm"]))
    return {name: values[order] for name, values in columns.items()}


def _reason_code(reason: int) -> str:
    return ABNORMAL_REASONS[REASONS[reason]]

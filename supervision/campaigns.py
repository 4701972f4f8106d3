"""Campaign specs and sampling plans for "双随机、一公开" random inspections.

A campaign names a department, its check items (general or key), a scope (whole roster or a
targeted roster filtered by entity type, scale, industry, street) and a period, and either a
named ratio set from the policy or a total budget split by class weights. `plan_campaign` turns
spec + roster + policy (+ this year's draw history) into a `SamplingFrame`: every eligible firm
with its stratum, and per stratum the population N, the ratio and the sample size n. The draw
(`supervision.draw`) then picks n firms per stratum, so each firm's inclusion probability is
exactly n / N.

Strata (one per firm, in this order of precedence):
1. `rule:<name>` — the firm meets a targeted rule (定向, e.g. registered capital ≥ 1亿 and zero
   employees → 100 %); the highest-ratio matching rule wins, ties by policy order;
2. `undisturbed` — a tagged digital-economy firm with no open trigger case (无事不扰): floor only;
3. its credit-risk class (`A` … `D`): the ratio set's ratio, raised to the floor (不免抽) and, for
   general items, capped.
"""

from __future__ import annotations

import datetime as dt
import heapq
import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from features.contract import DEPARTMENTS, ENTITY_TYPES, LIST_SEPARATOR
from supervision.sampling_policy import Condition, SamplingPolicy, TargetedRule

ItemKind = Literal["general", "key"]
UNDISTURBED_STRATUM = "undisturbed"
RULE_PREFIX = "rule:"
ADDRESS_COUNT_COLUMN = "entities_at_address"


class CampaignError(ValueError):
    """A user mistake in a campaign spec, roster or budget; the message is bilingual."""


class Scope(BaseModel):
    """Which part of the roster a campaign covers; every empty criterion means "all" (不定向)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    entity_types: list[str] = Field(default_factory=list)
    industry_prefixes: list[str] = Field(default_factory=list)
    streets: list[str] = Field(default_factory=list)
    min_employees: int | None = Field(default=None, ge=0)
    max_employees: int | None = Field(default=None, ge=0)
    min_registered_capital: float | None = Field(default=None, ge=0)
    max_registered_capital: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _known_entity_types(self) -> Scope:
        unknown = sorted(set(self.entity_types) - set(ENTITY_TYPES))
        if unknown:
            raise ValueError(f"unknown entity_types {unknown}; allowed: {sorted(ENTITY_TYPES)}")
        return self


class CampaignSpec(BaseModel):
    """What a department plans to check, on whom, when, and how intensely."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    campaign_id: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    department: str
    title: str = ""
    check_items: list[str] = Field(min_length=1)
    item_kind: ItemKind
    scope: Scope = Field(default_factory=Scope)
    period_start: dt.date
    period_end: dt.date
    ratio_set: str | None = None
    budget: int | None = Field(default=None, ge=1)
    targeted_rules: list[str] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> CampaignSpec:
        if self.department not in DEPARTMENTS:
            raise ValueError(
                f"unknown department {self.department!r}; allowed: {list(DEPARTMENTS)}"
            )
        if self.period_end < self.period_start:
            raise ValueError("period_end must not be before period_start")
        if self.ratio_set is not None and self.budget is not None:
            raise ValueError("give either ratio_set or budget, not both")
        if any(not item or LIST_SEPARATOR in item for item in self.check_items):
            raise ValueError(
                f"check item codes must be non-empty and contain no {LIST_SEPARATOR!r}"
            )
        return self

    @property
    def year(self) -> int:
        return self.period_start.year


def spec_to_json(spec: CampaignSpec) -> str:
    return spec.model_dump_json()


def spec_from_json(text: str) -> CampaignSpec:
    return CampaignSpec.model_validate_json(text)


@dataclass(frozen=True)
class SamplingFrame:
    """The eligible roster split into strata, with the sample size of each stratum.

    `units`: uscc, class, stratum — sorted by uscc. `strata`: stratum, population,
    configured_ratio, ratio (= sample / population), sample, basis (why this ratio).
    `excluded`: firms left out because they were already drawn this year for the same items.
    """

    units: pd.DataFrame
    strata: pd.DataFrame
    excluded: tuple[str, ...]

    @property
    def sample_sizes(self) -> dict[str, int]:
        return dict(zip(self.strata["stratum"], self.strata["sample"].astype(int), strict=True))


def as_list(value: object) -> list[str]:
    """A contract "list" cell (';'-joined text, a list, or missing) as a list of codes."""
    if value is None:
        return []
    if isinstance(value, (list, tuple, set, np.ndarray)):
        return [str(v).strip() for v in value if str(v).strip()]
    if isinstance(value, float) and np.isnan(value):
        return []
    if value is pd.NA:
        return []
    return [part.strip() for part in str(value).split(LIST_SEPARATOR) if part.strip()]


def round_half_up(ratio: float, population: int) -> int:
    """ratio × population rounded half up, in decimal arithmetic (ratio as its shortest repr).

    Decimal keeps e.g. 0.05 × 30 = 1.5 exactly at 1.5 → 2, where binary floats could give 1.
    """
    product = Decimal(repr(float(ratio))) * Decimal(int(population))
    return int(product.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def normalize_roster(roster: pd.DataFrame, policy: SamplingPolicy) -> pd.DataFrame:
    """The roster with a `uscc` column, checked classes and derived columns.

    Accepts uscc as the index or as a column. Adds `digital_undisturbed` (False when absent)
    and `entities_at_address` (firms registered at the same address) when addresses are given.
    """
    frame = roster.copy()
    if "uscc" not in frame.columns:
        frame = frame.rename_axis("uscc").reset_index()
    frame["uscc"] = frame["uscc"].astype(str)
    duplicated = frame.loc[frame["uscc"].duplicated(), "uscc"].tolist()
    if duplicated:
        raise CampaignError(
            f"名录库中统一社会信用代码重复 / roster has duplicate uscc: {duplicated[:5]}"
        )
    if "class" not in frame.columns:
        raise CampaignError("名录库缺少风险分类列 / roster has no column 'class'")
    frame["class"] = frame["class"].astype(str)
    bad = frame.loc[~frame["class"].isin(policy.classes)]
    if len(bad):
        first = bad.iloc[0]
        raise CampaignError(
            f"风险分类无效 / invalid class in roster: row uscc={first['uscc']}, column 'class', "
            f"value {first['class']!r}, allowed {policy.classes} ({len(bad)} rows)"
        )
    if "digital_undisturbed" in frame.columns:
        undisturbed = frame["digital_undisturbed"].astype("boolean").fillna(False)
        frame["digital_undisturbed"] = undisturbed.astype(bool)
    else:
        frame["digital_undisturbed"] = False
    if "registered_address" in frame.columns and ADDRESS_COUNT_COLUMN not in frame.columns:
        address = frame["registered_address"].astype("string").str.strip()
        frame[ADDRESS_COUNT_COLUMN] = address.map(address.value_counts()).fillna(1).astype(int)
    return frame.sort_values("uscc", kind="mergesort").reset_index(drop=True)


def _require_columns(frame: pd.DataFrame, columns: Iterable[str], why: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise CampaignError(f"名录库缺少列 / roster lacks columns {missing} needed for {why}")


def scope_mask(frame: pd.DataFrame, scope: Scope) -> pd.Series:
    """Rows of a normalized roster inside the campaign scope (定向 filters)."""
    mask = pd.Series(True, index=frame.index)
    if scope.entity_types:
        _require_columns(frame, ["entity_type"], "scope.entity_types")
        mask &= frame["entity_type"].astype(str).isin(scope.entity_types)
    if scope.industry_prefixes:
        _require_columns(frame, ["industry_code"], "scope.industry_prefixes")
        codes = frame["industry_code"].astype("string").fillna("")
        mask &= codes.str.startswith(tuple(scope.industry_prefixes)).astype(bool)
    if scope.streets:
        _require_columns(frame, ["street"], "scope.streets")
        mask &= frame["street"].astype(str).isin(scope.streets)
    for column, low, high in (
        ("employees", scope.min_employees, scope.max_employees),
        ("registered_capital", scope.min_registered_capital, scope.max_registered_capital),
    ):
        if low is None and high is None:
            continue
        _require_columns(frame, [column], f"scope on {column}")
        values = pd.to_numeric(frame[column], errors="coerce")
        if low is not None:
            mask &= (values >= low).fillna(False).astype(bool)
        if high is not None:
            mask &= (values <= high).fillna(False).astype(bool)
    return mask


_COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "ge": operator.ge, "gt": operator.gt, "le": operator.le,
    "lt": operator.lt, "eq": operator.eq, "ne": operator.ne,
}


def condition_mask(frame: pd.DataFrame, condition: Condition) -> pd.Series:
    """Rows meeting one targeted-rule condition; a missing value never meets a comparison."""
    _require_columns(frame, [condition.column], f"targeted rule condition {condition}")
    column = frame[condition.column]
    if condition.op == "is_missing":
        return column.isna()
    if condition.op in ("in", "not_in"):
        values = [str(v) for v in condition.value] if isinstance(condition.value, list) else []
        inside = column.astype("string").isin(values).fillna(False).astype(bool)
        return (inside if condition.op == "in" else ~inside) & column.notna()
    value = condition.value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        left: pd.Series = pd.to_numeric(column, errors="coerce")
    elif isinstance(value, bool):
        left = column.astype("boolean")
    else:
        left = column.astype("string")
    result = _COMPARISONS[condition.op](left, value)
    return pd.Series(result, index=frame.index).fillna(False).astype(bool) & column.notna()


def already_drawn(history: pd.DataFrame | None, spec: CampaignSpec) -> tuple[str, ...]:
    """Firms drawn at random this calendar year for at least one of the campaign's items."""
    if history is None or history.empty:
        return ()
    missing = [c for c in ("uscc", "inspection_date", "check_items") if c not in history.columns]
    if missing:
        raise CampaignError(f"检查记录缺少列 / inspection history lacks columns {missing}")
    rows = history
    if "source" in rows.columns:
        rows = rows.loc[rows["source"].astype(str) == "random_draw"]
    dates = pd.to_datetime(rows["inspection_date"], errors="coerce")
    rows = rows.loc[(dates.dt.year == spec.year).fillna(False).astype(bool)]
    items = set(spec.check_items)
    overlap = rows["check_items"].map(lambda cell: bool(items.intersection(as_list(cell))))
    return tuple(sorted(set(rows.loc[overlap.astype(bool), "uscc"].astype(str))))


def _active_rules(spec: CampaignSpec, policy: SamplingPolicy) -> list[TargetedRule]:
    if spec.targeted_rules is None:
        return [r for r in policy.targeted_rules if r.applies_by_default]
    try:
        return [policy.rule(name) for name in spec.targeted_rules]
    except KeyError as exc:
        raise CampaignError(str(exc.args[0])) from exc


def assign_strata(frame: pd.DataFrame, rules: Sequence[TargetedRule]) -> pd.Series:
    """The stratum of each eligible firm: targeted rule, else undisturbed, else its class."""
    stratum = frame["class"].astype(str).where(~frame["digital_undisturbed"], UNDISTURBED_STRATUM)
    best_ratio = pd.Series(-1.0, index=frame.index)
    chosen = pd.Series("", index=frame.index)
    for rule in rules:
        hit = pd.Series(True, index=frame.index)
        for condition in rule.conditions:
            hit &= condition_mask(frame, condition)
        better = hit & (rule.ratio > best_ratio)
        chosen = chosen.where(~better, RULE_PREFIX + rule.name)
        best_ratio = best_ratio.where(~better, rule.ratio)
    return chosen.where(chosen != "", stratum)


def _ratio_set(spec: CampaignSpec, policy: SamplingPolicy) -> tuple[str, dict[str, float]]:
    name = spec.ratio_set or policy.default_ratio_set
    if name not in policy.ratio_sets:
        raise CampaignError(
            f"比例方案不存在 / no ratio set {name!r}; known: {sorted(policy.ratio_sets)}"
        )
    return name, policy.ratio_sets[name]


def _sample_size(ratio: float, population: int, policy: SamplingPolicy) -> int:
    """round-half-up(ratio × N), at most N, and at least 1 of a non-empty stratum (不免抽)."""
    n = min(round_half_up(ratio, population), population)
    if policy.min_one_per_stratum and population > 0 and n == 0:
        n = 1
    return n


def class_bounds(population: int, spec: CampaignSpec, policy: SamplingPolicy) -> tuple[int, int]:
    """Smallest and largest sample of a class stratum: the floor and, for general items, the cap.

    The cap rounds down (a cap is a maximum); the floor wins if the two cross on tiny strata.
    """
    low = _sample_size(policy.floor_ratio, population, policy)
    if spec.item_kind == "key":
        return low, population
    cap = Decimal(repr(policy.general_items_max_ratio)) * Decimal(population)
    return low, max(low, int(cap.to_integral_value(rounding=ROUND_FLOOR)))


def _split_budget(
    budget: int,
    populations: dict[str, int],
    spec: CampaignSpec,
    policy: SamplingPolicy,
) -> dict[str, int]:
    """Class sample sizes summing to `budget`, ratios proportional to the class weights.

    Starts every class at its floor, then hands out the remaining units one at a time by
    highest averages (Sainte-Laguë: priority weight × N / (n + ½)), never above the cap.
    """
    bounds = {c: class_bounds(n, spec, policy) for c, n in populations.items()}
    least = sum(lo for lo, _ in bounds.values())
    most = sum(hi for _, hi in bounds.values())
    if not least <= budget <= most:
        raise CampaignError(
            f"分类抽查数 {budget} 不可行: 保底至少 {least}, 上限至多 {most} / "
            f"{budget} draws for the class strata is infeasible: floors need {least}, "
            f"caps allow at most {most}"
        )
    sizes = {c: lo for c, (lo, _) in bounds.items()}
    order = {c: i for i, c in enumerate(policy.classes)}

    def priority(cls: str) -> float:
        return -policy.class_weights[cls] * populations[cls] / (sizes[cls] + 0.5)

    queue = [(priority(c), order[c], c) for c in populations if sizes[c] < bounds[c][1]]
    heapq.heapify(queue)
    for _ in range(budget - least):
        _, rank, cls = heapq.heappop(queue)
        sizes[cls] += 1
        if sizes[cls] < bounds[cls][1]:
            heapq.heappush(queue, (priority(cls), rank, cls))
    return sizes


def _stratum_rows(
    populations: dict[str, int],
    spec: CampaignSpec,
    policy: SamplingPolicy,
    rules: Sequence[TargetedRule],
) -> list[dict[str, object]]:
    """Configured ratio, sample size and basis of every non-empty stratum."""
    rule_by_stratum = {RULE_PREFIX + r.name: r for r in rules}
    rows: dict[str, dict[str, Any]] = {}
    for stratum, population in populations.items():
        if stratum in rule_by_stratum:
            rule = rule_by_stratum[stratum]
            rows[stratum] = {"configured_ratio": rule.ratio, "basis": f"targeted_rule:{rule.name}",
                             "sample": _sample_size(rule.ratio, population, policy)}
        elif stratum == UNDISTURBED_STRATUM:
            rows[stratum] = {"configured_ratio": policy.floor_ratio, "basis": "floor:undisturbed",
                             "sample": _sample_size(policy.floor_ratio, population, policy)}
    class_pops = {s: n for s, n in populations.items() if s in policy.classes}
    if spec.budget is not None:
        fixed = sum(int(r["sample"]) for r in rows.values())
        if spec.budget < fixed:
            raise CampaignError(
                f"抽查总量 {spec.budget} 小于定向及无事不扰层的抽查数 {fixed} / budget "
                f"{spec.budget} is below the {fixed} draws of targeted and undisturbed strata"
            )
        sizes = _split_budget(spec.budget - fixed, class_pops, spec, policy)
        for cls, n in sizes.items():
            rows[cls] = {"configured_ratio": float("nan"), "basis": f"budget:{spec.budget}",
                         "sample": n}
    else:
        name, ratios = _ratio_set(spec, policy)
        for cls, population in class_pops.items():
            low, high = class_bounds(population, spec, policy)
            raw = min(round_half_up(ratios[cls], population), population)
            sample = min(max(raw, low), high)
            basis = ("floor" if sample > raw else
                     "general_items_cap" if sample < raw else f"ratio_set:{name}")
            rows[cls] = {"configured_ratio": ratios[cls], "basis": basis, "sample": sample}
    return [{"stratum": s, "population": populations[s], **rows[s]} for s in populations]


def plan_campaign(
    spec: CampaignSpec,
    roster: pd.DataFrame,
    policy: SamplingPolicy,
    history: pd.DataFrame | None = None,
    excluded: Iterable[str] | None = None,
) -> SamplingFrame:
    """The sampling frame of a campaign: eligible firms, strata and sample sizes.

    `history` is the inspections table (random draws this year exclude a firm for the same
    items); `excluded` replaces it with an explicit list (as recorded in draw evidence).
    """
    frame = normalize_roster(roster, policy)
    if "status" in frame.columns:
        frame = frame.loc[frame["status"].astype(str).isin(policy.eligible_statuses)]
    frame = frame.loc[scope_mask(frame, spec.scope)]
    if excluded is not None:
        drop = tuple(sorted(set(excluded)))
    else:
        in_scope = set(frame["uscc"])
        drawn = already_drawn(history, spec) if policy.no_redraw_same_year else ()
        drop = tuple(u for u in drawn if u in in_scope)
    frame = frame.loc[~frame["uscc"].isin(drop)]
    rules = _active_rules(spec, policy)
    units = frame[["uscc", "class"]].copy()
    units["stratum"] = assign_strata(frame, rules).to_numpy()
    units = units.reset_index(drop=True)
    if units.empty:
        raise CampaignError(
            "抽查范围内没有可抽取的企业 / no eligible enterprise in the campaign scope"
        )
    counts = units["stratum"].value_counts()
    populations = {str(s): int(counts[s]) for s in sorted(counts.index)}
    strata = pd.DataFrame(_stratum_rows(populations, spec, policy, rules))
    strata["sample"] = strata["sample"].astype(int)
    strata["ratio"] = strata["sample"] / strata["population"]
    strata = strata[["stratum", "population", "configured_ratio", "ratio", "sample", "basis"]]
    return SamplingFrame(units=units, strata=strata, excluded=drop)

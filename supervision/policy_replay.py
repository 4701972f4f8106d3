"""Replay sampling ratio sets on a district with known truth and compare what they achieve.

For each ratio set and cycle the replay draws exactly as a campaign would (class strata,
round-half-up sample sizes, at least one firm per non-empty class, the SHA-256 key order of
`supervision.draw`), then scores the draw against the ground truth: inspections, true problems
found, problems per inspection, the burden on class-A firms, and the error of the weighted
(Horvitz–Thompson, Hájek form) estimate of the overall and per-class violation rates.

All sets share the cycle's draw keys (common random numbers), so differences between sets come
from the ratios, not from luck. An equal-budget uniform baseline can be added for any set.
Each cycle is an independent campaign: the no-re-draw-within-a-year rule is not replayed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from supervision.campaigns import CampaignError, round_half_up
from supervision.draw import stratum_ranks

UNIFORM_STRATUM = "all"
LOW_RISK_CLASS = "A"


def _cycles(truth: pd.DataFrame, cycle_column: str, cycles: int | Sequence[object]) -> list[object]:
    available = sorted(truth[cycle_column].unique())
    if isinstance(cycles, int):
        if cycles > len(available):
            raise CampaignError(f"真值只有{len(available)}个周期 / truth has only "
                                f"{len(available)} cycles, asked for {cycles}")
        return list(available[:cycles])
    missing = [c for c in cycles if c not in set(available)]
    if missing:
        raise CampaignError(f"真值中没有这些周期 / cycles not in truth: {missing}")
    return list(cycles)


def _classes_for(roster: pd.DataFrame, cycle_column: str, cycle: object) -> pd.DataFrame:
    frame = roster
    if cycle_column in frame.columns:
        frame = frame.loc[frame[cycle_column] == cycle]
    if "uscc" not in frame.columns:
        frame = frame.rename_axis("uscc").reset_index()
    return frame[["uscc", "class"]].assign(uscc=lambda f: f["uscc"].astype(str),
                                           klass=lambda f: f["class"].astype(str))


def _sizes(ratios: Mapping[str, float], populations: pd.Series) -> dict[str, int]:
    sizes = {}
    missing = sorted(set(populations.index.astype(str)) - set(ratios))
    if missing:
        raise CampaignError(f"比例方案缺少分类 / ratio set has no ratio for classes {missing}")
    for cls, population in populations.items():
        ratio = float(ratios[str(cls)])
        n = min(round_half_up(ratio, int(population)), int(population))
        sizes[str(cls)] = max(n, 1) if ratio > 0 and population > 0 else n
    return sizes


def _score(
    drawn: np.ndarray, weight: np.ndarray, violating: np.ndarray, classes: np.ndarray,
    class_names: Sequence[str],
) -> dict[str, float]:
    """Metrics of one draw: counts, Hájek estimate errors overall and per class."""
    found = float(violating[drawn].sum())
    w, y, c = weight[drawn], violating[drawn], classes[drawn]
    overall = float((w * y).sum() / w.sum()) if drawn.any() else np.nan
    errors = []
    for name in class_names:
        in_class = classes == name
        sampled = c == name
        if in_class.any() and sampled.any():
            estimate = (w[sampled] * y[sampled]).sum() / w[sampled].sum()
            errors.append(abs(float(estimate) - float(violating[in_class].mean())))
    return {"inspections": float(drawn.sum()), "found": found,
            "low_risk_inspections": float((c == LOW_RISK_CLASS).sum()),
            "overall_error": overall - float(violating.mean()),
            "class_error": float(np.mean(errors)) if errors else np.nan}


def compare_ratio_sets(
    roster_with_classes: pd.DataFrame,
    truth_violating: pd.DataFrame,
    ratio_sets: Mapping[str, Mapping[str, float]],
    cycles: int | Sequence[object],
    seed: str,
    cycle_column: str = "cycle",
    uniform_baseline_for: str | None = None,
    floor_ratio: float = 0.0,
) -> pd.DataFrame:
    """One row per ratio set (plus the optional uniform baseline) with replay metrics.

    `roster_with_classes`: uscc (index or column) and class, optionally per cycle (a
    `cycle_column`); `truth_violating`: uscc, cycle, violating (bool) — e.g. the simulator's
    `truth['enterprise_monthly']` with cycle_column="month". Ratios below `floor_ratio` (the
    policy's 不免抽 floor) are raised to it. `uniform_baseline_for` names a set whose per-cycle
    total is re-drawn as one uniform simple random sample ("uniform@<name>").
    """
    if uniform_baseline_for is not None and uniform_baseline_for not in ratio_sets:
        raise CampaignError(f"比例方案不存在 / no ratio set {uniform_baseline_for!r}")
    labels = _cycles(truth_violating, cycle_column, cycles)
    names = list(ratio_sets) + ([f"uniform@{uniform_baseline_for}"] if uniform_baseline_for
                                else [])
    tallies: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    low_risk_firms = 0.0
    truth_by_cycle: dict[object, pd.DataFrame] = dict(
        tuple(truth_violating.groupby(cycle_column, sort=False)))
    for cycle in labels:
        truth = truth_by_cycle[cycle]
        truth = pd.DataFrame({"uscc": truth["uscc"].astype(str).to_numpy(),
                              "violating": truth["violating"].astype(bool).to_numpy()})
        units = _classes_for(roster_with_classes, cycle_column, cycle).merge(truth, on="uscc")
        campaign = f"replay-{cycle}"
        by_class = stratum_ranks(units.assign(stratum=units["klass"]), seed, campaign)
        overall = stratum_ranks(units.assign(stratum=UNIFORM_STRATUM), seed, campaign)
        uniform_rank = (pd.Series(overall["rank"].to_numpy(), index=overall["uscc"].to_numpy())
                        .reindex(by_class["uscc"].to_numpy()).to_numpy())
        classes = np.asarray(by_class["klass"].tolist(), dtype=str)
        class_names, class_index, counts = np.unique(classes, return_inverse=True,
                                                     return_counts=True)
        populations = pd.Series(counts, index=class_names)
        violating = by_class["violating"].to_numpy(dtype=float)
        rank = by_class["rank"].to_numpy()
        low_risk_firms += float(populations.get(LOW_RISK_CLASS, 0))
        for name, ratios in ratio_sets.items():
            sizes = _sizes({c: max(float(r), floor_ratio) for c, r in ratios.items()},
                           populations)
            wanted = np.array([sizes[str(c)] for c in class_names])[class_index]
            drawn = rank < wanted
            weight = counts[class_index] / np.maximum(wanted, 1)
            tallies[name].append(_score(drawn, weight, violating, classes, list(class_names)))
            if name == uniform_baseline_for:
                total = int(drawn.sum())
                uniform = uniform_rank < total
                flat = np.full(len(uniform), len(uniform) / max(total, 1))
                tallies[names[-1]].append(_score(uniform, flat, violating, classes,
                                                 list(class_names)))
    return _summarise(names, tallies, ratio_sets, len(labels), low_risk_firms)


def _summarise(
    names: list[str],
    tallies: dict[str, list[dict[str, float]]],
    ratio_sets: Mapping[str, Mapping[str, float]],
    cycles: int,
    low_risk_firms: float,
) -> pd.DataFrame:
    rows = []
    for name in names:
        t = pd.DataFrame(tallies[name])
        inspections = float(t["inspections"].sum())
        ratios = ratio_sets.get(name)
        rows.append({
            "ratio_set": name,
            "ratios": ", ".join(f"{c}={r:g}" for c, r in ratios.items()) if ratios else "uniform",
            "cycles": cycles,
            "inspections": int(inspections),
            "inspections_per_cycle": inspections / cycles,
            "problems_found": int(t["found"].sum()),
            "problems_per_inspection": float(t["found"].sum()) / inspections
            if inspections else np.nan,
            "class_a_inspections": int(t["low_risk_inspections"].sum()),
            "class_a_share_inspected": float(t["low_risk_inspections"].sum()) / low_risk_firms
            if low_risk_firms else np.nan,
            "overall_rate_abs_error": float(t["overall_error"].abs().mean()),
            "overall_rate_rmse": float(np.sqrt((t["overall_error"] ** 2).mean())),
            "class_rate_abs_error": float(t["class_error"].mean()),
        })
    return pd.DataFrame(rows)

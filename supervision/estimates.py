"""Problem rates estimated from random draws, and the labels they give back to training.

A random draw is a stratified simple random sample without replacement, so recorded outcomes
weighted by 1 / inclusion probability estimate the problem rate of the whole eligible roster,
per class and overall — unlike the raw hit rate, which over-represents high-risk classes.

Estimator (per campaign, or pooled over campaigns with strata keyed by campaign × stratum):
for domain d (a class, or everything), with y = 1 when a problem was found,
    rate_d = Σ_i y_i·1{i∈d} / π_i  ÷  Σ_i 1{i∈d} / π_i
(Horvitz–Thompson totals in ratio form, i.e. the Hájek estimator; it equals the plain HT rate
when the class is its own stratum, and needs no class counts for mixed strata). π_i = n_h / N_h
with n_h the firms of stratum h whose outcome is recorded (missing outcomes are treated as
missing at random within their stratum). Variance by linearisation with the finite population
correction: Σ_h N_h² (1 − n_h/N_h) s_h²(e) / n_h ÷ N̂_d², e_i = 1{i∈d}(y_i − rate_d), with the
within-stratum binomial term smoothed by half a problem and half a non-problem where a stratum
saw no problem (or only problems), so small all-clear strata (typical of class A) do not
report zero uncertainty. The interval is Clopper–Pearson at the effective sample size
rate(1 − rate) / variance (Korn & Graubard): it stays inside [0, 1] and keeps its coverage for
the small samples and rare problems of low-risk classes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy.stats import beta

from supervision.campaigns import CampaignError

OVERALL = "overall"
_SEP = "\x1f"


def outcome_units(results: pd.DataFrame, problem_outcomes: Iterable[str]) -> pd.DataFrame:
    """One row per campaign × drawn firm with a complete record: problem found or not.

    `results` is `record_results(...)` output (one row per visit item). A firm with any item
    still pending is left out (its stratum's n_h shrinks accordingly).
    """
    problems = set(problem_outcomes)
    frame = results.assign(
        pending=results["outcome"].isna(),
        problem=results["outcome"].astype("string").isin(problems).fillna(False).astype(bool),
    )
    grouped = frame.groupby(["campaign_id", "uscc"], sort=True)
    units = pd.DataFrame({
        "class": grouped["class"].first(),
        "stratum": grouped["stratum"].first(),
        "inclusion_probability": grouped["inclusion_probability"].first(),
        "pending": grouped["pending"].any(),
        "problem": grouped["problem"].any(),
    }).reset_index()
    return units.loc[~units["pending"]].drop(columns="pending").reset_index(drop=True)


def _korn_graubard(rate: float, n_eff: float, confidence: float) -> tuple[float, float]:
    """Clopper–Pearson interval at the effective sample size (Korn & Graubard, 1998).

    Exact binomial tails keep coverage at the nominal level even for the few inspections and
    rare problems of class A, where Wald and Wilson intervals fall short.
    """
    if not np.isfinite(n_eff):
        return rate, rate
    alpha = 1 - confidence
    successes = rate * n_eff
    low = 0.0 if successes <= 0 else float(beta.ppf(alpha / 2, successes,
                                                     n_eff - successes + 1))
    high = 1.0 if successes >= n_eff else float(beta.ppf(1 - alpha / 2, successes + 1,
                                                          n_eff - successes))
    return low, high


def _stratum_populations(
    codes: np.ndarray, first_pi: np.ndarray, n_h: np.ndarray, strata: pd.DataFrame | None
) -> np.ndarray:
    """N_h per stratum code: from the strata table, else round(n_h / π_h)."""
    if strata is None:
        return np.round(n_h / first_pi)
    table = {f"{c}{_SEP}{s}": float(n) for c, s, n in zip(
        strata["campaign_id"].astype(str), strata["stratum"].astype(str),
        strata["population"], strict=True)}
    populations = np.array([table.get(str(code), np.nan) for code in codes])
    if np.isnan(populations).any():
        missing = [str(c).replace(_SEP, "/") for c in codes[np.isnan(populations)]]
        raise CampaignError(f"抽样层缺少总数 / no stratum population for {missing}")
    return populations


def problem_rate_estimates(
    units: pd.DataFrame,
    confidence: float,
    strata: pd.DataFrame | None = None,
    domains: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Estimated problem rate per class and overall, with standard error and interval.

    `units`: campaign_id, stratum, class, inclusion_probability, problem (bool) — one row per
    inspected firm. `strata` (campaign_id, stratum, population) gives N_h; without it N_h is
    recovered as round(n_h / π) from the recorded inclusion probabilities.
    """
    if units.empty:
        raise CampaignError("没有已录入结果的抽查对象 / no drawn firm with recorded results")
    key = np.asarray((units["campaign_id"].astype(str) + _SEP
                      + units["stratum"].astype(str)).tolist(), dtype=str)
    codes, first, stratum_index = np.unique(key, return_index=True, return_inverse=True)
    n_h = np.bincount(stratum_index).astype(float)
    pi = units["inclusion_probability"].to_numpy(dtype=float)
    big_n = _stratum_populations(codes, pi[first], n_h, strata)
    y = units["problem"].to_numpy(dtype=bool).astype(float)
    classes = np.asarray(units["class"].astype(str).tolist(), dtype=str)
    wanted = list(domains) if domains is not None else sorted(set(classes.tolist()))
    rows = []
    for domain in [*wanted, OVERALL]:
        member = np.ones(len(y)) if domain == OVERALL else (classes == domain).astype(float)
        rows.append(_estimate_domain(domain, y, member, stratum_index, n_h, big_n,
                                     confidence))
    return pd.DataFrame(rows)


def _linearised_variance(
    y: np.ndarray, member: np.ndarray, stratum: np.ndarray, n_h: np.ndarray,
    big_n: np.ndarray, rate: float,
) -> float:
    """Σ_h N_h² (1 − f_h) s_h²(e) / n_h for residuals e = 1{d}(y − rate), y binary.

    With m domain members and x problems in stratum h (p = x/m), (n − 1)s² = m·p(1 − p)
    + m(1 − m/n)(p − rate)². When x is 0 or m the p(1 − p) term uses p̃ = (x + ½)/(m + 1):
    a small stratum in which no (or every) sampled firm had a problem still adds the
    uncertainty it carries instead of claiming zero variance (which made intervals too narrow).
    """
    m = np.bincount(stratum, weights=member, minlength=len(n_h))
    x = np.bincount(stratum, weights=member * y, minlength=len(n_h))
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(m > 0, x / m, 0.0)
    degenerate = (x == 0) | (x == m)
    adjusted = np.where(degenerate, (x + 0.5) / (m + 1), p)
    spread = m * adjusted * (1 - adjusted) + m * (1 - m / n_h) * (p - rate) ** 2
    s2 = spread / np.maximum(n_h - 1, 1)
    return float(max((big_n**2 * (1 - n_h / big_n) * s2 / n_h).sum(), 0.0))


def _estimate_domain(
    domain: str,
    y: np.ndarray,
    member: np.ndarray,
    stratum: np.ndarray,
    n_h: np.ndarray,
    big_n: np.ndarray,
    confidence: float,
) -> dict[str, object]:
    weight = big_n[stratum] / n_h[stratum]
    population = float((weight * member).sum())
    sampled = int(member.sum())
    if sampled == 0:
        return {"domain": domain, "estimate": np.nan, "std_error": np.nan, "ci_low": np.nan,
                "ci_high": np.nan, "sampled": 0, "population_estimate": 0.0}
    rate = float((weight * member * y).sum() / population)
    variance = _linearised_variance(y, member, stratum, n_h, big_n, rate) / population**2
    touched = np.unique(stratum[member > 0])
    if bool(np.all(n_h[touched] >= big_n[touched])):  # a census of the domain: no error
        n_eff = np.inf
    elif variance > 0 and 0 < rate < 1:
        n_eff = rate * (1 - rate) / variance
    else:  # no problem (or only problems) seen: exact interval on the members inspected
        n_eff = float(sampled)
    low, high = _korn_graubard(rate, n_eff, confidence)
    return {"domain": domain, "estimate": rate, "std_error": float(np.sqrt(variance)),
            "ci_low": low, "ci_high": high, "sampled": sampled,
            "population_estimate": population}


def training_labels(units: pd.DataFrame) -> pd.DataFrame:
    """Labels from random draws for the next training run, with design weights 1 / π.

    Weighting by 1 / π lets a model trained on these labels (or evaluated on them) speak for
    the whole roster instead of the over-sampled high-risk classes.
    """
    labels = units[["campaign_id", "uscc", "class", "inclusion_probability", "problem"]].copy()
    labels["label"] = labels.pop("problem").astype(int)
    labels["weight"] = 1.0 / labels["inclusion_probability"].astype(float)
    return labels

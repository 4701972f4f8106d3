"""Does the simulated district look like the published figures? One row per figure.

Every figure is computed from what `write_district` puts on disk (the source tables plus
`truth/`), so `riskmatrix simulate` can print the report for any simulated directory.
A figure is `ok` when the 95 % confidence interval of the measured value (Wilson for a
proportion; Kish effective size for weighted ones) overlaps the target band: a small
district is then not failed for sampling noise, but a biased one is. Targets come from
docs/domain.md where it has a figure; the others are plausibility bands stated here.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

EXEMPT_PREFIX = "GZMJ-"
Z95 = 1.959963984540054


@dataclass(frozen=True)
class Target:
    """A figure's bilingual label and its target band (inclusive)."""

    zh: str
    en: str
    low: float
    high: float


TARGETS: dict[str, Target] = {
    "class_share_A": Target("真实类别占比 A", "true class share A", 0.45, 0.55),
    "class_share_B": Target("真实类别占比 B", "true class share B", 0.22, 0.30),
    "class_share_C": Target("真实类别占比 C", "true class share C", 0.16, 0.24),
    "class_share_D": Target("真实类别占比 D", "true class share D", 0.025, 0.045),
    "random_problem_rate_A": Target(
        "随机抽查问题发现率 (A类)", "random-check problem rate, class A", 0.0, 0.05),
    "random_problem_rate_B": Target(
        "随机抽查问题发现率 (B类)", "random-check problem rate, class B", 0.30, 0.40),
    "random_problem_rate_C": Target(
        "随机抽查问题发现率 (C类)", "random-check problem rate, class C", 0.50, 0.60),
    "random_problem_rate_D": Target(
        "随机抽查问题发现率 (D类)", "random-check problem rate, class D", 0.80, 0.85),
    "random_problem_rate_overall": Target(
        "随机抽查问题发现率 (总体, 加权)", "random-check problem rate, overall (weighted)",
        0.20, 0.25),
    "random_exempt_lapse_rate": Target(
        "随机抽查轻微免罚情形占比", "random checks with exempt minor lapse", 0.02, 0.08),
    "market_random_share_per_year": Target(
        "市场监管年度随机抽查比例", "market random checks per year / firms", 0.03, 0.06),
    "digital_share": Target(
        "数字经济企业占比", "share of digital-economy firms", 0.045, 0.075),
    "penalised_share": Target(
        "有行政处罚记录的企业占比", "firms with at least one penalty", 0.03, 0.12),
    "tax_grade_share_A": Target("纳税信用A级占比", "tax credit grade A share", 0.06, 0.105),
    "tax_grade_share_BM": Target("纳税信用B+M级占比", "tax credit grade B+M share", 0.79, 0.87),
    "tax_grade_share_CD": Target("纳税信用C+D级占比", "tax credit grade C+D share", 0.07, 0.115),
    "annual_report_on_time": Target(
        "年报按期公示率", "annual reports filed by 30 June", 0.85, 0.95),
    "abnormal_listed_share": Target(
        "经营异常名录在列企业占比", "active firms on the abnormal list", 0.04, 0.15),
    "project_inspection_finding_rate": Target(
        "工程检查发现问题占比", "site inspections finding a problem", 0.15, 0.50),
    "project_accidents_per_100_project_years": Target(
        "每百项目年事故数", "accidents per 100 project-years", 0.5, 6.0),
}


def _wilson(successes: float, n: float) -> tuple[float, float]:
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denominator = 1 + Z95**2 / n
    centre = (p + Z95**2 / (2 * n)) / denominator
    half = Z95 * np.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def _proportion(name: str, flags: pd.Series | np.ndarray,
                weights: np.ndarray | None = None) -> dict[str, object]:
    values = np.asarray(flags, dtype=float)
    if weights is None:
        weights = np.ones(len(values))
    total = float(weights.sum())
    measured = float((values * weights).sum() / total) if total > 0 else float("nan")
    effective_n = total**2 / float((weights**2).sum()) if total > 0 else 0.0
    low, high = _wilson(measured * effective_n, effective_n) if total > 0 else (0.0, 1.0)
    return _row(name, measured, effective_n, low, high)


def _rate(name: str, count: float, exposure: float, scale: float) -> dict[str, object]:
    """A Poisson rate per `scale` units of exposure, with a normal-approximation interval."""
    measured = scale * count / exposure if exposure > 0 else float("nan")
    half = Z95 * scale * np.sqrt(max(count, 1.0)) / exposure if exposure > 0 else float("inf")
    return _row(name, measured, count, max(0.0, measured - half), measured + half)


def _row(name: str, measured: float, n: float, low: float, high: float) -> dict[str, object]:
    target = TARGETS[name]
    ok = bool(np.isfinite(measured) and low <= target.high and high >= target.low)
    return {"figure": name, "label": f"{target.zh} / {target.en}", "measured": measured,
            "target_low": target.low, "target_high": target.high, "ok": ok, "n": n,
            "ci_low": low, "ci_high": high}


def _month_of(dates: pd.Series) -> pd.Series:
    return pd.to_datetime(dates.astype(str).str.slice(0, 7) + "-01").astype("datetime64[ms]")


def _true_class(risk: pd.Series, thresholds: pd.DataFrame) -> np.ndarray:
    cuts = thresholds.sort_values("risk_low")["risk_low"].to_numpy()[1:]
    names = thresholds.sort_values("risk_low")["true_class"].to_numpy()
    return names[np.searchsorted(cuts, risk.to_numpy(dtype=float), side="right")]


def _problem_found(inspections: pd.DataFrame) -> np.ndarray:
    code = inspections["violation_code"].astype("string").fillna("")
    exempt = code.str.startswith(EXEMPT_PREFIX).to_numpy(dtype=bool)
    return (inspections["outcome"].astype(str) != "no_problem").to_numpy() & ~exempt


def _class_figures(truth: dict[str, pd.DataFrame]) -> list[dict[str, object]]:
    classes = truth["enterprise_class"]["true_class"].astype(str)
    return [_proportion(f"class_share_{c}", classes == c) for c in "ABCD"]


def _random_check_figures(tables: dict[str, pd.DataFrame],
                          truth: dict[str, pd.DataFrame]) -> list[dict[str, object]]:
    ins = tables["inspections"]
    drawn = ins[ins["source"].astype(str) == "random_draw"].copy()
    drawn["month"] = _month_of(drawn["inspection_date"])
    drawn["uscc"] = drawn["uscc"].astype(str)
    monthly = truth["enterprise_monthly"][["uscc", "month", "risk"]].copy()
    monthly["uscc"] = monthly["uscc"].astype(str)
    monthly["month"] = monthly["month"].astype("datetime64[ms]")
    joined = drawn.merge(monthly, on=["uscc", "month"], how="left")
    joined["true_class"] = _true_class(joined["risk"].fillna(0.0), truth["class_thresholds"])
    found = _problem_found(joined)
    rows = [_proportion(f"random_problem_rate_{c}", found[(joined["true_class"] == c).to_numpy()])
            for c in "ABCD"]
    weights = 1.0 / joined["inclusion_probability"].astype(float).to_numpy()
    rows.append(_proportion("random_problem_rate_overall", found, weights))
    code = joined["violation_code"].astype("string").fillna("")
    rows.append(_proportion("random_exempt_lapse_rate", code.str.startswith(EXEMPT_PREFIX)))
    market = drawn[drawn["department"].astype(str) == "market"]
    years = market["inspection_date"].astype(str).str.slice(0, 4)
    firms = _active_firms_by_year(tables["enterprises"], sorted(set(years)))
    per_year = market.groupby(years).size()
    exposure = float(sum(firms[y] for y in per_year.index))
    drawn_total = float(per_year.sum())
    low, high = _wilson(drawn_total, exposure)
    rows.append(_row("market_random_share_per_year",
                     drawn_total / exposure if exposure else float("nan"), exposure, low, high))
    return rows


def _active_firms_by_year(enterprises: pd.DataFrame, years: list[str]) -> dict[str, int]:
    established = enterprises["established_date"].astype(str)
    status_date = enterprises["status_date"].astype("string").fillna("9999-12-31")
    return {y: int(((established <= f"{y}-03-01") & (status_date > f"{y}-03-01")).sum())
            for y in years}


def _register_figures(tables: dict[str, pd.DataFrame],
                      truth: dict[str, pd.DataFrame]) -> list[dict[str, object]]:
    enterprises = tables["enterprises"]
    events = tables["enterprise_events"]
    kind = events["event_type"].astype(str)
    rows = [_proportion("digital_share", truth["enterprise_class"]["digital"].astype(bool))]
    penalised = set(events.loc[kind == "penalty", "uscc"].astype(str))
    rows.append(_proportion("penalised_share", enterprises["uscc"].astype(str).isin(penalised)))

    grades = events[kind == "tax_grade"]
    latest_year = grades["occurred_date"].astype(str).str.slice(0, 4).max()
    latest = grades[grades["occurred_date"].astype(str).str.startswith(str(latest_year))]
    grade = latest["grade"].astype(str)
    rows.append(_proportion("tax_grade_share_A", grade == "A"))
    rows.append(_proportion("tax_grade_share_BM", grade.isin(["B", "M"])))
    rows.append(_proportion("tax_grade_share_CD", grade.isin(["C", "D"])))

    reports = events[kind == "annual_report"]
    year = int(reports["report_year"].max()) if len(reports) else 0
    established = enterprises["established_date"].astype(str)
    status_date = enterprises["status_date"].astype("string").fillna("9999-12-31")
    deadline = f"{year + 1}-06-30"
    eligible = (established < f"{year + 1}-01-01") & (status_date > deadline)
    on_time = reports[(reports["report_year"] == year)
                      & (reports["occurred_date"].astype(str) <= deadline)]
    rows.append(_proportion("annual_report_on_time",
                            enterprises.loc[eligible, "uscc"].astype(str).isin(
                                set(on_time["uscc"].astype(str)))))

    listing = events[kind.isin(["abnormal_list_in", "abnormal_list_out"])]
    balance = (listing["event_type"].astype(str) == "abnormal_list_in").astype(int) * 2 - 1
    listed = balance.groupby([listing["uscc"].astype(str),
                              listing["item_code"].astype(str)]).sum()
    listed_firms = set(listed[listed > 0].index.get_level_values(0))
    active = enterprises["status"].astype(str) == "active"
    rows.append(_proportion("abnormal_listed_share",
                            enterprises.loc[active, "uscc"].astype(str).isin(listed_firms)))
    return rows


def _project_figures(tables: dict[str, pd.DataFrame],
                     truth: dict[str, pd.DataFrame]) -> list[dict[str, object]]:
    site = tables["project_inspections"]
    finding = (site["defects_found"].astype(int) + site["hazards_found"].astype(int)) > 0
    rows = [_proportion("project_inspection_finding_rate", finding)]
    events = tables["project_events"]
    accidents = int((events["event_type"].astype(str) == "accident").sum())
    project_years = len(truth["project_monthly"]) / 12.0
    rows.append(_rate("project_accidents_per_100_project_years", accidents, project_years, 100.0))
    return rows


FIGURE_GROUPS: tuple[Callable[[dict[str, pd.DataFrame], dict[str, pd.DataFrame]],
                              list[dict[str, object]]], ...] = (
    lambda tables, truth: _class_figures(truth),
    _random_check_figures,
    _register_figures,
    _project_figures,
)


def calibration_report(tables: dict[str, pd.DataFrame],
                       truth: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per figure: figure, measured, target_low, target_high, ok (+ label, n, CI)."""
    rows = [row for group in FIGURE_GROUPS for row in group(tables, truth)]
    columns = ["figure", "measured", "target_low", "target_high", "ok", "label", "n", "ci_low",
               "ci_high"]
    return pd.DataFrame(rows)[columns]


def _display_width(text: str) -> int:
    """Terminal columns: CJK and full-width characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int, right: bool = False) -> str:
    fill = " " * max(0, width - _display_width(text))
    return fill + text if right else text + fill


def format_calibration(report: pd.DataFrame) -> str:
    """A fixed-width bilingual table for the terminal."""
    label_width = max([_display_width(str(label)) for label in report["label"]] + [20])
    header = "  ".join([_pad("指标 / figure", label_width), _pad("实测 measured", 14, True),
                        _pad("目标 target", 13, True), _pad("95% CI", 13, True),
                        "结论 / verdict"])
    rule = "-" * _display_width(header)
    lines = [header, rule]
    for row in report.itertuples(index=False):
        lines.append("  ".join([
            _pad(str(row.label), label_width),
            _pad(f"{row.measured:.4f}", 14, True),
            _pad(f"{row.target_low:.3f}–{row.target_high:.3f}", 13, True),
            _pad(f"{row.ci_low:.3f}–{row.ci_high:.3f}", 13, True),
            "符合 / ok" if row.ok else "偏离 / off",
        ]))
    passed = int(report["ok"].sum())
    lines.append(rule)
    total = len(report)
    lines.append(f"符合 {passed}/{total} 项 / {passed} of {total} figures within target")
    return "\n".join(lines)

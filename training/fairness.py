"""Subgroup and fairness report: does the risk class weigh on some kinds of firms as such?

Regulators must be able to show that classes do not penalise an ownership type, a size, a
street or an industry as such (公平竞争). For each audited attribute and each of its groups
the report gives the rates a regulator looks at — share in the top class(es), inspection
burden, hit rate among the inspected — and each rate's ratio to a reference group. A ratio
outside the policy band (e.g. the four-fifths convention 0.8–1.25) is flagged.

Rules the numbers follow:

* The reference group of an attribute is the one named in ``reference_groups``, else the
  largest group (ties: the first in sorted order), so ratios read "compared with the
  typical firm".
* A ratio is flagged only when both the group and the reference have at least ``min_n``
  rows in the rate's denominator (rows for class and burden rates, inspected rows with a
  result for the hit rate). Smaller groups are still reported, marked ``small_group``,
  because a few firms swing their rates too much for a ratio to mean anything. When rows
  are repeated observations of one unit (site-months of a project), ``unit_column`` makes
  ``min_n`` count distinct units too: 100 site-months of 8 sites are 8 observations.
* When the reference rate is 0, a group rate of 0 gives ratio 1 (no disparity) and a
  positive group rate gives ∞ (flagged).
* Missing group values form their own group, "(缺失 / missing)", rather than vanishing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from training.metrics import render_fixed_width

MISSING_GROUP = "(缺失 / missing)"

RATE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    # (rate column, ratio column, denominator column)
    ("high_class_rate", "ratio_high_class", "n"),
    ("elevated_class_rate", "ratio_elevated_class", "n"),
    ("inspection_rate", "ratio_inspection", "n"),
    ("hit_rate", "ratio_hit", "n_with_result"),
)

_RATE_NAMES: dict[str, str] = {
    "high_class_rate": "最高类 / top class",
    "elevated_class_rate": "较高类 / upper classes",
    "inspection_rate": "检查负担 / burden",
    "hit_rate": "命中率 / hit rate",
}

REPORT_COLUMNS: tuple[str, ...] = (
    "attribute", "group", "n", "is_reference", "small_group",
    "high_class_rate", "elevated_class_rate", "inspection_rate", "n_inspected",
    "n_with_result", "hit_rate",
    "ratio_high_class", "ratio_elevated_class", "ratio_inspection", "ratio_hit",
    "flag", "flagged_metrics",
)


def _require_columns(frame: pd.DataFrame, columns: Sequence[str | None]) -> None:
    missing = [c for c in columns if c is not None and c not in frame.columns]
    if missing:
        raise ValueError(f"fairness_report: frame lacks column(s) {missing}; "
                         f"it has {list(frame.columns)}")


def _binary_column(frame: pd.DataFrame, column: str, allow_missing: bool) -> pd.Series:
    """0/1 floats (NaN kept when allowed); anything else is a user error naming the row."""
    values = pd.to_numeric(frame[column].astype(object), errors="coerce").astype(float)
    raw_missing = frame[column].isna().to_numpy()
    bad = (values.isna().to_numpy() & ~raw_missing) | (values.notna() & ~values.isin([0, 1])
                                                      ).to_numpy()
    if not allow_missing:
        bad |= raw_missing
    if bad.any():
        row = frame.index[int(np.flatnonzero(bad)[0])]
        raise ValueError(f"fairness_report: column {column!r}, row {row!r}: value "
                         f"{frame[column].loc[row]!r} is not 0/1/True/False")
    return values


def _expected_burden(classes: pd.Series, sampling_ratios: Mapping[str, float]) -> pd.Series:
    unknown = sorted(set(classes.dropna().astype(str)) - set(sampling_ratios))
    if unknown:
        raise ValueError(f"fairness_report: sampling_ratios has no ratio for class(es) "
                         f"{unknown}; it covers {sorted(sampling_ratios)}")
    return classes.astype(str).map(dict(sampling_ratios)).astype(float)


def _ratio(rate: float, reference: float) -> float:
    if np.isnan(rate) or np.isnan(reference):
        return float("nan")
    if reference == 0:
        return 1.0 if rate == 0 else float("inf")
    return float(rate / reference)


def _group_labels(values: pd.Series) -> pd.Series:
    return values.astype(object).where(values.notna(), MISSING_GROUP).astype(str)


def _rates_by_group(
    labels: pd.Series, high: pd.Series, elevated: pd.Series, burden: pd.Series,
    inspected: pd.Series | None, hit: pd.Series | None,
) -> pd.DataFrame:
    parts = pd.DataFrame({"group": labels.to_numpy(), "high": high.to_numpy(),
                          "elevated": elevated.to_numpy(), "burden": burden.to_numpy()})
    if inspected is not None:
        parts["inspected"] = inspected.to_numpy()
    if hit is not None:
        has_result = hit.notna().to_numpy()
        if inspected is not None:
            has_result = has_result & (inspected.to_numpy() == 1)
        parts["has_result"] = has_result.astype(float)
        parts["hit"] = np.where(has_result, hit.to_numpy(), 0.0)
    grouped = parts.groupby("group", sort=True)
    table = pd.DataFrame({
        "n": grouped.size(),
        "high_class_rate": grouped["high"].mean(),
        "elevated_class_rate": grouped["elevated"].mean(),
        "inspection_rate": grouped["burden"].mean(),
    })
    table["n_inspected"] = grouped["inspected"].sum() if inspected is not None else np.nan
    if hit is not None:
        table["n_with_result"] = grouped["has_result"].sum()
        table["hit_rate"] = grouped["hit"].sum() / table["n_with_result"].where(
            table["n_with_result"] > 0)
    else:
        table["n_with_result"] = np.nan
        table["hit_rate"] = np.nan
    return table.reset_index()


def _add_ratios(table: pd.DataFrame, reference: str, band: tuple[float, float],
                min_n: int) -> pd.DataFrame:
    ref = table.loc[table["group"] == reference].iloc[0]
    table = table.copy()
    table["is_reference"] = table["group"] == reference
    enough_units = pd.Series(True, index=table.index)
    if "n_units" in table.columns:
        enough_units = (table["n_units"] >= min_n) & (ref["n_units"] >= min_n)
    table["small_group"] = (table["n"] < min_n) | ~enough_units
    flagged: list[list[str]] = [[] for _ in range(len(table))]
    for rate, ratio, denominator in RATE_COLUMNS:
        table[ratio] = [_ratio(r, ref[rate]) for r in table[rate]]
        reliable = ((table[denominator].fillna(0) >= min_n) & (ref[denominator] >= min_n)
                    & enough_units)
        outside = (table[ratio] < band[0]) | (table[ratio] > band[1])
        for i in np.flatnonzero((reliable & outside).to_numpy()):
            flagged[i].append(rate)
    table["flagged_metrics"] = [",".join(f) for f in flagged]
    table["flag"] = table["flagged_metrics"] != ""
    return table


def fairness_report(
    frame: pd.DataFrame,
    *,
    group_columns: Sequence[str] = ("ownership_type", "size_band", "street", "industry_section"),
    class_column: str = "class",
    inspected_column: str | None = None,
    hit_column: str | None = None,
    sampling_ratios: Mapping[str, float] | None = None,
    reference_groups: Mapping[str, str] | None = None,
    band: tuple[float, float] = (0.8, 1.25),
    min_n: int = 30,
    high_classes: Sequence[str] = ("D",),
    elevated_classes: Sequence[str] = ("C", "D"),
    unit_column: str | None = None,
) -> pd.DataFrame:
    """One row per (attribute, group) with rates, ratios to the reference group and flags.

    ``frame`` has one row per firm: its class, the audited attributes and optionally
    whether it was inspected (``inspected_column``, 0/1) and whether the inspection found
    a problem (``hit_column``, 0/1, NaN when not inspected). The inspection burden is the
    inspected share when ``inspected_column`` is given, else the expected inspections per
    firm from ``sampling_ratios`` (class → ratio, from the policy), else NaN. ``band``
    and ``min_n`` come from the policy. Columns: ``REPORT_COLUMNS`` (plus ``n_units``, the
    distinct units per group, when ``unit_column`` names the unit rows repeat).
    """
    if not band[0] < 1 < band[1]:
        raise ValueError(f"fairness_report: band must contain 1 (low < 1 < high), got {band}")
    _require_columns(frame, [class_column, inspected_column, hit_column, unit_column,
                             *group_columns])
    classes = frame[class_column].astype(object)
    high = classes.isin(list(high_classes)).astype(float)
    elevated = classes.isin(list(elevated_classes)).astype(float)
    inspected = (None if inspected_column is None
                 else _binary_column(frame, inspected_column, allow_missing=False))
    hit = None if hit_column is None else _binary_column(frame, hit_column, allow_missing=True)
    if inspected is not None:
        burden = inspected
    elif sampling_ratios is not None:
        burden = _expected_burden(classes, sampling_ratios)
    else:
        burden = pd.Series(np.nan, index=frame.index)
    references = dict(reference_groups or {})
    tables = []
    for attribute in group_columns:
        labels = _group_labels(frame[attribute])
        table = _rates_by_group(labels, high, elevated, burden, inspected, hit)
        if unit_column is not None:
            units = frame[unit_column].groupby(labels.to_numpy(), sort=True).nunique()
            table["n_units"] = units.reindex(table["group"]).to_numpy()
        if attribute in references:
            reference = str(references[attribute])
            if reference not in set(table["group"]):
                raise ValueError(f"fairness_report: reference group {reference!r} does not "
                                 f"occur in column {attribute!r}")
        else:
            reference = str(table.sort_values(["n", "group"], ascending=[False, True])
                            ["group"].iloc[0])
        table = _add_ratios(table, reference, band, min_n)
        table.insert(0, "attribute", attribute)
        tables.append(table.sort_values(["n", "group"], ascending=[False, True]))
    columns = [*REPORT_COLUMNS, *(["n_units"] if unit_column is not None else [])]
    report = pd.concat(tables, ignore_index=True)[columns]
    report.attrs.update(band=tuple(band), min_n=min_n, high_classes=tuple(high_classes),
                        elevated_classes=tuple(elevated_classes))
    return report


def count_flags(report: pd.DataFrame) -> int:
    """Number of flagged (attribute, group) rows — the figure the promotion gate compares."""
    return int(report["flag"].sum())


def _ratio_text(value: float) -> str:
    if np.isnan(value):
        return "—"
    return "∞" if np.isinf(value) else f"{value:.2f}×"


def _rate_text(value: float) -> str:
    return "—" if np.isnan(value) else f"{100 * value:.1f}%"


def format_fairness(report: pd.DataFrame) -> str:
    """Fixed-width bilingual rendering of ``fairness_report`` for logs and model cards."""
    high = "+".join(report.attrs.get("high_classes", ("D",)))
    elevated = "+".join(report.attrs.get("elevated_classes", ("C", "D")))
    headers = [
        "属性 / attribute", "组 / group", "数量 / n",
        f"{high}类占比 / {high} rate", f"{high}比值 / {high} ratio",
        f"{elevated}类占比 / {elevated} rate", f"{elevated}比值 / {elevated} ratio",
        "检查负担 / insp. burden", "负担比值 / burden ratio",
        "命中率 / hit rate", "命中比值 / hit ratio", "标记 / flag",
    ]
    body = []
    for row in report.to_dict(orient="records"):
        if row["flag"]:
            which = ", ".join(_RATE_NAMES[m] for m in str(row["flagged_metrics"]).split(","))
            mark = f"超出区间 / outside band: {which}"
        elif row["is_reference"]:
            mark = "参照组 / reference"
        elif row["small_group"]:
            mark = "样本过小 / too small"
        else:
            mark = ""
        cells = [str(row["attribute"]), str(row["group"]), str(int(row["n"]))]
        for rate, ratio, _ in RATE_COLUMNS:
            cells += [_rate_text(float(row[rate])), _ratio_text(float(row[ratio]))]
        body.append([*cells, mark])
    right = [False, False] + [True] * 9 + [False]
    band = report.attrs.get("band")
    note = (f"区间 / band: {band[0]:g}–{band[1]:g}; 最小样本 / min n: "
            f"{report.attrs.get('min_n')}" if band else "")
    table = render_fixed_width(headers, body, right)
    return f"{table}\n{note}" if note else table

"""Figures for run records and model cards: calibration, SHAP summary, one firm's waterfall.

Built on bare ``matplotlib.figure.Figure`` objects — no pyplot, so no GUI backend, no global
figure registry to leak, and safe in a nightly batch or a web worker. Labels are English:
the fonts on servers usually lack CJK glyphs, and missing glyphs turn into warnings and
empty boxes; the bilingual wording lives in the tables and the model card instead.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from features.catalogue import FeatureInfo

_CMAP = "coolwarm"
BIAS_COLUMN = "bias"  # the constant term models.explain adds next to the feature columns


def feature_labels(catalogue: Mapping[str, FeatureInfo]) -> dict[str, str]:
    """Plot labels (English) for the features of a catalogue."""
    return {name: info.en for name, info in catalogue.items()}


def calibration_plot(tables: pd.DataFrame | Mapping[str, pd.DataFrame], *,
                     title: str = "Calibration (reliability)") -> Figure:
    """Observed rate against mean predicted probability per bin, one line per model.

    Takes ``metrics.reliability_table`` output (or a name → table map); marker area
    follows each bin's weight so sparse bins do not look as certain as full ones.
    """
    named = {"model": tables} if isinstance(tables, pd.DataFrame) else dict(tables)
    fig = Figure(figsize=(5.5, 5))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect")
    for name, table in named.items():
        missing = {"p_mean", "observed_rate", "weight"} - set(table.columns)
        if missing:
            raise ValueError(f"calibration_plot: table {name!r} lacks {sorted(missing)}")
        weight = table["weight"].to_numpy(dtype=float)
        area = 20 + 180 * weight / weight.max() if len(weight) and weight.max() > 0 else 20
        (line,) = ax.plot(table["p_mean"], table["observed_rate"], marker="", label=name)
        ax.scatter(table["p_mean"], table["observed_rate"], s=area, color=line.get_color(),
                   alpha=0.8, zorder=3)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed violation rate")
    ax.set_title(title)
    ax.legend(loc="upper left", frameon=False)
    fig.tight_layout()
    return fig


def _aligned(contributions: pd.DataFrame | np.ndarray, X: pd.DataFrame) -> pd.DataFrame:
    if isinstance(contributions, pd.DataFrame):
        contributions = contributions.drop(columns=[BIAS_COLUMN], errors="ignore")
        unknown = [c for c in contributions.columns if c not in X.columns]
        if unknown:
            raise ValueError(f"contributions have columns not in X: {unknown}")
        if len(contributions) != len(X):
            raise ValueError(f"contributions have {len(contributions)} rows, X has {len(X)}")
        return contributions.reset_index(drop=True)
    array = np.asarray(contributions, dtype=float)
    if array.shape != X.shape:
        raise ValueError(f"contributions shape {array.shape} differs from X shape {X.shape}")
    return pd.DataFrame(array, columns=X.columns)


def _swarm_offsets(values: np.ndarray, bins: int = 60) -> np.ndarray:
    """Vertical offsets in [-0.4, 0.4] that spread points sharing an x-bin (beeswarm)."""
    span = values.max() - values.min() if len(values) else 0.0
    cell = np.round(bins * (values - values.min()) / (span if span > 0 else 1.0))
    order = np.lexsort((values, cell))
    offsets = np.zeros(len(values))
    layer, last = 0, None
    for i in order:
        if cell[i] != last:
            layer, last = 0, cell[i]
        offsets[i] = np.ceil(layer / 2) * (1 if layer % 2 else -1)
        layer += 1
    peak = np.abs(offsets).max()
    return offsets * (0.4 / peak) if peak > 0 else offsets


def _colour_scale(column: pd.Series) -> np.ndarray:
    """Feature values mapped to [0, 1] between their 5th and 95th percentile; NaN stays."""
    numeric = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
    finite = numeric[np.isfinite(numeric)]
    if finite.size == 0:
        return numeric
    low, high = np.percentile(finite, [5, 95])
    if high <= low:
        return np.where(np.isfinite(numeric), 0.5, np.nan)
    return np.clip((numeric - low) / (high - low), 0, 1)


def shap_summary_plot(
    contributions: pd.DataFrame | np.ndarray,
    X: pd.DataFrame,
    labels: Mapping[str, str] | None = None,
    *,
    max_features: int = 15,
    max_points: int = 2000,
    title: str = "Feature contributions (SHAP)",
) -> Figure:
    """Beeswarm of per-firm contributions, features ordered by mean |contribution|.

    A ``bias`` column (the constant term of ``models.explain.shap_contributions``) is
    ignored. Colour is the feature's own value (blue low, red high, grey missing), so one can read
    e.g. "more penalties → pushes risk up". Large inputs are subsampled (fixed seed) to
    ``max_points`` rows to keep the figure fast and identical between runs.
    """
    contrib = _aligned(contributions, X)
    values = X.reset_index(drop=True)
    if len(contrib) > max_points:
        keep = np.sort(np.random.default_rng(0).choice(len(contrib), max_points, replace=False))
        contrib, values = contrib.iloc[keep], values.iloc[keep]
    importance = contrib.abs().mean().sort_values(ascending=False)
    shown = list(importance.index[:max_features])
    names = labels or {}
    fig = Figure(figsize=(7.5, 1.2 + 0.38 * len(shown)))
    ax = fig.add_subplot()
    norm = Normalize(0, 1)
    for row, feature in enumerate(reversed(shown)):
        x = contrib[feature].to_numpy(dtype=float)
        y = row + _swarm_offsets(x)
        colour = _colour_scale(values[feature])
        known = np.isfinite(colour)
        ax.scatter(x[~known], y[~known], s=8, color="lightgrey", linewidths=0)
        ax.scatter(x[known], y[known], s=8, c=colour[known], cmap=_CMAP, norm=norm,
                   linewidths=0)
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_yticks(range(len(shown)))
    ax.set_yticklabels([names.get(f, f) for f in reversed(shown)])
    ax.set_xlabel("contribution to model output")
    ax.set_title(title)
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=_CMAP), ax=ax, ticks=[0, 1], aspect=30)
    bar.ax.set_yticklabels(["low", "high"])
    bar.set_label("feature value")
    fig.tight_layout()
    return fig


def waterfall_plot(
    contributions: pd.Series,
    values: pd.Series,
    labels: Mapping[str, str] | None = None,
    *,
    base_value: float | None = None,
    max_features: int = 10,
    output_label: str = "model output (log-odds)",
    title: str = "Why this score",
) -> Figure:
    """One firm's score built up from ``base_value`` by its largest contributions.

    ``base_value`` defaults to the row's ``bias`` entry when it has one (TreeSHAP output),
    else 0 (additive point scorecards).
    The smaller contributions are merged into one "N other features" bar, so the bars
    still add up exactly to the model output shown at the top.
    """
    if BIAS_COLUMN in contributions.index:
        bias = float(contributions[BIAS_COLUMN])
        contributions = contributions.drop(BIAS_COLUMN)
        base_value = bias if base_value is None else base_value
    base_value = 0.0 if base_value is None else float(base_value)
    missing = [f for f in contributions.index if f not in values.index]
    if missing:
        raise ValueError(f"waterfall_plot: no feature value for {missing}")
    names = labels or {}
    value_of = values.to_dict()
    ranked = contributions.reindex(contributions.abs().sort_values(ascending=False).index)
    top, rest = ranked.iloc[:max_features], ranked.iloc[max_features:]
    ordered = [(f"{names.get(str(f), str(f))} = {_value_text(value_of[f])}", float(v))
               for f, v in top.items()]
    if len(rest):
        ordered.append((f"{len(rest)} other features", float(rest.sum())))
    bottom_up = list(reversed(ordered))  # largest contribution drawn at the top
    fig = Figure(figsize=(7.5, 1.4 + 0.42 * len(bottom_up)))
    ax = fig.add_subplot()
    running = base_value
    for row, (_, amount) in enumerate(bottom_up):
        ax.barh(row, amount, left=running, height=0.6,
                color="#d6604d" if amount > 0 else "#4393c3")
        ax.text(running + amount, row, f" {amount:+.3f} ", va="center", fontsize=8,
                ha="left" if amount > 0 else "right")
        running += amount
    ax.axvline(base_value, color="grey", linestyle="--", linewidth=0.8)
    ax.axvline(running, color="black", linewidth=0.8)
    ax.use_sticky_edges = False  # bars start mid-axis; let margins apply on both sides
    ax.margins(x=0.2)  # room for the value labels at the bar ends
    ax.set_yticks(range(len(bottom_up)))
    ax.set_yticklabels([label for label, _ in bottom_up])
    total = running
    ax.set_xlabel(f"{output_label}: base {base_value:.3f} → {total:.3f}")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def _value_text(value: object) -> str:
    if isinstance(value, float | np.floating):
        return "missing" if np.isnan(value) else f"{value:.4g}"
    return str(value)

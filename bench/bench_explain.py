"""Benchmark: scoring + explanation overhead against bare LightGBM on the same matrix.

Issue 7 target: `predict_proba` + `shap_contributions` + `top_reasons` within 1.3 × bare
`booster.predict` + `booster.predict(pred_contrib=True)`. The synthetic matrix (numeric
features, 5 % NaN, count-like and continuous columns) measures speed only, never quality.

    python -m bench.bench_explain --rows 100000
    python -m bench.bench_explain --rows 20000 --features 60 --trees 300 --repeats 3
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import pandas as pd
from scipy.special import expit

from features.catalogue import FeatureInfo, IndicatorGroup
from models.calibration import CalibratedRiskModel
from models.explain import shap_contributions, top_reasons
from models.lgbm import RiskClassifier

_GROUPS: tuple[IndicatorGroup, ...] = ("basic", "dynamic", "supervision", "related", "social")
_DIRECTIONS: tuple[Literal[-1, 0, 1], ...] = (1, 1, -1, 0)


def synthetic_catalogue(n_features: int) -> dict[str, FeatureInfo]:
    """Bilingual catalogue over generic features, mixed monotone directions."""
    catalogue: dict[str, FeatureInfo] = {}
    for j in range(n_features):
        name = f"indicator_{j:02d}"
        catalogue[name] = FeatureInfo(
            name,
            _GROUPS[j % len(_GROUPS)],
            f"指标{j:02d}",
            f"indicator {j:02d}",
            direction=_DIRECTIONS[j % len(_DIRECTIONS)],
            unit_zh="次" if j % 2 == 0 else "",
            unit_en="times" if j % 2 == 0 else "",
        )
    return catalogue


def synthetic_frame(
    n_rows: int, catalogue: dict[str, FeatureInfo], seed: int
) -> tuple[pd.DataFrame, np.ndarray]:
    """Counts on even columns, continuous on odd ones, 5 % NaN; label from a known logit."""
    rng = np.random.default_rng(seed)
    n_features = len(catalogue)
    values = np.where(
        np.arange(n_features) % 2 == 0,
        rng.poisson(0.7, (n_rows, n_features)),
        rng.normal(0.0, 1.0, (n_rows, n_features)),
    ).astype(np.float64)
    signs = np.array([float(info.direction or 1) for info in catalogue.values()])
    weights = signs * rng.uniform(0.05, 0.4, n_features)
    logit = -2.5 + values @ weights + 0.3 * np.sin(values[:, 1] * 3)
    values[rng.random(values.shape) < 0.05] = np.nan
    labels = (rng.random(n_rows) < expit(logit)).astype(np.int64)
    index = pd.RangeIndex(n_rows, name="entity")
    return pd.DataFrame(values, columns=list(catalogue), index=index), labels


def timed_stages(stages: Sequence[tuple[str, Callable[[], object]]]) -> dict[str, float]:
    """Wall-clock seconds per stage, run in order."""
    seconds: dict[str, float] = {}
    for name, action in stages:
        start = time.perf_counter()
        action()
        seconds[name] = time.perf_counter() - start
    return seconds


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000, help="rows scored and explained")
    parser.add_argument("--features", type=int, default=60)
    parser.add_argument("--trees", type=int, default=300)
    parser.add_argument("--train-rows", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    catalogue = synthetic_catalogue(args.features)
    X_train, y_train = synthetic_frame(args.train_rows, catalogue, seed=1)
    X_cal, y_cal = synthetic_frame(max(args.train_rows // 4, 2_000), catalogue, seed=2)
    X, _ = synthetic_frame(args.rows, catalogue, seed=3)

    start = time.perf_counter()
    base = RiskClassifier(
        catalogue, n_estimators=args.trees, max_depth=6, num_leaves=31, n_jobs=args.threads
    ).fit(X_train, y_train)
    model = CalibratedRiskModel(base).fit(X_cal, y_cal)
    train_seconds = time.perf_counter() - start
    booster = base.booster_
    matrix = X.to_numpy(dtype=np.float64)
    leaves = booster.dump_model()["tree_info"]
    mean_leaves = np.mean([tree["num_leaves"] for tree in leaves])
    print(
        f"rows={args.rows:,} features={args.features} trees={booster.current_iteration()} "
        f"mean leaves/tree={mean_leaves:.1f} threads={args.threads} "
        f"(train+calibrate {train_seconds:.1f} s on {args.train_rows:,} rows)"
    )

    state: dict[str, pd.DataFrame] = {}

    def explain() -> None:
        state["contributions"] = shap_contributions(model, X)

    def reasons() -> None:
        state["reasons"] = top_reasons(state["contributions"], X, catalogue, k=3)

    bare_stages: list[tuple[str, Callable[[], object]]] = [
        ("booster.predict", lambda: booster.predict(matrix)),
        ("booster.predict(pred_contrib)", lambda: booster.predict(matrix, pred_contrib=True)),
    ]
    our_stages: list[tuple[str, Callable[[], object]]] = [
        ("predict_proba", lambda: model.predict_proba(X)),
        ("shap_contributions", explain),
        ("top_reasons", reasons),
    ]
    # Interleave the two pipelines and keep each stage's fastest run: on a shared machine
    # this cancels most of the load that would otherwise land on one side only.
    bare_runs, our_runs = [], []
    for _ in range(args.repeats):
        bare_runs.append(timed_stages(bare_stages))
        our_runs.append(timed_stages(our_stages))
    bare = {name: min(run[name] for run in bare_runs) for name, _ in bare_stages}
    ours = {name: min(run[name] for run in our_runs) for name, _ in our_stages}
    bare_total, our_total = sum(bare.values()), sum(ours.values())

    for label, stages in (("bare LightGBM", bare), ("riskmatrix", ours)):
        print(f"{label}: " + " + ".join(f"{name} {sec:.3f} s" for name, sec in stages.items()))
    print(f"reasons produced  : {len(state['reasons']):,}")
    print(f"bare LightGBM     : {args.rows / bare_total:10,.0f} rows/s ({bare_total:.3f} s)")
    print(f"score+explain     : {args.rows / our_total:10,.0f} rows/s ({our_total:.3f} s)")
    print(f"ratio (ours/bare) : {our_total / bare_total:.3f}  (target <= 1.3)")


if __name__ == "__main__":
    main()

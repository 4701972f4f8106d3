"""Training time of the enterprise model on a simulated district (issue target: < 5 min).

Reports the whole `train enterprise` workload without MLflow I/O — point-in-time features for
every monthly slice, the rolling backtest (LightGBM, logistic, scorecard per fold) and the
production fit — and, for the production fit, the ratio against bare `lightgbm.train` with the
same parameters on the same matrix, measured in the same run.

    python -m bench.bench_training --enterprises 20000
"""

from __future__ import annotations

import argparse
import resource
import time

import lightgbm as lgb
from sklearn.base import clone

from features.catalogue import model_inputs
from features.contract import TABLES
from features.snapshot import coerce_types
from simulation.district import DistrictConfig, simulate_district
from supervision.policy import load_policy
from training.enterprise import (
    EnterpriseData,
    fit_production_model,
    run_backtest,
)


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--enterprises", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--folds", type=int, default=4)
    args = parser.parse_args()

    district = simulate_district(DistrictConfig(enterprises=args.enterprises, seed=args.seed))
    snapshot = {n: coerce_types(TABLES[n], f) for n, f in district.tables.items()}
    policy = load_policy()
    data = EnterpriseData(snapshot, policy, district.truth)

    started = time.perf_counter()
    backtest = run_backtest(data, n_folds=args.folds)
    backtest_seconds = time.perf_counter() - started

    started = time.perf_counter()
    model, fold = fit_production_model(data)
    production_seconds = time.perf_counter() - started

    X, y = data.stacked(fold.train_as_ofs)
    names = model_inputs(policy.feature_catalogue())
    params = model.base.lightgbm_params(model.base.monotone_constraints_)
    started = time.perf_counter()
    lgb.train(params, lgb.Dataset(X[names].to_numpy(dtype="float64"), label=y.to_numpy()),
              num_boost_round=model.base.n_estimators)
    bare_seconds = time.perf_counter() - started
    started = time.perf_counter()
    clone(model.base).fit(X, y)
    ours_seconds = time.perf_counter() - started

    total = backtest_seconds + production_seconds
    print(f"enterprises {args.enterprises:,}  folds {len(backtest.folds)}  "
          f"training rows (production) {len(X):,}")
    print(f"backtest {backtest_seconds:.1f} s  production fit {production_seconds:.1f} s  "
          f"total {total:.1f} s ({total / 60:.1f} min; target < 5 min)")
    print(f"RiskClassifier.fit {ours_seconds:.2f} s  vs bare lightgbm.train {bare_seconds:.2f} s  "
          f"ratio {ours_seconds / bare_seconds:.2f}")
    print(f"peak RSS {peak_rss_gb():.2f} GB")


if __name__ == "__main__":
    main()

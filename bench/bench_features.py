"""Benchmark: point-in-time enterprise feature build on a synthetic snapshot.

Prints enterprises/s, source records/s and peak resident memory of the feature build (and the
time of the 12-month label build one year earlier), so a district
(20k enterprises, ~500k events) and a province partition (1M enterprises, ~20M events) can be
sized before deployment. The synthetic snapshot is typed like `features.snapshot` output but
its values are random; it measures speed only, never model quality.

    python -m bench.bench_features                  # district: 20k enterprises, 500k events
    python -m bench.bench_features --size province  # 1M enterprises, 20M events (~6 GB RAM)
    python -m bench.bench_features --enterprises 200000 --events 5000000
"""

from __future__ import annotations

import argparse
import resource
import threading
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
import psutil

from features.contract import (
    ENTERPRISE_EVENT_TYPES,
    ENTITY_TYPES,
    INSPECTION_OUTCOMES,
    INSPECTION_SOURCES,
    OWNERSHIP_TYPES,
    SEVERITIES,
    TABLES,
    TAX_GRADES,
)
from features.enterprise_features import REGISTRATION_CHANGE_ITEMS, build_enterprise_features
from features.labels import build_enterprise_labels

SIZES: dict[str, tuple[int, int]] = {
    "district": (20_000, 500_000),
    "city": (200_000, 5_000_000),
    "province": (1_000_000, 20_000_000),
}
AS_OF = pd.Timestamp("2024-01-01")
EXEMPT = frozenset(f"GZMJ-{i:03d}" for i in range(1, 13))
_START = np.datetime64("2012-01-01", "D")
_EVENT_SHARES = {
    "penalty": 0.04, "abnormal_list_in": 0.03, "abnormal_list_out": 0.02,
    "serious_dishonesty_in": 0.003, "serious_dishonesty_out": 0.001, "complaint": 0.20,
    "annual_report": 0.30, "tax_grade": 0.20, "registration_change": 0.08,
    "public_opinion": 0.05, "case_lead": 0.016, "monitoring_hit": 0.06,
}


def _strings(choices: Sequence[str], codes: np.ndarray) -> pd.Series:
    """A `string` column drawn from a few values (NA where code is -1)."""
    categorical = pd.Categorical.from_codes(codes, categories=pd.Index(list(choices)))
    return pd.Series(categorical).astype("string")


def _ids(prefix: str, count: int, width: int) -> pd.Series:
    return (prefix + pd.Series(np.arange(count)).astype("string").str.zfill(width)).astype(
        "string"
    )


def _dates(days: np.ndarray) -> pd.Series:
    return pd.Series((_START + days).astype("datetime64[ns]"))


def _enterprises(n: int, rng: np.random.Generator) -> pd.DataFrame:
    established = rng.integers(-6000, 4000, n)
    closed = rng.random(n) < 0.08
    status = np.where(closed, rng.integers(1, 3, n), 0)
    status_day = np.where(closed, established + rng.integers(30, 3000, n), -1)
    employees = pd.array(rng.poisson(12, n), dtype="Int64")
    employees[rng.random(n) < 0.2] = pd.NA
    frame = pd.DataFrame({
        "uscc": _ids("91440105", n, 10),
        "name": _ids("企业", n, 7),
        "industry_code": _strings(["I6432", "F5292", "C1810", "L7212", "E4790"],
                                  rng.integers(0, 5, n)),
        "entity_type": _strings(list(ENTITY_TYPES), rng.integers(0, len(ENTITY_TYPES), n)),
        "ownership_type": _strings(list(OWNERSHIP_TYPES), rng.integers(0, 5, n)),
        "registered_capital": rng.lognormal(5, 2, n),
        "employees": employees,
        "established_date": _dates(established),
        "street": _strings([f"街道{i}" for i in range(18)], rng.integers(0, 18, n)),
        "registered_address": _ids("地址", n, 7).str.slice(0, 7).astype("string"),
        "legal_rep_id": ("R" + pd.Series(rng.integers(0, int(n * 0.8), n)).astype("string")),
        "legal_rep_name": _strings(["张三", "李四"], rng.integers(0, 2, n)),
        "business_scope": pd.Series(pd.NA, index=range(n), dtype="string"),
        "status": _strings(list(("active", "revoked", "cancelled")), status),
        "status_date": pd.Series(np.where(closed, _START + status_day, np.datetime64("NaT"))
                                 .astype("datetime64[ns]")),
    })
    return frame.astype({"legal_rep_id": "string"})


def _events(n: int, m: int, rng: np.random.Generator) -> pd.DataFrame:
    kinds = list(ENTERPRISE_EVENT_TYPES)
    shares = np.array([_EVENT_SHARES[k] for k in kinds])
    kind = rng.choice(len(kinds), m, p=shares / shares.sum())
    occurred = rng.integers(0, 4500, m)
    severity = np.where(np.isin(kind, [kinds.index("public_opinion"),
                                       kinds.index("monitoring_hit")]),
                        rng.integers(0, 3, m), -1)
    grade = np.where(kind == kinds.index("tax_grade"), rng.integers(0, 5, m), -1)
    items = np.where(kind == kinds.index("registration_change"),
                     rng.integers(0, len(REGISTRATION_CHANGE_ITEMS), m), -1)
    report_year = pd.array(2012 + occurred // 365, dtype="Int64")
    report_year[kind != kinds.index("annual_report")] = pd.NA
    amount = np.where(kind == kinds.index("penalty"), rng.lognormal(8, 1.5, m), np.nan)
    return pd.DataFrame({
        "event_id": _ids("EV", m, 9),
        "uscc": _ids("91440105", n, 10).iloc[rng.integers(0, n, m)].reset_index(drop=True),
        "event_type": _strings(kinds, kind),
        "occurred_date": _dates(occurred),
        "known_date": _dates(occurred + rng.integers(0, 40, m)),
        "item_code": _strings(list(REGISTRATION_CHANGE_ITEMS), items),
        "severity": _strings(list(SEVERITIES), severity),
        "amount": amount,
        "grade": _strings(list(TAX_GRADES), grade),
        "report_year": report_year,
        "detail": pd.Series(pd.NA, index=range(m), dtype="string"),
    })


def _inspections(n: int, count: int, rng: np.random.Generator) -> pd.DataFrame:
    day = rng.integers(0, 4500, count)
    source = rng.integers(0, len(INSPECTION_SOURCES), count)
    random_draw = source == 0
    codes = [f"WF-{i:03d}" for i in range(1, 31)] + sorted(EXEMPT)
    return pd.DataFrame({
        "inspection_id": _ids("IN", count, 9),
        "uscc": _ids("91440105", n, 10).iloc[rng.integers(0, n, count)].reset_index(drop=True),
        "inspection_date": _dates(day),
        "known_date": _dates(day + rng.integers(0, 30, count)),
        "department": _strings(["market"], np.zeros(count, dtype=int)),
        "campaign_id": _strings(["C1"], np.where(random_draw, 0, -1)),
        "check_items": _strings(["ITEM-1"], np.zeros(count, dtype=int)),
        "source": _strings(list(INSPECTION_SOURCES), source),
        "inclusion_probability": np.where(random_draw, rng.uniform(0.02, 0.5, count), np.nan),
        "outcome": _strings(list(INSPECTION_OUTCOMES), rng.integers(0, 5, count)),
        "violation_code": _strings(codes, rng.integers(-1, len(codes), count)),
        "inspectors": _strings(["I1;I2"], np.zeros(count, dtype=int)),
    })


def synthetic_snapshot(n: int, m: int, seed: int = 1) -> dict[str, pd.DataFrame]:
    """Random snapshot with n enterprises, m events and n/3 inspections; other tables empty."""
    rng = np.random.default_rng(seed)
    snapshot = {
        "enterprises": _enterprises(n, rng),
        "enterprise_events": _events(n, m, rng),
        "inspections": _inspections(n, max(n // 3, 1), rng),
    }
    for name, table in TABLES.items():
        snapshot.setdefault(name, pd.DataFrame({c: pd.Series(dtype="string")
                                                for c in table.column_names}))
    return snapshot


class _PeakRss:
    """Samples this process's resident memory in a thread while the build runs."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        process = psutil.Process()
        while not self._stop.is_set():
            self.peak = max(self.peak, process.memory_info().rss)
            time.sleep(0.02)

    def __enter__(self) -> _PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="district")
    parser.add_argument("--enterprises", type=int, default=None)
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)
    n, m = SIZES[args.size]
    n = args.enterprises or n
    m = args.events or m

    started = time.perf_counter()
    snapshot = synthetic_snapshot(n, m)
    generated = time.perf_counter() - started
    records = sum(len(snapshot[t]) for t in ("enterprises", "enterprise_events", "inspections"))
    mib = 1024 * 1024
    before = psutil.Process().memory_info().rss
    print(f"snapshot: {n:,} enterprises, {m:,} events, {len(snapshot['inspections']):,} "
          f"inspections (generated in {generated:.1f} s, RSS {before / mib:,.0f} MiB)")
    for _ in range(args.repeat):
        with _PeakRss() as peak:
            started = time.perf_counter()
            features = build_enterprise_features(snapshot, AS_OF, exempt_codes=EXEMPT)
            elapsed = time.perf_counter() - started
        print(f"build: {elapsed:.2f} s for {len(features):,} rows x {features.shape[1]} columns | "
              f"{n / elapsed:,.0f} enterprises/s | {records / elapsed:,.0f} source records/s | "
              f"peak RSS during build {peak.peak / mib:,.0f} MiB "
              f"(+{(peak.peak - before) / mib:,.0f} MiB over the loaded snapshot)")
    started = time.perf_counter()
    labels = build_enterprise_labels(snapshot, AS_OF - pd.DateOffset(years=1), window_months=12,
                                     exempt_codes=EXEMPT)
    elapsed = time.perf_counter() - started
    print(f"labels: {elapsed:.2f} s for {len(labels):,} rows ({labels['label'].mean():.1%} "
          f"positive) | {records / elapsed:,.0f} source records/s")
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process peak RSS {max_rss:,.0f} MiB")


if __name__ == "__main__":
    main()

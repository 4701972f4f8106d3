"""Ingest throughput on a generated big district (not part of the test suite).

    python bench/bench_ingest.py --enterprises 1000000 --events 5000000

Writes `enterprises.csv` and `enterprise_events.csv` (with a small share of broken rows, so
the reject path is exercised), ingests them and prints rows per second.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from features.contract import ENTERPRISE_EVENT_TYPES, ENTITY_TYPES, OWNERSHIP_TYPES, SEVERITIES
from features.ingest import format_summary, ingest_directory
from features.uscc import ALPHABET, WEIGHTS

STREETS = np.array(["琶洲街道", "新港街道", "南洲街道", "江南中街道", "海幢街道", "赤岗街道"])


def credit_codes(count: int, rng: np.random.Generator) -> np.ndarray:
    """Distinct valid codes, vectorised (uscc.make_code is per code)."""
    symbols = np.array(list(ALPHABET))
    prefix = np.array([ALPHABET.index(c) for c in "91440105"])
    serial = rng.choice(31**9, size=count, replace=False)
    digits = np.stack([(serial // 31**p) % 31 for p in range(8, -1, -1)], axis=1)
    values = np.hstack([np.broadcast_to(prefix, (count, 8)), digits])
    check = (31 - (values @ WEIGHTS) % 31) % 31
    characters = symbols[np.hstack([values, check[:, None]])]
    return np.array(["".join(row) for row in characters])


def iso_dates(days: np.ndarray) -> np.ndarray:
    return np.datetime_as_string(np.datetime64("2000-01-01") + days.astype("timedelta64[D]"))


def enterprises(count: int, bad_share: float, rng: np.random.Generator) -> pa.Table:
    codes = credit_codes(count, rng)
    capital = np.round(rng.lognormal(5, 1.5, count), 2).astype(str)
    bad = rng.random(count) < bad_share
    capital[bad] = "abc"
    return pa.table({
        "uscc": codes,
        "name": np.char.add("广州市海珠区测试企业", np.arange(count).astype(str)),
        "industry_code": rng.choice(["I6513", "F5292", "E4790", "H6210"], count),
        "entity_type": rng.choice(list(ENTITY_TYPES), count),
        "ownership_type": rng.choice(list(OWNERSHIP_TYPES), count),
        "registered_capital": capital,
        "employees": rng.integers(0, 500, count).astype(str),
        "established_date": iso_dates(rng.integers(0, 8000, count)),
        "street": rng.choice(STREETS, count),
        "registered_address": np.char.add("广州市海珠区新港中路", np.arange(count).astype(str)),
        "legal_rep_id": np.char.add("P", np.arange(count).astype(str)),
        "legal_rep_name": rng.choice(["陈志强", "林晓燕", "黄国华"], count),
        "business_scope": rng.choice(["软件开发；信息系统集成服务", "餐饮服务", ""], count),
        "status": np.full(count, "active"),
        "status_date": np.full(count, ""),
    })


def events(count: int, codes: np.ndarray, bad_share: float, rng: np.random.Generator
           ) -> pa.Table:
    kinds = rng.choice(list(ENTERPRISE_EVENT_TYPES), count)
    occurred = rng.integers(6000, 9000, count)
    known = occurred + rng.integers(0, 30, count)
    needs_severity = np.isin(kinds, ["monitoring_hit", "public_opinion"])
    severity = np.where(needs_severity | (kinds == "penalty"),
                        rng.choice(list(SEVERITIES), count), "")
    known_text = iso_dates(known)
    bad = rng.random(count) < bad_share
    known_text[bad] = iso_dates(occurred[bad] - 5)  # known before occurred: a row rule
    return pa.table({
        "event_id": np.char.add("EV", np.arange(count).astype(str)),
        "uscc": rng.choice(codes, count),
        "event_type": kinds,
        "occurred_date": iso_dates(occurred),
        "known_date": known_text,
        "item_code": np.where(kinds == "penalty", "GS0201", ""),
        "severity": severity,
        "amount": np.where(kinds == "penalty", rng.integers(0, 100000, count).astype(str), ""),
        "grade": np.where(kinds == "tax_grade", rng.choice(list("ABMCD"), count), ""),
        "report_year": np.where(kinds == "annual_report", "2023", ""),
        "detail": rng.choice(["消费者投诉", "大数据监测: 经营地址异常", ""], count),
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--enterprises", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--bad-share", type=float, default=0.001)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as work:
        source, root = Path(work) / "source", Path(work) / "snapshots"
        source.mkdir()
        started = time.perf_counter()
        register = enterprises(args.enterprises, args.bad_share, rng)
        pa_csv.write_csv(register, source / "enterprises.csv")
        history = events(args.events, register.column("uscc").to_numpy(), args.bad_share, rng)
        pa_csv.write_csv(history, source / "enterprise_events.csv")
        size = sum(p.stat().st_size for p in source.iterdir()) / 1e6
        print(f"generated {args.enterprises:,} enterprises + {args.events:,} events "
              f"({size:,.0f} MB CSV) in {time.perf_counter() - started:.1f} s")
        cpu_started = time.process_time()
        report = ingest_directory(source, root)
        cpu = time.process_time() - cpu_started
        rows = sum(c.read for c in report.tables.values())
        print(format_summary(report))
        print(f"ingest: {rows:,} rows in {report.duration_seconds:.1f} s wall = "
              f"{rows / report.duration_seconds:,.0f} rows/s ({size / report.duration_seconds:.1f}"
              f" MB/s); {cpu:.1f} s CPU = {rows / cpu:,.0f} rows per CPU-second")


if __name__ == "__main__":
    main()

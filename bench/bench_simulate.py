"""Benchmark: simulate a district and write it, printing throughput and peak memory.

Targets: the 20k demo well under a minute; 1,000,000 enterprises under 10 minutes and under
8 GB peak RSS on 2 cores.

    python -m bench.bench_simulate --enterprises 100000
    python -m bench.bench_simulate --enterprises 1000000 --format parquet
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
import unicodedata
from pathlib import Path

from simulation.district import DistrictConfig, simulate_district
from simulation.io import write_district


def peak_rss_gb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024**3 if sys.platform == "darwin" else 1024**2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--enterprises", type=int, default=100_000)
    parser.add_argument("--years", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--format", choices=["csv", "parquet"], default="parquet")
    parser.add_argument("--out", type=Path, default=None,
                        help="output directory (default: a temporary one, removed after)")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)

    config = DistrictConfig(enterprises=args.enterprises, years=args.years, seed=args.seed)
    started = time.perf_counter()
    district = simulate_district(config, progress=args.progress)
    simulated = time.perf_counter()
    rss_after_simulation = peak_rss_gb()
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or Path(scratch) / "district"
        write_district(district, out, fmt=args.format)
        written = time.perf_counter()
    table_rows = sum(len(f) for f in district.tables.values())
    truth_rows = sum(len(f) for f in district.truth.values())
    total = written - started
    figures = [
        ("enterprises / 企业数", f"{config.enterprises:,}"),
        ("projects / 项目数", f"{config.project_count:,}"),
        ("source rows / 源表行数", f"{table_rows:,}"),
        ("truth rows / 真值行数", f"{truth_rows:,}"),
        ("simulate / 模拟耗时 (s)", f"{simulated - started:.1f}"),
        (f"write {args.format} / 写出耗时 (s)", f"{written - simulated:.1f}"),
        ("wall time / 总耗时 (s)", f"{total:.1f}"),
        ("enterprises/s / 企业每秒", f"{config.enterprises / total:,.0f}"),
        ("rows written/s / 每秒写出行数",
         f"{(table_rows + truth_rows) / (written - simulated):,.0f}"),
        ("peak RSS after simulate / 模拟后峰值内存 (GB)", f"{rss_after_simulation:.2f}"),
        ("peak RSS / 峰值内存 (GB)", f"{peak_rss_gb():.2f}"),
    ]
    for label, value in figures:
        print(f"{label}{' ' * (44 - _display_width(label))}{value:>14}")


def _display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)

if __name__ == "__main__":
    main()

"""The service benchmark's summary: which round a row reports and how steal is read."""

from __future__ import annotations

from bench.bench_service import Result, median_round, paired_ratios, steal_between


def _round(p99: float) -> Result:
    return Result("enterprise read", 32, 1000, 10.0, 3.0, p99, 0, 0)


def test_a_row_reports_its_median_round_not_its_best_or_worst() -> None:
    assert median_round([_round(40.0), _round(12.0), _round(19.0)]).p99_ms == 19.0
    assert median_round([_round(40.0), _round(12.0)]).p99_ms == 12.0  # lower middle
    assert median_round([_round(25.0)]).p99_ms == 25.0


def test_steal_is_the_share_of_all_cpu_time_between_two_readings() -> None:
    assert steal_between((100, 10_000), (150, 11_000)) == 5.0
    assert steal_between(None, (150, 11_000)) is None
    assert steal_between((100, 10_000), (100, 10_000)) is None  # no time passed


def test_ratios_pair_each_round_with_the_same_rounds_reference() -> None:
    service = [Result("on-demand", 1, 10, 1.0, 60.0, 120.0, 0, 0),
               Result("on-demand", 1, 10, 1.0, 90.0, 150.0, 0, 0)]
    bare = [Result("bare record", 1, 10, 1.0, 40.0, 60.0, 0, 0),
            Result("bare record", 1, 10, 1.0, 60.0, 100.0, 0, 0)]
    assert paired_ratios(service, bare) == [(1.5, 2.0), (1.5, 1.5)]
    assert paired_ratios(service, bare[:1]) == [(1.5, 2.0)]  # an unfinished round drops out

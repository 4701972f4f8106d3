"""Same config, same bytes; another seed, another district."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from simulation.district import DistrictConfig, SimulatedDistrict, simulate_district
from simulation.io import write_district


def test_same_config_gives_identical_tables(small_config: DistrictConfig,
                                            small_district: SimulatedDistrict,
                                            tmp_path: Path) -> None:
    again = simulate_district(small_config)
    for name, frame in small_district.tables.items():
        pd.testing.assert_frame_equal(frame, again.tables[name], obj=name)
    for name, frame in small_district.truth.items():
        pd.testing.assert_frame_equal(frame, again.truth[name], obj=name)
    write_district(small_district, tmp_path / "a", fmt="csv")
    write_district(again, tmp_path / "b", fmt="csv")
    for path in sorted((tmp_path / "a").glob("*.csv")):
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), path.name


def test_other_seed_gives_other_district(small_config: DistrictConfig,
                                         small_district: SimulatedDistrict) -> None:
    other = simulate_district(replace(small_config, seed=small_config.seed + 1))
    for name in ("enterprises", "enterprise_events", "inspections", "projects"):
        assert not small_district.tables[name].equals(other.tables[name]), name


def test_progress_bar_does_not_change_results(small_config: DistrictConfig) -> None:
    config = replace(small_config, enterprises=1_000, chunk_size=1_000)
    quiet = simulate_district(config)
    shown = simulate_district(config, progress=True)
    pd.testing.assert_frame_equal(quiet.tables["enterprise_events"],
                                  shown.tables["enterprise_events"])

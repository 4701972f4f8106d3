"""Simulated districts shared by the simulation tests (simulated once per session)."""

from __future__ import annotations

import pytest

from simulation.district import DistrictConfig, SimulatedDistrict, simulate_district

SMALL = DistrictConfig(enterprises=4_000, seed=11, chunk_size=1_500)
CALIBRATION = DistrictConfig(enterprises=20_000, seed=7)


@pytest.fixture(scope="session")
def small_config() -> DistrictConfig:
    return SMALL


@pytest.fixture(scope="session")
def small_district() -> SimulatedDistrict:
    """Small, several chunks (so chunk boundaries are exercised), every table non-empty."""
    return simulate_district(SMALL)


@pytest.fixture(scope="session")
def calibration_district() -> SimulatedDistrict:
    """The default demo size: large enough for the calibration bands to be meaningful."""
    return simulate_district(CALIBRATION)

"""riskmatrix: simulation — a synthetic district with known ground truth.

    from simulation import DistrictConfig, simulate_district, write_district
    district = simulate_district(DistrictConfig(enterprises=20_000, seed=7))
    write_district(district, Path("var/sim"), fmt="csv")
"""

from simulation.calibration import calibration_report, format_calibration
from simulation.district import DistrictConfig, SimulatedDistrict, simulate_district
from simulation.io import read_tables, read_truth, write_district

__all__ = [
    "DistrictConfig",
    "SimulatedDistrict",
    "calibration_report",
    "format_calibration",
    "read_tables",
    "read_truth",
    "simulate_district",
    "write_district",
]

"""Write a simulated district to disk as a department would deliver it; read it back.

Source tables go to `out_dir/<table>.csv|parquet` (exactly the contract's columns); the
ground truth goes to `out_dir/truth/<name>.parquet` and nowhere else, so scoring code that
reads the source directory cannot see it by accident.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from features.contract import TABLES
from simulation.district import SimulatedDistrict

TRUTH_DIR = "truth"
TableFormat = Literal["csv", "parquet"]


def _arrow(frame: pd.DataFrame, bools_as_text: bool) -> pa.Table:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if not bools_as_text:
        return table
    for i, column in enumerate(table.schema):
        if pa.types.is_boolean(column.type):
            values = frame[column.name].to_numpy(dtype=bool)
            table = table.set_column(i, column.name,
                                     pa.array(np.where(values, "True", "False"), type=pa.string()))
    return table


def write_table(frame: pd.DataFrame, path: Path, fmt: TableFormat) -> int:
    """Write one table; returns the number of rows written."""
    if fmt == "csv":
        pacsv.write_csv(_arrow(frame, bools_as_text=True), path,
                        pacsv.WriteOptions(quoting_style="needed"))
    elif fmt == "parquet":
        pq.write_table(_arrow(frame, bools_as_text=False), path, compression="zstd")
    else:
        raise ValueError(f"未知格式 {fmt!r} / unknown format {fmt!r}: use 'csv' or 'parquet'")
    return len(frame)


def write_district(district: SimulatedDistrict, out_dir: Path,
                   fmt: TableFormat = "parquet") -> None:
    """Source tables to `out_dir`, truth (and the config that made it) to `out_dir/truth`."""
    out_dir = Path(out_dir)
    truth_dir = out_dir / TRUTH_DIR
    truth_dir.mkdir(parents=True, exist_ok=True)
    for name in TABLES:
        write_table(district.tables[name], out_dir / f"{name}.{fmt}", fmt)
    for name, frame in district.truth.items():
        write_table(frame, truth_dir / f"{name}.parquet", "parquet")
    config = asdict(district.config)
    config["end_date"] = district.config.end_date.isoformat()
    (truth_dir / "config.json").write_text(json.dumps(config, ensure_ascii=False, indent=1),
                                           encoding="utf-8")


def read_truth(out_dir: Path) -> dict[str, pd.DataFrame]:
    """The ground-truth frames written by `write_district` (dates as datetime64)."""
    truth_dir = Path(out_dir) / TRUTH_DIR
    if not truth_dir.is_dir():
        raise FileNotFoundError(f"找不到真值目录 {truth_dir} / no truth directory at {truth_dir}")
    return {path.stem: pq.read_table(path).to_pandas(date_as_object=False)
            for path in sorted(truth_dir.glob("*.parquet"))}


def read_tables(out_dir: Path) -> dict[str, pd.DataFrame]:
    """The source tables of a simulated directory (CSV or Parquet), typed per the contract."""
    out_dir = Path(out_dir)
    tables: dict[str, pd.DataFrame] = {}
    for name, spec in TABLES.items():
        parquet, csv = out_dir / f"{name}.parquet", out_dir / f"{name}.csv"
        if parquet.exists():
            tables[name] = pq.read_table(parquet).to_pandas(
                types_mapper={pa.int64(): pd.Int64Dtype()}.get)
            continue
        if not csv.exists():
            raise FileNotFoundError(f"缺少表 {name} / table {name} missing in {out_dir}")
        frame = pd.read_csv(csv, dtype=str, keep_default_na=False, na_values=[""],
                            encoding="utf-8")
        for column in spec.columns:
            if column.kind == "int":
                frame[column.name] = pd.to_numeric(frame[column.name]).astype("Int64")
            elif column.kind == "float":
                frame[column.name] = pd.to_numeric(frame[column.name]).astype(float)
            elif column.kind == "bool":
                frame[column.name] = frame[column.name].map({"True": True, "False": False})
        tables[name] = frame
    return tables

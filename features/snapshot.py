"""Typed, immutable snapshots of the source tables: the only thing feature builders read.

Typing contract (feature builders rely on it exactly):

| contract kind          | pandas dtype in a snapshot | missing value |
|------------------------|----------------------------|---------------|
| ``date``               | ``datetime64[ns]``         | ``NaT``       |
| ``int``                | ``Int64``                  | ``<NA>``      |
| ``float``              | ``float64``                | ``NaN``       |
| ``bool``               | ``boolean``                | ``<NA>``      |
| ``str``/``uscc``/``list`` | ``string`` (pyarrow storage) | ``<NA>`` |

A ``list`` column keeps its normalised ``;``-joined text (e.g. ``"I001;I002"``: items trimmed,
empty items dropped). Every table has exactly the contract's columns, in contract order, and a
fresh ``RangeIndex``.

Layout of a snapshot root::

    snapshot_root/
        CURRENT                      # id of the current snapshot, replaced atomically, last
        <snapshot_id>/               # appears only when complete (os.replace of a staging dir)
            <table>.parquet          # one per contract table, absent tables written empty
            rejects.csv              # UTF-8 with BOM so Excel shows Chinese correctly
            rejects.parquet
            manifest.json            # written last inside the staging directory
        .staging-<id>-<random>/      # in-flight ingest; never read, removed on failure

``snapshot_id`` is ``<UTC created-at, %Y%m%dT%H%M%SZ>-<first 12 hex of input_hash>`` and gets a
``-<n>`` suffix if that name is taken, so ids sort by time and name their input.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.contract import LIST_SEPARATOR, TABLES, Column, ColumnKind, Table

STRING_DTYPE = pd.StringDtype("pyarrow")
KIND_DTYPES: dict[ColumnKind, Any] = {
    "date": np.dtype("datetime64[ns]"),
    "int": pd.Int64Dtype(),
    "float": np.dtype("float64"),
    "bool": pd.BooleanDtype(),
    "str": STRING_DTYPE,
    "uscc": STRING_DTYPE,
    "list": STRING_DTYPE,
}
# Text spellings of booleans (Chinese exports write 是/否); ingest accepts the same.
TRUE_TOKENS = ("true", "t", "yes", "y", "1", "是")
FALSE_TOKENS = ("false", "f", "no", "n", "0", "否")
CURRENT_POINTER = "CURRENT"
MANIFEST_FILE = "manifest.json"
REJECTS_CSV = "rejects.csv"
REJECTS_PARQUET = "rejects.parquet"
STAGING_PREFIX = ".staging-"


class SnapshotError(Exception):
    """No usable snapshot where one was expected (message bilingual, zh first)."""


def column_dtype(column: Column) -> Any:
    """The pandas dtype a snapshot uses for `column`."""
    return KIND_DTYPES[column.kind]


def empty_frame(table: Table) -> pd.DataFrame:
    """A zero-row frame with the table's typed columns (what an absent table becomes)."""
    return pd.DataFrame(
        {c.name: pd.Series([], dtype=column_dtype(c)) for c in table.columns}
    )


def _text_to_bool(column: Column, values: pd.Series) -> pd.Series:
    tokens = {**dict.fromkeys(TRUE_TOKENS, True), **dict.fromkeys(FALSE_TOKENS, False)}
    text = values.map(lambda v: str(v).strip().lower() if isinstance(v, str | int) else v)
    mapped = text.map(lambda v: tokens.get(v, v) if isinstance(v, str) else v)
    unknown = mapped.map(lambda v: isinstance(v, str))
    if unknown.any():
        examples = sorted(set(values[unknown.astype(bool)].astype(str)))[:3]
        raise ValueError(f"{column.name}: 不是布尔值 / not booleans: {examples}")
    return mapped.astype("boolean")


def _coerce_column(column: Column, values: pd.Series) -> pd.Series:
    kind = column.kind
    if kind == "date":
        return pd.to_datetime(values).astype("datetime64[ns]")
    if kind == "bool" and not pd.api.types.is_bool_dtype(values.dtype):
        return _text_to_bool(column, values)
    if kind == "list" and values.dtype == object:
        joined = values.map(
            lambda v: LIST_SEPARATOR.join(str(x) for x in v)
            if isinstance(v, list | tuple | np.ndarray)
            else v
        )
        return joined.astype(STRING_DTYPE)
    return values.astype(KIND_DTYPES[kind])


def coerce_types(table: Table, frame: pd.DataFrame) -> pd.DataFrame:
    """Cast an already-valid frame to the snapshot typing, columns in contract order.

    For frames built in code (simulator, tests) or read back from Parquet; it casts, it does
    not validate: use `features.ingest` for untrusted input. Missing optional columns become
    all-missing; a missing required column or an unknown column raises ValueError.
    """
    names = table.column_names
    unknown = [c for c in frame.columns if c not in names]
    missing = [c.name for c in table.columns if c.required and c.name not in frame.columns]
    if unknown or missing:
        raise ValueError(
            f"表 {table.name} 列不符: 缺少 {missing}, 未知 {unknown} / "
            f"table {table.name} columns do not match: missing {missing}, unknown {unknown}"
        )
    columns: dict[str, pd.Series] = {}
    for column in table.columns:
        if column.name in frame.columns:
            values = frame[column.name].reset_index(drop=True)
        else:
            values = pd.Series([None] * len(frame), dtype=object)
        columns[column.name] = _coerce_column(column, values)
    return pd.DataFrame(columns, index=pd.RangeIndex(len(frame)))


def snapshot_manifest(snapshot_dir: Path) -> dict[str, Any]:
    """The manifest of a complete snapshot (what went in, counts, hashes, versions)."""
    path = Path(snapshot_dir) / MANIFEST_FILE
    try:
        with path.open(encoding="utf-8") as handle:
            manifest: dict[str, Any] = json.load(handle)
    except FileNotFoundError as error:
        raise SnapshotError(
            f"快照不完整或不存在, 缺少 {path} / snapshot incomplete or missing: no {path}"
        ) from error
    return manifest


def _complete_snapshots(snapshot_root: Path) -> list[Path]:
    if not snapshot_root.is_dir():
        return []
    return sorted(
        p
        for p in snapshot_root.iterdir()
        if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST_FILE).is_file()
    )


def current_snapshot(snapshot_root: Path) -> Path:
    """The snapshot named by ``CURRENT``; without a pointer, the newest complete one.

    The pointer is authoritative because it is written only after a snapshot is complete;
    the fallback covers a crash between the snapshot's rename and the pointer update.
    """
    root = Path(snapshot_root)
    pointer = root / CURRENT_POINTER
    if pointer.is_file():
        snapshot_id = pointer.read_text(encoding="utf-8").strip()
        candidate = root / snapshot_id
        if (candidate / MANIFEST_FILE).is_file():
            return candidate
        raise SnapshotError(
            f"{pointer} 指向的快照 {snapshot_id!r} 不存在或不完整 / "
            f"{pointer} names snapshot {snapshot_id!r}, which is missing or incomplete"
        )
    complete = _complete_snapshots(root)
    if not complete:
        raise SnapshotError(
            f"{root} 中没有完整的快照, 请先运行 `riskmatrix ingest DIR` / "
            f"no complete snapshot in {root}; run `riskmatrix ingest DIR` first"
        )
    return complete[-1]


def load_snapshot(snapshot_dir: Path) -> dict[str, pd.DataFrame]:
    """Every contract table of a snapshot, typed as documented at the top of this module."""
    directory = Path(snapshot_dir)
    snapshot_manifest(directory)  # refuses incomplete directories
    frames: dict[str, pd.DataFrame] = {}
    for name, table in TABLES.items():
        path = directory / f"{name}.parquet"
        if not path.is_file():
            raise SnapshotError(
                f"快照 {directory.name} 缺少表文件 {path.name} / "
                f"snapshot {directory.name} lacks {path.name}"
            )
        frames[name] = coerce_types(table, pd.read_parquet(path))
    return frames


def _write_table(directory: Path, name: str, frame: pd.DataFrame) -> None:
    frame.to_parquet(directory / f"{name}.parquet", index=False)


class StagedSnapshot:
    """A snapshot being written into a hidden sibling directory; see `staged_snapshot`."""

    def __init__(self, root: Path, directory: Path) -> None:
        self.root = root
        self.directory = directory
        self.committed: Path | None = None

    def write_table(self, name: str, frame: pd.DataFrame) -> None:
        _write_table(self.directory, name, frame)

    def write_rejects(self, rejects: pd.DataFrame) -> None:
        rejects.to_csv(self.directory / REJECTS_CSV, index=False, encoding="utf-8-sig")
        rejects.to_parquet(self.directory / REJECTS_PARQUET, index=False)

    def commit(self, snapshot_id: str, manifest: Mapping[str, Any]) -> Path:
        """Write the manifest, move the directory into place, then repoint ``CURRENT``."""
        final_id = _free_id(self.root, snapshot_id)
        body = dict(manifest, snapshot_id=final_id)
        with (self.directory / MANIFEST_FILE).open("w", encoding="utf-8") as handle:
            json.dump(body, handle, ensure_ascii=False, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        target = self.root / final_id
        os.replace(self.directory, target)
        _replace_text(self.root / CURRENT_POINTER, final_id + "\n")
        self.committed = target
        return target


def _free_id(root: Path, snapshot_id: str) -> str:
    candidate, sequence = snapshot_id, 1
    while (root / candidate).exists():
        candidate = f"{snapshot_id}-{sequence}"
        sequence += 1
    return candidate


def _replace_text(path: Path, text: str) -> None:
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


@contextmanager
def staged_snapshot(snapshot_root: Path) -> Iterator[StagedSnapshot]:
    """Stage a snapshot; anything raised inside removes the staging directory.

    Until `StagedSnapshot.commit` returns, readers see the previous current snapshot only.
    One writer per snapshot root at a time (the nightly job); a hard kill can leave a
    ``.staging-*`` directory, which no reader ever opens.
    """
    root = Path(snapshot_root)
    root.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=root))
    stage = StagedSnapshot(root, directory)
    try:
        yield stage
    finally:
        if stage.committed is None:
            shutil.rmtree(directory, ignore_errors=True)

"""Validated ingest: a directory of exported source files -> a typed snapshot plus rejects.

Departments' systems export CSV (often from Excel) or Parquet. Nothing reaches feature
builders without passing the contract in `features.contract`; a row that breaks any rule is
kept in ``rejects.csv`` with one entry per broken rule (table, file, row, line, column, value,
rule and a bilingual message), never silently dropped. A table that cannot be used at all
raises `IngestError` and no snapshot is written.

Decisions (also in docs/contract.md, "File formats"):

* Required tables: `REQUIRED_TABLES` (``enterprises``). Every other table is optional; an
  absent one is reported as "absent" and written as an empty typed table.
* Columns: a missing *required* column is fatal; a missing optional column is read as all
  missing (and reported); an unknown or duplicated header is fatal.
* Values: every cell is read as text (empty = missing; no "NULL"/"NA" magic), trimmed, and
  - except free text (names, addresses, details) - NFKC-normalised, so full-width digits,
  letters and punctuation from Chinese input methods mean the same as ASCII.
* Dates: ``YYYY-MM-DD``, ``YYYY/MM/DD``, ``YYYY.MM.DD`` (month and day may have one digit),
  ``YYYYMMDD`` and ``YYYY年M月D日``, optionally followed by a midnight time ``00:00[:00]``.
* Booleans: true/false, t/f, yes/no, y/n, 1/0, 是/否 (case-insensitive).
* Lists: ``;``-separated (a full-width ``；`` is NFKC-normalised to ``;``); items trimmed,
  empty items dropped.
* Rows whose every field is empty (Excel's trailing ``,,,,``) are skipped and counted.
* A rule that depends on a cell already reported broken is not evaluated for that row, so
  one typo yields one reject entry, not a cascade.
* Key uniqueness is judged among rows that pass every other rule: the first valid
  occurrence is kept and later ones are rejected with rule ``unique_key``, naming it.
* References are checked against the *accepted* rows of the referenced table, validated
  first (`features.contract.VALIDATION_ORDER`); an absent referenced table has no rows.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pandera.pandas as pa_schema
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from pandera.errors import SchemaErrors
from tqdm import tqdm

from features import contract
from features.contract import LIST_SEPARATOR, TABLES, VALIDATION_ORDER, Column, RowRule, Table
from features.snapshot import (
    FALSE_TOKENS,
    REJECTS_CSV,
    STRING_DTYPE,
    TRUE_TOKENS,
    column_dtype,
    empty_frame,
    staged_snapshot,
)
from features.uscc import ALPHABET, CODE_LENGTH, valid_mask

# Only enterprises are indispensable: every model starts from the enterprise register. A
# district without construction data, a roster or tags can still be scored.
REQUIRED_TABLES: frozenset[str] = frozenset({"enterprises"})
SOURCE_FORMATS: dict[str, str] = {".csv": "csv", ".parquet": "parquet"}
IGNORED_FOLDER = "truth"  # the simulator's ground truth; never an input
CODE_NAME_SUFFIXES = ("_id", "_code", "_no")  # 'str' columns that are identifiers, not text
DATE_PATTERN = (
    r"^(?:(?P<y1>\d{4})-(?P<m1>\d{1,2})-(?P<d1>\d{1,2})"
    r"|(?P<y2>\d{4})/(?P<m2>\d{1,2})/(?P<d2>\d{1,2})"
    r"|(?P<y3>\d{4})\.(?P<m3>\d{1,2})\.(?P<d3>\d{1,2})"
    r"|(?P<y4>\d{4})(?P<m4>\d{2})(?P<d4>\d{2})"
    r"|(?P<y5>\d{4})年(?P<m5>\d{1,2})月(?P<d5>\d{1,2})日)"
    r"(?:[ T]00:00(?::00(?:\.0+)?)?)?$"
)
DATE_FORMATS = ("YYYY-MM-DD", "YYYY/MM/DD", "YYYY.MM.DD", "YYYYMMDD", "YYYY年M月D日")
ISO_DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"  # the common case, parsed by slicing
INT_PATTERN = r"^[+-]?\d{1,18}(?:\.0*)?$"
FLOAT_PATTERN = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"
# Years a datetime64[ns] can hold.
FIRST_YEAR, LAST_YEAR = 1678, 2261
DECODE_CHUNK_BYTES = 16 << 20
REJECT_COLUMNS = (
    "table", "file", "row", "line", "column", "value", "rule", "message_zh", "message_en",
)
TEXT = pa.large_string()
# Rules every table gets from its column definitions; row rules come from the contract.
COLUMN_RULES: dict[str, tuple[str, str]] = {
    "field_count": ("一行的字段数与表头列数不符",
                    "a CSV row has more or fewer fields than the header"),
    "type": ("值无法按列类型解析 (整数、数字、日期、布尔值)",
             "the value cannot be read as the column's type (integer, number, date, boolean)"),
    "required": ("必填字段为空", "a required value is missing"),
    "allowed": ("值不在允许范围内", "the value is not one of the allowed codes"),
    "minimum": ("值小于最小值", "the value is below the column's minimum"),
    "maximum": ("值大于最大值", "the value is above the column's maximum"),
    "max_length": ("文本超过最大长度", "the text is longer than the column's maximum length"),
    "uscc_check": ("统一社会信用代码位数、字符或校验位错误 (GB 32100-2015)",
                   "the credit code has a wrong length, symbol or check character "
                   "(GB 32100-2015)"),
    "reference": ("引用的记录在被引用表的已接受记录中不存在",
                  "the referenced record is not among the accepted rows of the referenced "
                  "table"),
    "unique_key": ("键重复; 保留第一条有效记录, 其后的重复记录被拒绝",
                   "the key repeats; the first valid row is kept, later ones are rejected"),
}


class IngestError(Exception):
    """A source table that cannot be used at all (message bilingual, zh first)."""


class UnknownRuleError(LookupError):
    """The contract names a row rule that ingest does not implement."""


# --------------------------------------------------------------------------------------
# Discovery and reading


@dataclass(frozen=True)
class SourceFile:
    """One exported file standing for one contract table."""

    table: str
    path: Path
    format: Literal["csv", "parquet"]


@dataclass
class RawTable:
    """A table as text: contract columns in order, null = empty cell.

    `rows` and `lines` give each record's 1-based data row and file line (header = line 1);
    `structural` holds reject records for rows that could not be split into fields.
    """

    file: str
    values: pa.Table
    rows: np.ndarray
    lines: np.ndarray
    structural: pd.DataFrame
    missing_optional: tuple[str, ...] = ()


def discover_sources(source_dir: Path) -> tuple[dict[str, SourceFile], list[str]]:
    """Match files to contract tables; everything else is returned as ignored."""
    directory = Path(source_dir)
    if not directory.is_dir():
        raise IngestError(f"源目录不存在: {directory} / source directory not found: {directory}")
    found: dict[str, list[Path]] = {}
    ignored: list[str] = []
    for entry in sorted(directory.iterdir()):
        if entry.is_dir():
            ignored.append(entry.name + "/")
            continue
        suffix = entry.suffix.lower()
        if suffix in SOURCE_FORMATS and entry.stem in TABLES:
            found.setdefault(entry.stem, []).append(entry)
        else:
            ignored.append(entry.name)
    sources: dict[str, SourceFile] = {}
    for table, paths in found.items():
        if len(paths) > 1:
            names = ", ".join(p.name for p in paths)
            raise IngestError(
                f"表 {table} 有多个源文件 ({names}), 请只保留一个 / "
                f"table {table} has several source files ({names}); keep exactly one"
            )
        path = paths[0]
        sources[table] = SourceFile(table, path, SOURCE_FORMATS[path.suffix.lower()])  # type: ignore[arg-type]
    missing = sorted(REQUIRED_TABLES - set(sources))
    if missing:
        expected = ", ".join(f"{t}.csv / {t}.parquet" for t in missing)
        present = ", ".join(ignored) or "-"
        raise IngestError(
            f"缺少必需的表 {expected} (目录 {directory} 中的其他文件: {present}) / "
            f"required table missing: {expected} (other files in {directory}: {present})"
        )
    return sources, ignored


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise IngestError(
            f"无法读取文件 {path.name}: {error} / cannot read file {path.name}: {error}"
        ) from error


def check_header(table: Table, file_name: str, header: Sequence[str]) -> tuple[str, ...]:
    """Refuse duplicated, unknown or missing required columns; return missing optional ones."""
    counts = Counter(header)
    duplicated = sorted(name for name, n in counts.items() if n > 1)
    if duplicated:
        raise IngestError(
            f"{file_name}: 表头列名重复 {duplicated} / duplicated header column(s) {duplicated}"
        )
    expected = table.column_names
    unknown = [name for name in header if name not in expected]
    if unknown:
        raise IngestError(
            f"{file_name}: 未知列 {unknown}, 表 {table.name} 的列为 {expected} / "
            f"unknown column(s) {unknown}; table {table.name} has columns {expected}"
        )
    missing = [name for name in table.required_columns if name not in header]
    if missing:
        raise IngestError(
            f"{file_name}: 缺少必填列 {missing} / missing required column(s) {missing}"
        )
    return tuple(name for name in expected if name not in header)


def _utf8_payload(data: bytes, encoding: str, file_name: str) -> bytes:
    """Validated UTF-8 bytes without BOM; decoding errors name the byte offset."""
    try:
        codec = codecs.lookup(encoding)
    except LookupError as error:
        raise IngestError(
            f"未知的字符编码 {encoding!r} / unknown encoding {encoding!r}"
        ) from error
    is_utf8 = codec.name in ("utf-8", "utf-8-sig")
    if is_utf8 and data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        raise IngestError(
            f"{file_name}: 文件为 UTF-16 编码 (Excel \"Unicode 文本\"), 请另存为 \"CSV UTF-8\" / "
            f"file is UTF-16 (Excel \"Unicode text\"); save it as \"CSV UTF-8\""
        )
    body = data[len(codecs.BOM_UTF8):] if is_utf8 and data.startswith(codecs.BOM_UTF8) else data
    decoder = codecs.getincrementaldecoder(codec.name)()
    pieces: list[bytes] = []
    view = memoryview(body)
    for start in range(0, max(len(body), 1), DECODE_CHUNK_BYTES):
        pending = len(decoder.getstate()[0])
        chunk = view[start:start + DECODE_CHUNK_BYTES]
        try:
            text = decoder.decode(chunk, final=start + DECODE_CHUNK_BYTES >= len(body))
        except UnicodeDecodeError as error:
            offset = start - pending + error.start + (len(data) - len(body))
            hint = (
                '若文件为 GBK/GB18030 编码, 请使用 encoding="gb18030" / '
                if is_utf8 else ""
            )
            hint_en = 'if the file is GBK/GB18030, pass encoding="gb18030"' if is_utf8 else ""
            raise IngestError(
                f"{file_name}: 第 {offset} 字节处不是有效的 {codec.name} 编码; {hint}"
                f"{file_name}: invalid {codec.name} byte at offset {offset}; {hint_en}"
            ) from error
        if not is_utf8:
            pieces.append(text.encode("utf-8"))
    return body if is_utf8 else b"".join(pieces)


def _csv_header(payload: bytes) -> list[str]:
    """The header record exactly as written (names are stripped by the caller)."""
    head = payload[: 1 << 20].decode("utf-8", errors="ignore")
    return next(csv.reader(io.StringIO(head, newline="")), [])


def _physical_lines(payload: bytes) -> int:
    if not payload:
        return 0
    return payload.count(b"\n") + (0 if payload.endswith(b"\n") else 1)


def _structural_rejects(table: str, file_name: str, entries: list[tuple[int, int, int, str]],
                        expected: int) -> pd.DataFrame:
    if not entries:
        return _empty_rejects()
    rows, lines, counts, texts = zip(*entries, strict=True)
    frame = pd.DataFrame({
        "table": table, "file": file_name, "row": list(rows), "line": list(lines),
        "column": "", "value": list(texts), "rule": "field_count",
        "message_zh": [f"字段数 {n} 与表头列数 {expected} 不符" for n in counts],
        "message_en": [f"{n} fields but the header has {expected} columns" for n in counts],
    })
    return frame.loc[:, list(REJECT_COLUMNS)]


def _fast_csv(payload: bytes, header_raw: list[str]) -> tuple[pa.Table, np.ndarray] | None:
    """Parse with Arrow; None when the file needs the exact slow path (ragged or odd lines)."""
    ragged: list[object] = []

    def note_ragged(row: object) -> str:
        ragged.append(row)
        return "skip"

    try:
        parsed = pa_csv.read_csv(
            pa.BufferReader(payload),
            parse_options=pa_csv.ParseOptions(newlines_in_values=True,
                                              invalid_row_handler=note_ragged),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(header_raw, TEXT),
                strings_can_be_null=False, quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if ragged or parsed.num_columns != len(header_raw):
        return None
    newlines = np.zeros(parsed.num_rows, dtype=np.int64)
    for column in parsed.columns:
        newlines += pc.fill_null(pc.count_substring(column, "\n"), 0).to_numpy()
    if 1 + parsed.num_rows + int(newlines.sum()) != _physical_lines(payload):
        return None  # blank lines or a multi-line header: number lines exactly instead
    lines = 2 + np.arange(parsed.num_rows, dtype=np.int64) + np.cumsum(newlines) - newlines
    return parsed, lines


def _slow_csv(payload: bytes, header: list[str], table: str, file_name: str
              ) -> tuple[pa.Table, np.ndarray, np.ndarray, pd.DataFrame]:
    """Python CSV reader: exact line numbers, ragged rows become `field_count` rejects."""
    reader = csv.reader(io.StringIO(payload.decode("utf-8"), newline=""))
    columns: list[list[str]] = [[] for _ in header]
    rows: list[int] = []
    lines: list[int] = []
    ragged: list[tuple[int, int, int, str]] = []
    previous_line, row_number = 0, 0
    try:
        for index, record in enumerate(reader):
            start_line, previous_line = previous_line + 1, reader.line_num
            if index == 0 or not record:
                continue
            row_number += 1
            if len(record) != len(header):
                ragged.append((row_number, start_line, len(record), ",".join(record)))
                continue
            for values, value in zip(columns, record, strict=True):
                values.append(value)
            rows.append(row_number)
            lines.append(start_line)
    except csv.Error as error:
        raise IngestError(
            f"{file_name}: 第 {reader.line_num} 行 CSV 格式错误 ({error}) / "
            f"malformed CSV at line {reader.line_num}: {error}"
        ) from error
    parsed = pa.table({name: pa.array(values, pa.string())
                       for name, values in zip(header, columns, strict=True)})
    expected = len(header)
    return (parsed, np.array(rows, dtype=np.int64), np.array(lines, dtype=np.int64),
            _structural_rejects(table, file_name, ragged, expected))


def _as_text(values: pa.ChunkedArray, file_name: str, column: str) -> pa.ChunkedArray:
    """Any Arrow column as text, so Parquet goes through the same rules as CSV."""
    kind = values.type
    try:
        if pa.types.is_dictionary(kind):
            values = values.cast(kind.value_type)
            kind = values.type
        if pa.types.is_list(kind) or pa.types.is_large_list(kind):
            items = pc.cast(values, pa.list_(pa.string()))
            return pc.binary_join(items, LIST_SEPARATOR).cast(TEXT)
        if pa.types.is_floating(kind):  # NaN is how many writers spell "missing"
            values = pc.if_else(pc.is_nan(values), pa.scalar(None, kind), values)
        if pa.types.is_timestamp(kind):
            dates = pc.cast(pc.floor_temporal(values, unit="day"), pa.date32())
            midnight = pc.all(pc.equal(pc.floor_temporal(values, unit="day"), values))
            if midnight.as_py() in (True, None):
                return pc.cast(dates, TEXT)
        return pc.cast(values, TEXT)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise IngestError(
            f"{file_name}: 列 {column} 的类型 {kind} 无法读取 / "
            f"column {column} has unsupported type {kind}: {error}"
        ) from error


def _in_contract_order(table: Table, parsed: pa.Table, rows: int) -> pa.Table:
    columns = []
    for name in table.column_names:
        if name in parsed.column_names:
            columns.append(parsed.column(name).cast(TEXT).combine_chunks())
        else:
            columns.append(pa.nulls(rows, TEXT))
    return pa.table(columns, names=table.column_names)


def read_csv_source(table: Table, path: Path, encoding: str) -> RawTable:
    """Read one CSV export as text, refusing it whole only when no row can be trusted."""
    data = _read_bytes(path)
    payload = _utf8_payload(data, encoding, path.name)
    if not payload or payload.isspace():
        raise IngestError(f"{path.name}: 文件为空 (没有表头) / file is empty (no header row)")
    header_raw = _csv_header(payload)
    header = [name.strip() for name in header_raw]
    missing_optional = check_header(table, path.name, header)
    fast = _fast_csv(payload, header_raw)
    if fast is not None:
        parsed, lines = fast
        rows = np.arange(1, parsed.num_rows + 1, dtype=np.int64)
        structural = _empty_rejects()
        parsed = parsed.rename_columns(header)
    else:
        parsed, rows, lines, structural = _slow_csv(payload, header, table.name, path.name)
    values = _in_contract_order(table, parsed, parsed.num_rows)
    return RawTable(path.name, values, rows, lines, structural, missing_optional)


def read_parquet_source(table: Table, path: Path) -> RawTable:
    """Read one Parquet export, turning typed columns into text for uniform validation."""
    try:
        parsed = pq.read_table(path)
    except (pa.ArrowException, OSError) as error:
        raise IngestError(
            f"无法读取 Parquet 文件 {path.name}: {error} / cannot read Parquet file "
            f"{path.name}: {error}"
        ) from error
    header = [name.strip() for name in parsed.column_names]
    missing_optional = check_header(table, path.name, header)
    text = pa.table(
        [_as_text(parsed.column(i), path.name, name) for i, name in enumerate(header)],
        names=header,
    )
    values = _in_contract_order(table, text, text.num_rows)
    rows = np.arange(1, text.num_rows + 1, dtype=np.int64)
    return RawTable(path.name, values, rows, rows.copy(), _empty_rejects(), missing_optional)


def read_source(source: SourceFile, encoding: str) -> RawTable:
    table = TABLES[source.table]
    if source.format == "csv":
        return read_csv_source(table, source.path, encoding)
    return read_parquet_source(table, source.path)


# --------------------------------------------------------------------------------------
# Normalising and parsing text into typed columns


def is_free_text(table: Table, column: Column) -> bool:
    """Names, addresses and details keep their characters; codes and values get NFKC."""
    return (
        column.kind == "str"
        and column.allowed is None
        and column.references is None
        and column.name not in table.key
        and not column.name.endswith(CODE_NAME_SUFFIXES)
    )


def normalise_text(table: Table, column: Column, values: pa.Array) -> pa.Array:
    """Trim (and NFKC unless free text); lists re-joined with ';'; empty becomes null."""
    text = values if is_free_text(table, column) else pc.utf8_normalize(values, form="NFKC")
    text = pc.utf8_trim_whitespace(text)
    if column.kind == "list":
        separator = LIST_SEPARATOR
        text = pc.replace_substring_regex(text, rf"\s*{separator}\s*", separator)
        text = pc.replace_substring_regex(text, rf"{separator}{{2,}}", separator)
        text = pc.replace_substring_regex(text, rf"^{separator}|{separator}$", "")
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, TEXT), text)


@dataclass(frozen=True)
class ParsedColumn:
    """A typed column plus which present cells could not be parsed."""

    values: pd.Series
    malformed: np.ndarray


def _bool_array(values: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False), dtype=bool)


def _parse_int(text: pa.Array) -> tuple[pd.Series, np.ndarray]:
    ok = _bool_array(pc.match_substring_regex(text, INT_PATTERN))
    cleaned = pc.replace_substring_regex(text, r"\.0*$|^\+", "")
    numbers = pc.cast(pc.if_else(pa.array(ok), cleaned, pa.scalar(None, TEXT)), pa.int64())
    data = pc.fill_null(numbers, 0).to_numpy(zero_copy_only=False)
    series = pd.Series(pd.arrays.IntegerArray(data.astype(np.int64), ~ok))
    return series, ok


def _parse_float(text: pa.Array) -> tuple[pd.Series, np.ndarray]:
    ok = _bool_array(pc.match_substring_regex(text, FLOAT_PATTERN))
    cleaned = pc.replace_substring_regex(text, r"^\+", "")
    numbers = pc.cast(pc.if_else(pa.array(ok), cleaned, pa.scalar(None, TEXT)), pa.float64())
    data = np.asarray(numbers.to_numpy(zero_copy_only=False), dtype=np.float64)
    ok &= np.isfinite(np.where(ok, data, 0.0))
    return pd.Series(np.where(ok, data, np.nan)), ok


def _date_parts(text: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Year, month, day and matched mask; ISO dates by slicing, others by the full pattern."""
    size = len(text)
    iso = _bool_array(pc.match_substring_regex(text, ISO_DATE_PATTERN))
    parts = [np.zeros(size, dtype=np.int64) for _ in range(3)]
    for part, (start, stop) in zip(parts, ((0, 4), (5, 7), (8, 10)), strict=True):
        digits = pc.utf8_slice_codeunits(text, start, stop)
        digits = pc.if_else(pa.array(iso), digits, pa.scalar("0", TEXT))
        part[:] = pc.cast(pc.fill_null(digits, "0"), pa.int64()).to_numpy()
    matched = iso.copy()
    others = np.flatnonzero(_bool_array(text.is_valid()) & ~iso)
    if len(others):
        found = pc.extract_regex(text.take(pa.array(others, pa.int64())), DATE_PATTERN)
        found_mask = _bool_array(found.is_valid())
        matched[others] = found_mask
        for part, letter in zip(parts, "ymd", strict=True):
            pieces = [pc.struct_field(found, f"{letter}{i}") for i in range(1, 6)]
            joined = pc.binary_join_element_wise(*pieces, pa.scalar("", TEXT))
            digits = pc.if_else(pa.array(found_mask), joined, pa.scalar("0", TEXT))
            part[others] = pc.cast(pc.fill_null(digits, "0"), pa.int64()).to_numpy()
    return parts[0], parts[1], parts[2], matched


def _parse_date(text: pa.Array) -> tuple[pd.Series, np.ndarray]:
    year, month, day, matched = _date_parts(text)
    ok = matched & (year >= FIRST_YEAR) & (year <= LAST_YEAR) & (month >= 1) & (month <= 12)
    ok &= day >= 1
    months = np.where(ok, (year - 1970) * 12 + month - 1, 0).astype("datetime64[M]")
    dates = months.astype("datetime64[D]") + np.where(ok, day - 1, 0).astype("timedelta64[D]")
    ok &= dates.astype("datetime64[M]") == months  # rejects 2 月 30 日 and friends
    stamped = np.where(ok, dates, np.datetime64("NaT")).astype("datetime64[ns]")
    return pd.Series(stamped), ok


def _parse_bool(text: pa.Array) -> tuple[pd.Series, np.ndarray]:
    lower = pc.utf8_lower(text)
    is_true = _bool_array(pc.is_in(lower, value_set=pa.array(TRUE_TOKENS, TEXT)))
    is_false = _bool_array(pc.is_in(lower, value_set=pa.array(FALSE_TOKENS, TEXT)))
    ok = is_true | is_false
    return pd.Series(pd.arrays.BooleanArray(is_true, ~ok)), ok


def _string_series(text: pa.Array) -> pd.Series:
    return pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array([text]))).astype(STRING_DTYPE)


PARSERS: dict[str, Callable[[pa.Array], tuple[pd.Series, np.ndarray]]] = {
    "int": _parse_int,
    "float": _parse_float,
    "date": _parse_date,
    "bool": _parse_bool,
}


def parse_column(column: Column, text: pa.Array) -> ParsedColumn:
    """Typed values (snapshot dtypes) and the mask of present-but-unparseable cells."""
    present = np.asarray(text.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    parser = PARSERS.get(column.kind)
    if parser is None:
        return ParsedColumn(_string_series(text), np.zeros(len(text), dtype=bool))
    values, ok = parser(text)
    return ParsedColumn(values.astype(column_dtype(column)), present & ~ok)


# --------------------------------------------------------------------------------------
# Column rules: a pandera schema built from the contract


def _uscc_check(values: pd.Series) -> pd.Series:
    return pd.Series(valid_mask(values), index=values.index)


ColumnRule = tuple[str, Callable[[pd.Series], Any]]


def column_rules(column: Column) -> list[ColumnRule]:
    """The contract's per-value limits as (reject rule, vectorised test of non-null values).

    The one implementation of each limit: the pandera schema of a full ingest wraps these
    (`column_checks`) and a handful of rows (an on-demand record) runs them directly
    (`small_table_findings`), so both reject exactly the same values.
    """
    rules: list[ColumnRule] = []
    if column.allowed is not None:
        allowed = list(column.allowed)
        rules.append(("allowed", lambda values: values.isin(allowed)))
    if column.minimum is not None:
        minimum = column.minimum
        rules.append(("minimum", lambda values: values >= minimum))
    if column.maximum is not None:
        maximum = column.maximum
        rules.append(("maximum", lambda values: values <= maximum))
    if column.max_length is not None:
        longest = column.max_length
        rules.append(("max_length", lambda values: values.str.len() <= longest))
    if column.kind == "uscc":
        rules.append(("uscc_check", _uscc_check))
    return rules


def column_checks(column: Column) -> list[pa_schema.Check]:
    """The contract's per-value limits as pandera checks, each named by its reject rule
    (nulls are skipped: a missing value is the `required` rule's business)."""
    return [pa_schema.Check(test, name=name, ignore_na=True)
            for name, test in column_rules(column)]


def build_schema(table: Table) -> pa_schema.DataFrameSchema:
    """The pandera schema of a typed table: dtype, required (nullable) and value checks."""
    return pa_schema.DataFrameSchema(
        {
            c.name: pa_schema.Column(
                column_dtype(c), checks=column_checks(c), nullable=not c.required
            )
            for c in table.columns
        },
        strict=True,
        ordered=True,
        name=table.name,
    )


# --------------------------------------------------------------------------------------
# Row rules: one vectorised implementation per RowRule name in the contract

ReferenceValues = Mapping[tuple[str, str], pa.Array]
RowCheck = Callable[[pd.DataFrame, ReferenceValues], tuple[np.ndarray, "pd.Series | None"]]


def _code(codes: Mapping[str, str], code: str) -> str:
    """A contract enum code, checked at import so a renamed code cannot silently never match."""
    if code not in codes:
        raise UnknownRuleError(f"enum code {code!r} is not in the contract")
    return code


def _mask(values: pd.Series) -> np.ndarray:
    return np.asarray(values.fillna(False).to_numpy(dtype=bool), dtype=bool)


def _before(later: str, earlier: str) -> RowCheck:
    def check(frame: pd.DataFrame, _: ReferenceValues) -> tuple[np.ndarray, pd.Series | None]:
        return _mask(frame[later] < frame[earlier]), None

    return check


def _required_when(column: str, condition: str, codes: tuple[str, ...]) -> RowCheck:
    def check(frame: pd.DataFrame, _: ReferenceValues) -> tuple[np.ndarray, pd.Series | None]:
        return _mask(frame[condition].isin(codes) & frame[column].isna()), None

    return check


def _over_scale_within_dangerous(frame: pd.DataFrame, _: ReferenceValues
                                 ) -> tuple[np.ndarray, pd.Series | None]:
    return _mask(frame["over_scale_dangerous_works"] > frame["dangerous_works"]), None


ROSTER = ("inspectors", "inspector_id")


def _inspectors_exist(frame: pd.DataFrame, references: ReferenceValues
                      ) -> tuple[np.ndarray, pd.Series | None]:
    """Every ';'-separated id must be in the accepted roster; names the unknown ones."""
    lists = pa.array(frame["inspectors"].array, TEXT)
    items = pc.split_pattern(lists, LIST_SEPARATOR)
    flat = pc.list_flatten(items)
    parents = np.asarray(pc.list_parent_indices(items).to_numpy(), dtype=np.int64)
    unknown = ~_bool_array(pc.is_in(flat, value_set=references[ROSTER]))
    violated = np.zeros(len(frame), dtype=bool)
    violated[parents[unknown]] = True
    names = pd.Series(np.asarray(flat.to_numpy(zero_copy_only=False), dtype=object)[unknown])
    detail = names.groupby(parents[unknown]).agg(", ".join)  # indexed by row position
    return violated, detail.astype(object)


ROW_CHECKS: dict[str, RowCheck] = {
    "status_date_when_closed": _required_when(
        "status_date", "status",
        (_code(contract.ENTERPRISE_STATUSES, "revoked"),
         _code(contract.ENTERPRISE_STATUSES, "cancelled")),
    ),
    "status_date_after_established": _before("status_date", "established_date"),
    "known_not_before_occurred": _before("known_date", "occurred_date"),
    "grade_for_tax_grade": _required_when(
        "grade", "event_type", (_code(contract.ENTERPRISE_EVENT_TYPES, "tax_grade"),)),
    "report_year_for_annual_report": _required_when(
        "report_year", "event_type", (_code(contract.ENTERPRISE_EVENT_TYPES, "annual_report"),)),
    "severity_for_monitoring_hit": _required_when(
        "severity", "event_type",
        (_code(contract.ENTERPRISE_EVENT_TYPES, "monitoring_hit"),
         _code(contract.ENTERPRISE_EVENT_TYPES, "public_opinion")),
    ),
    "known_not_before_inspection": _before("known_date", "inspection_date"),
    "inclusion_probability_for_random_draw": _required_when(
        "inclusion_probability", "source", (_code(contract.INSPECTION_SOURCES, "random_draw"),)),
    "campaign_for_random_draw": _required_when(
        "campaign_id", "source", (_code(contract.INSPECTION_SOURCES, "random_draw"),)),
    "inspectors_exist": _inspectors_exist,
    "over_scale_within_dangerous": _over_scale_within_dangerous,
    "planned_after_permit": _before("planned_completion_date", "permit_date"),
    "stage_for_stage_change": _required_when(
        "stage", "event_type", (_code(contract.PROJECT_EVENT_TYPES, "stage_change"),)),
}
# Columns of other tables a row rule reads (kept from their accepted rows).
ROW_CHECK_NEEDS: dict[str, tuple[tuple[str, str], ...]] = {"inspectors_exist": (ROSTER,)}


def row_checks_for(table: Table) -> dict[str, RowCheck]:
    """The implementation of each of the table's row rules; unknown names raise."""
    unknown = [rule.name for rule in table.rules if rule.name not in ROW_CHECKS]
    if unknown:
        raise UnknownRuleError(
            f"表 {table.name} 的行规则 {unknown} 未实现 / row rule(s) {unknown} of table "
            f"{table.name} have no implementation in features.ingest.ROW_CHECKS"
        )
    return {rule.name: ROW_CHECKS[rule.name] for rule in table.rules}


def referenced_columns() -> set[tuple[str, str]]:
    """(table, column) pairs that later tables check against, from the contract."""
    needed = {c.references for t in TABLES.values() for c in t.columns if c.references}
    for table in TABLES.values():
        for rule in table.rules:
            needed.update(ROW_CHECK_NEEDS.get(rule.name, ()))
    return {pair for pair in needed if pair is not None}


def _check_validation_order() -> None:
    if sorted(VALIDATION_ORDER) != sorted(TABLES):
        raise UnknownRuleError("VALIDATION_ORDER must list every contract table exactly once")
    position = {name: i for i, name in enumerate(VALIDATION_ORDER)}
    for table in TABLES.values():
        for column in table.columns:
            if column.references and position[column.references[0]] >= position[table.name]:
                raise UnknownRuleError(
                    f"{table.name}.{column.name} references {column.references[0]}, "
                    "which VALIDATION_ORDER validates later"
                )


# Built at import: an unimplemented rule or an impossible order fails loudly, here.
SCHEMAS: dict[str, pa_schema.DataFrameSchema] = {n: build_schema(t) for n, t in TABLES.items()}
COLUMN_TESTS: dict[str, dict[str, list[ColumnRule]]] = {
    n: {c.name: column_rules(c) for c in t.columns} for n, t in TABLES.items()
}
TABLE_ROW_CHECKS: dict[str, dict[str, RowCheck]] = {
    n: row_checks_for(t) for n, t in TABLES.items()
}
REFERENCED = referenced_columns()
_check_validation_order()


# --------------------------------------------------------------------------------------
# Findings -> reject records


@dataclass
class Finding:
    """One broken rule at some row positions, with the value and bilingual message each."""

    rule: str
    column: str
    positions: np.ndarray
    value: pd.Series
    message_zh: pd.Series
    message_en: pd.Series


_EMPTY_REJECTS = pd.DataFrame(columns=list(REJECT_COLUMNS), dtype=object)


def _empty_rejects() -> pd.DataFrame:
    """A new empty rejects frame (a copy: building one costs ~1 ms, a large part of
    checking a one-row on-demand record)."""
    return _EMPTY_REJECTS.copy()


def _raw_values(raw: pa.Table, column: str, positions: np.ndarray) -> pd.Series:
    taken = raw.column(column).take(pa.array(positions, pa.int64()))
    return pd.Series(taken.to_pylist(), dtype=object).fillna("").astype(str)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(value)


def _texts(values: pd.Series, zh: tuple[str, str], en: tuple[str, str]
           ) -> tuple[pd.Series, pd.Series]:
    """Messages `prefix + 'value' + suffix` in both languages, vectorised."""
    quoted = "'" + values + "'"
    return zh[0] + quoted + zh[1], en[0] + quoted + en[1]


TYPE_NAMES: dict[str, tuple[str, str]] = {
    "int": ("整数", "an integer"),
    "float": ("数字", "a number"),
    "date": ("有效日期 (YYYY-MM-DD、YYYY/M/D、YYYYMMDD 等)",
             "a valid date (YYYY-MM-DD, YYYY/M/D, YYYYMMDD, ...)"),
    "bool": ("布尔值 (是/否、true/false、1/0)", "a boolean (是/否, true/false, 1/0)"),
}


def _column_messages(rule: str, column: Column, values: pd.Series
                     ) -> tuple[pd.Series, pd.Series]:
    if rule == "type":
        zh_name, en_name = TYPE_NAMES[column.kind]
        return _texts(values, ("值 ", f" 不是{zh_name}"), ("value ", f" is not {en_name}"))
    if rule == "required":
        constant = pd.Series([column.name] * len(values), dtype=object)
        return ("必填字段 " + constant + " 为空", "required column " + constant + " is empty")
    if rule == "allowed":
        options = "{" + ", ".join(column.allowed or ()) + "}"
        return _texts(values, ("值 ", f" 不在允许范围 {options}"),
                      ("value ", f" is not one of {options}"))
    if rule == "minimum":
        bound = _number(column.minimum or 0)
        return _texts(values, ("值 ", f" 小于最小值 {bound}"),
                      ("value ", f" is below the minimum {bound}"))
    if rule == "maximum":
        bound = _number(column.maximum or 0)
        return _texts(values, ("值 ", f" 大于最大值 {bound}"),
                      ("value ", f" is above the maximum {bound}"))
    if rule == "max_length":
        lengths = values.str.len().astype(str)
        limit = column.max_length
        return ("长度 " + lengths + f" 超过上限 {limit}",
                "length " + lengths + f" exceeds the maximum {limit}")
    if rule == "uscc_check":
        return _uscc_messages(values)
    raise RuntimeError(f"no message for column rule {rule!r}")


def _uscc_messages(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Say *why* a code is invalid: length, alphabet, or check character."""
    length = values.str.len()
    alphabet_ok = values.str.fullmatch(f"[{ALPHABET}]*")
    zh, en = _texts(values, ("统一社会信用代码 ", " 校验位错误"),
                    ("code ", " has a wrong check character"))
    bad_symbols = ~alphabet_ok
    zh_sym, en_sym = _texts(
        values, ("统一社会信用代码 ", " 含非法字符 (不使用 I、O、S、V、Z 及小写字母)"),
        ("code ", " has characters outside GB 32100 (no I, O, S, V, Z, lower case)"),
    )
    zh = zh.where(~bad_symbols, zh_sym)
    en = en.where(~bad_symbols, en_sym)
    wrong_length = length != CODE_LENGTH
    counts = length.astype(str)
    zh = zh.where(~wrong_length, "统一社会信用代码 '" + values + f"' 应为{CODE_LENGTH}位, 实际 "
                  + counts + " 位")
    en = en.where(~wrong_length, "code '" + values + f"' must have {CODE_LENGTH} characters, "
                  "not " + counts)
    return zh, en


def _finding(rule: str, column: Column, raw: pa.Table, positions: np.ndarray) -> Finding:
    values = _raw_values(raw, column.name, positions)
    zh, en = _column_messages(rule, column, values)
    return Finding(rule, column.name, positions, values, zh, en)


def type_findings(table: Table, raw: pa.Table, parsed: Mapping[str, ParsedColumn]
                  ) -> list[Finding]:
    return [
        _finding("type", column, raw, np.flatnonzero(parsed[column.name].malformed))
        for column in table.columns
        if parsed[column.name].malformed.any()
    ]


# Up to this many rows the column rules run directly: pandera's per-call work (~0.1 s a
# table, whatever its size) is the whole cost of checking one submitted record.
SMALL_TABLE_ROWS = 64


def _passes(result: Any) -> np.ndarray:
    """A rule's verdicts as a plain bool array (nullable booleans included)."""
    if isinstance(result, pd.Series):
        if result.dtype == bool:
            return result.to_numpy()
        return result.to_numpy(dtype=bool, na_value=False)
    return np.asarray(result, dtype=bool)


def small_table_findings(table: Table, raw: pa.Table, typed: pd.DataFrame,
                         malformed: Mapping[str, np.ndarray]) -> list[Finding]:
    """What `schema_findings` finds, for a few rows: the same `column_rules` and required
    columns, evaluated directly (dtypes and column order hold by construction of `typed`)."""
    findings: list[Finding] = []
    for column in table.columns:
        tests = COLUMN_TESTS[table.name][column.name]
        if not tests and not column.required:
            continue
        values = typed[column.name]
        missing = values.isna().to_numpy(dtype=bool)
        if column.required:
            absent = np.flatnonzero(missing & ~malformed[column.name])
            if len(absent):
                findings.append(_finding("required", column, raw, absent))
        present = np.flatnonzero(~missing)
        if not len(present) or not tests:
            continue
        subset = values if len(present) == len(values) else values.iloc[present]
        for rule, test in tests:
            bad = present[~_passes(test(subset))]
            if len(bad):
                findings.append(_finding(rule, column, raw, bad))
    return findings


def schema_findings(table: Table, raw: pa.Table, typed: pd.DataFrame,
                    malformed: Mapping[str, np.ndarray]) -> list[Finding]:
    """Run the pandera schema (lazy) and turn its failure cases into findings (a few rows:
    the same rules directly, see `small_table_findings`)."""
    if len(typed) <= SMALL_TABLE_ROWS:
        return small_table_findings(table, raw, typed, malformed)
    schema = SCHEMAS[table.name]
    try:
        schema.validate(typed, lazy=True, inplace=True)
    except SchemaErrors as errors:
        cases = errors.failure_cases
    else:
        return []
    if cases["index"].isna().any():
        raise RuntimeError(f"pandera reported a table-level failure for {table.name}: "
                           f"{cases[cases['index'].isna()].to_dict('records')}")
    findings: list[Finding] = []
    for (name, check, number), group in cases.groupby(
        ["column", "check", "check_number"], sort=False, dropna=False
    ):
        column = table.column(str(name))
        if check == "not_nullable":
            rule = "required"
        else:
            rule = str(schema.columns[column.name].checks[int(number)].name)
        positions = np.unique(group["index"].to_numpy(dtype=np.int64))
        if rule == "required":  # an unparseable value is reported as 'type', not missing
            positions = positions[~malformed[column.name][positions]]
        if len(positions):
            findings.append(_finding(rule, column, raw, positions))
    return findings


def _rule_value(raw: pa.Table, columns: Sequence[str], positions: np.ndarray) -> pd.Series:
    parts = [name + "=" + _raw_values(raw, name, positions) for name in columns]
    joined = parts[0]
    for part in parts[1:]:
        joined = joined + "; " + part
    return joined


def row_rule_findings(table: Table, raw: pa.Table, typed: pd.DataFrame,
                      cell_bad: Mapping[str, np.ndarray], references: ReferenceValues
                      ) -> list[Finding]:
    findings: list[Finding] = []
    checks = TABLE_ROW_CHECKS[table.name]
    for rule in table.rules:
        violated, detail = checks[rule.name](typed, references)
        for name in rule.columns:
            violated = violated & ~cell_bad[name]
        positions = np.flatnonzero(violated)
        if not len(positions):
            continue
        findings.append(_row_rule_finding(rule, raw, positions, violated, detail))
    return findings


def _row_rule_finding(rule: RowRule, raw: pa.Table, positions: np.ndarray,
                      violated: np.ndarray, detail: pd.Series | None) -> Finding:
    value = (_raw_values(raw, rule.columns[0], positions) if len(rule.columns) == 1
             else _rule_value(raw, rule.columns, positions))
    size = len(positions)
    zh = pd.Series([rule.zh] * size, dtype=object)
    en = pd.Series([rule.en] * size, dtype=object)
    if detail is not None:
        unknown = detail.reindex(positions).fillna("").astype(str).reset_index(drop=True)
        zh = zh + " (未知: " + unknown + ")"
        en = en + " (unknown: " + unknown + ")"
    else:
        zh = zh + ": " + value
        en = en + ": " + value
    return Finding(rule.name, ",".join(rule.columns), positions, value, zh, en)


def reference_findings(table: Table, raw: pa.Table, normalised: Mapping[str, pa.Array],
                       cell_bad: Mapping[str, np.ndarray], references: ReferenceValues,
                       absent: frozenset[str]) -> list[Finding]:
    findings: list[Finding] = []
    for column in table.columns:
        if column.references is None:
            continue
        target_table, target_column = column.references
        values = normalised[column.name]
        present = _bool_array(values.is_valid())
        known = _bool_array(pc.is_in(values, value_set=references[column.references]))
        positions = np.flatnonzero(present & ~known & ~cell_bad[column.name])
        if not len(positions):
            continue
        given = _raw_values(raw, column.name, positions)
        target = f"{target_table}.{target_column}"
        note_zh = f" (未提供 {target_table} 表)" if target_table in absent else ""
        note_en = f" (table {target_table} was not supplied)" if target_table in absent else ""
        zh, en = _texts(given, ("值 ", f" 在 {target} 的已接受记录中不存在{note_zh}"),
                        ("value ", f" is not among the accepted rows of {target}{note_en}"))
        findings.append(Finding("reference", column.name, positions, given, zh, en))
    return findings


def unique_key_findings(table: Table, raw: pa.Table, typed: pd.DataFrame, rows: np.ndarray,
                        lines: np.ndarray, candidates: np.ndarray) -> list[Finding]:
    """Later duplicates of a key among otherwise valid rows; the message names the first."""
    key = list(table.key)
    positions = np.flatnonzero(candidates)
    keys = typed.loc[positions, key].reset_index(drop=True)
    duplicate = keys.duplicated(keep="first").to_numpy()
    if not duplicate.any():
        return []
    group = keys.groupby(key, sort=False, dropna=False).ngroup().to_numpy()
    first = pd.Series(positions).groupby(group).transform("first").to_numpy()
    later, earlier = positions[duplicate], first[duplicate]
    if len(key) == 1:
        value = _raw_values(raw, key[0], later)
        shown = "'" + value + "'"
    else:
        value = _rule_value(raw, key, later)
        shown = "(" + value + ")"
    first_row = pd.Series(rows[earlier]).astype(str)
    first_line = pd.Series(lines[earlier]).astype(str)
    zh = ("键 " + shown + " 与第 " + first_row + " 行 (文件第 " + first_line
          + " 行) 重复, 保留第一条")
    en = ("key " + shown + " duplicates row " + first_row + " (line " + first_line
          + "); the first is kept")
    return [Finding("unique_key", ",".join(key), later, value, zh, en)]


def _records(table: Table, file_name: str, rows: np.ndarray, lines: np.ndarray,
             findings: Sequence[Finding]) -> pd.DataFrame:
    if not findings:
        return _empty_rejects()
    parts = []
    for order, finding in enumerate(findings):
        parts.append(pd.DataFrame({
            "table": table.name, "file": file_name,
            "row": rows[finding.positions], "line": lines[finding.positions],
            "column": finding.column, "value": finding.value.to_numpy(dtype=object),
            "rule": finding.rule,
            "message_zh": finding.message_zh.to_numpy(dtype=object),
            "message_en": finding.message_en.to_numpy(dtype=object),
            "_order": order,
        }))
    frame = pd.concat(parts, ignore_index=True)
    frame = frame.sort_values(["row", "_order"], kind="stable").drop(columns="_order")
    return frame.reset_index(drop=True)


# --------------------------------------------------------------------------------------
# One table


@dataclass(frozen=True)
class TableCounts:
    """What happened to one contract table."""

    table: str
    status: Literal["ingested", "absent"]
    source_file: str | None
    read: int
    accepted: int
    rejected: int
    blank_rows: int = 0
    missing_optional_columns: tuple[str, ...] = ()


@dataclass
class TableResult:
    accepted: pd.DataFrame
    rejects: pd.DataFrame
    counts: TableCounts


def _drop_blank_rows(raw: RawTable, normalised: dict[str, pa.Array]
                     ) -> tuple[RawTable, dict[str, pa.Array], int]:
    blank = np.ones(raw.values.num_rows, dtype=bool)
    for values in normalised.values():
        blank &= ~_bool_array(values.is_valid())
    if not blank.any():
        return raw, normalised, 0
    keep = pa.array(np.flatnonzero(~blank), pa.int64())
    trimmed = RawTable(raw.file, raw.values.take(keep), raw.rows[~blank], raw.lines[~blank],
                       raw.structural, raw.missing_optional)
    return trimmed, {n: v.take(keep) for n, v in normalised.items()}, int(blank.sum())


def validate_table(table: Table, raw: RawTable, references: ReferenceValues,
                   absent: frozenset[str] = frozenset()) -> TableResult:
    """Every rule of the contract on one table; accepted rows typed, rejects with reasons."""
    normalised = {
        c.name: normalise_text(table, c, raw.values.column(c.name).combine_chunks())
        for c in table.columns
    }
    raw, normalised, blank_rows = _drop_blank_rows(raw, normalised)
    parsed = {c.name: parse_column(c, normalised[c.name]) for c in table.columns}
    typed = pd.DataFrame({name: p.values for name, p in parsed.items()})
    malformed = {name: p.malformed for name, p in parsed.items()}
    findings = type_findings(table, raw.values, parsed)
    findings += schema_findings(table, raw.values, typed, malformed)
    size = len(typed)
    cell_bad = {name: mask.copy() for name, mask in malformed.items()}
    for finding in findings:
        cell_bad[finding.column][finding.positions] = True
    findings += reference_findings(table, raw.values, normalised, cell_bad, references, absent)
    findings += row_rule_findings(table, raw.values, typed, cell_bad, references)
    rejected = np.zeros(size, dtype=bool)
    for finding in findings:
        rejected[finding.positions] = True
    duplicates = unique_key_findings(table, raw.values, typed, raw.rows, raw.lines, ~rejected)
    for finding in duplicates:
        rejected[finding.positions] = True
    findings += duplicates
    parts = [frame for frame in (raw.structural,
                                 _records(table, raw.file, raw.rows, raw.lines, findings))
             if len(frame)]
    rejects = (pd.concat(parts, ignore_index=True).sort_values("row", kind="stable")
               .reset_index(drop=True)) if parts else _empty_rejects()
    accepted = typed.loc[~rejected].reset_index(drop=True)
    structural = len(raw.structural)
    counts = TableCounts(
        table=table.name, status="ingested", source_file=raw.file,
        read=size + structural, accepted=len(accepted),
        rejected=int(rejected.sum()) + structural, blank_rows=blank_rows,
        missing_optional_columns=raw.missing_optional,
    )
    return TableResult(accepted, rejects, counts)


def _reference_values(name: str, accepted: pd.DataFrame) -> dict[tuple[str, str], pa.Array]:
    return {
        (table, column): pa.array(accepted[column].array, TEXT)
        for table, column in REFERENCED
        if table == name
    }


# --------------------------------------------------------------------------------------
# A directory


@dataclass(frozen=True)
class IngestReport:
    """The outcome of one ingest: where the snapshot is and what each table contributed."""

    snapshot_id: str
    snapshot_dir: Path
    tables: dict[str, TableCounts]
    rejects_path: Path
    rule_counts: dict[str, int]
    ignored_files: tuple[str, ...]
    input_hash: str
    duration_seconds: float
    source_files: dict[str, str] = field(default_factory=dict)

    @property
    def total_rejected(self) -> int:
        return sum(c.rejected for c in self.tables.values())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def input_hash(file_hashes: Mapping[str, str]) -> str:
    """sha256 over (file name, content sha256) pairs sorted by file name."""
    digest = hashlib.sha256()
    for name in sorted(file_hashes):
        digest.update(f"{name}\0{file_hashes[name]}\n".encode())
    return digest.hexdigest()


def contract_fingerprint() -> str:
    """A hash of the contract's tables, so a snapshot says which contract it was built for."""
    return hashlib.sha256(repr(tuple(TABLES.values())).encode("utf-8")).hexdigest()


def _riskmatrix_version() -> str:
    try:
        return metadata.version("riskmatrix")
    except metadata.PackageNotFoundError:
        return "unknown"


def ingest_directory(source_dir: Path, snapshot_root: Path, *, encoding: str = "utf-8",
                     progress: bool = False) -> IngestReport:
    """Validate every source file in `source_dir` and publish a new current snapshot.

    Raises `IngestError` (nothing written, the previous snapshot stays current) when a table
    cannot be used at all; otherwise bad rows go to the snapshot's ``rejects.csv``.
    """
    started = time.perf_counter()
    created = datetime.now(UTC)
    sources, ignored = discover_sources(Path(source_dir))
    hashes = {s.path.name: _sha256(s.path) for s in sources.values()}
    digest = input_hash(hashes)
    snapshot_id = f"{created:%Y%m%dT%H%M%SZ}-{digest[:12]}"
    counts: dict[str, TableCounts] = {}
    all_rejects: list[pd.DataFrame] = []
    references: dict[tuple[str, str], pa.Array] = {}
    absent = frozenset(name for name in TABLES if name not in sources)
    with staged_snapshot(Path(snapshot_root)) as stage:
        for name in tqdm(VALIDATION_ORDER, desc="ingest", unit="table", disable=not progress):
            table = TABLES[name]
            source = sources.get(name)
            if source is None:
                accepted = empty_frame(table)
                counts[name] = TableCounts(name, "absent", None, 0, 0, 0)
            else:
                result = validate_table(table, read_source(source, encoding), references, absent)
                accepted = result.accepted
                counts[name] = result.counts
                all_rejects.append(result.rejects)
            references.update(_reference_values(name, accepted))
            stage.write_table(name, accepted)
        rejects = pd.concat([r for r in all_rejects if len(r)] or [_empty_rejects()],
                            ignore_index=True)
        stage.write_rejects(rejects)
        rule_counts = dict(Counter(rejects["rule"].astype(str)).most_common())
        manifest = {
            "created_at": created.isoformat(timespec="seconds"),
            "riskmatrix_version": _riskmatrix_version(),
            "contract_hash": contract_fingerprint(),
            "contract_tables": list(TABLES),
            "input_hash": digest,
            "encoding": encoding,
            "source_files": {
                s.table: {"file": s.path.name, "format": s.format,
                          "sha256": hashes[s.path.name], "rows": counts[s.table].read}
                for s in sources.values()
            },
            "tables": {n: _counts_json(c) for n, c in counts.items()},
            "ignored_files": ignored,
            "rejects": {"file": REJECTS_CSV, "entries": len(rejects), "by_rule": rule_counts},
        }
        final = stage.commit(snapshot_id, manifest)
    return IngestReport(
        snapshot_id=final.name, snapshot_dir=final, tables=counts,
        rejects_path=final / REJECTS_CSV, rule_counts=rule_counts,
        ignored_files=tuple(ignored), input_hash=digest,
        duration_seconds=time.perf_counter() - started,
        source_files={s.table: s.path.name for s in sources.values()},
    )


def _counts_json(counts: TableCounts) -> dict[str, Any]:
    return {
        "status": counts.status, "source_file": counts.source_file, "read": counts.read,
        "accepted": counts.accepted, "rejected": counts.rejected,
        "blank_rows": counts.blank_rows,
        "missing_optional_columns": list(counts.missing_optional_columns),
    }


# --------------------------------------------------------------------------------------
# CLI summary


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int, right: bool = False) -> str:
    gap = " " * max(width - _width(text), 0)
    return gap + text if right else text + gap


def format_summary(report: IngestReport, top_rules: int = 10) -> str:
    """A bilingual plain-text table for the terminal."""
    headers = ["表 / table", "读入 / read", "接受 / accepted", "拒绝 / rejected",
               "状态 / status"]
    status_labels = {"ingested": "已导入 / ingested", "absent": "未提供 / absent"}
    body = [
        [c.table, str(c.read), str(c.accepted), str(c.rejected), status_labels[c.status]]
        for c in report.tables.values()
    ]
    body.append(["合计 / total", str(sum(c.read for c in report.tables.values())),
                 str(sum(c.accepted for c in report.tables.values())),
                 str(report.total_rejected), ""])
    widths = [max(_width(row[i]) for row in [headers, *body]) for i in range(len(headers))]
    lines = [f"快照 / snapshot: {report.snapshot_id}  ({report.snapshot_dir})"]
    for row in [headers, *body]:
        cells = [_pad(cell, widths[i], right=0 < i < 4) for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    if report.rule_counts:
        lines.append("违反最多的规则 / rules broken most often:")
        for rule, count in list(report.rule_counts.items())[:top_rules]:
            lines.append(f"  {rule}: {count}")
        lines.append(f"拒绝明细 / rejects: {report.rejects_path}")
    else:
        lines.append("没有被拒绝的行 / no rows rejected")
    if report.ignored_files:
        lines.append("已忽略 / ignored: " + ", ".join(report.ignored_files))
    lines.append(f"输入哈希 / input hash: {report.input_hash}")
    lines.append(f"用时 / duration: {report.duration_seconds:.1f} s")
    return "\n".join(lines)
